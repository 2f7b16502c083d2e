import { css } from '@emotion/css';
import { GrafanaTheme2, QueryEditorProps, SelectableValue } from '@grafana/data';
import { InlineField, InlineSwitch, Input, RadioButtonGroup, Select, Stack, useStyles2 } from '@grafana/ui';
import React, { useCallback, useEffect, useState } from 'react';

import type { DataSource } from '../datasource';
import { DEFAULT_LIMIT, MAP_GROUPS, MAX_LIMIT, METRICS, METRICS_GROUPS, PodwireOptions, PodwireQuery, QUERY_TYPES, QueryType, ResourceApi } from '../types';
import { EntryViewer } from './entry/EntryViewer';
import { FilterField } from './FilterField';

export type Props = QueryEditorProps<DataSource, PodwireQuery, PodwireOptions>;

/** EXAMPLES are short filters a user can click into the field. */
export const EXAMPLES: Array<{ filter: string; what: string }> = [
  { filter: 'http && status >= 500', what: 'HTTP server errors' },
  { filter: 'dst.namespace == "shop" && latency > duration("200ms")', what: 'slow calls into a namespace' },
  { filter: 'grpc && status != 0', what: 'failed gRPC calls' },
  { filter: 'redis && method == "GET"', what: 'Redis reads' },
  { filter: 'dns && failed', what: 'DNS names that did not resolve' },
  { filter: 'request.headers["user-agent"].startsWith("curl")', what: 'requests made by curl' },
  { filter: 'dst.namespace == $namespace', what: 'a dashboard variable (multi-value becomes in [...])' },
];

const typeOptions: Array<SelectableValue<QueryType>> = QUERY_TYPES.map((t) => ({ label: t.label, value: t.value, description: t.description }));

/** QueryEditor edits one Podwire query; for an entry query it also shows
 * the entry, so the data links that open {queryType: "entry"} in Explore
 * land on the entry's view. */
export function QueryEditor(props: Props) {
  const { query, onChange, onRunQuery, datasource } = props;
  const styles = useStyles2(getStyles);
  const queryType: QueryType = query.queryType ?? 'traffic';
  const api = datasource as unknown as ResourceApi;
  const interpolate = useCallback(
    (filter: string) => (typeof datasource.interpolateFilter === 'function' ? datasource.interpolateFilter(filter) : filter),
    [datasource]
  );

  const change = (patch: Partial<PodwireQuery>, run = false) => {
    onChange({ ...query, ...patch });
    if (run) {
      onRunQuery();
    }
  };

  return (
    <div className={styles.editor} data-testid="podwire-query-editor">
      <RadioButtonGroup<QueryType>
        data-testid="podwire-query-type"
        aria-label="Query type"
        options={typeOptions}
        value={queryType}
        onChange={(v) => change(switchType(query, v), true)}
      />
      {queryType === 'entry' ? (
        <EntryQuery {...props} api={api} />
      ) : (
        <>
          <FilterField api={api} value={query.filter ?? ''} onChange={(filter) => change({ filter })} onRun={onRunQuery} interpolate={interpolate} />
          <Stack direction="row" gap={1} wrap="wrap" alignItems="center">
            {(queryType === 'traffic' || queryType === 'logs') && <LimitField query={query} onChange={change} />}
            {(queryType === 'serviceMap' || queryType === 'metrics') && (
              <InlineField label="Group by" tooltip="What one node (service map) or series (metrics) stands for">
                <Select
                  aria-label="Group by"
                  width={18}
                  options={(queryType === 'metrics' ? METRICS_GROUPS : MAP_GROUPS).map((g) => ({ label: g, value: g }))}
                  value={query.groupBy || 'workload'}
                  onChange={(v) => change({ groupBy: v.value }, true)}
                />
              </InlineField>
            )}
            {queryType === 'metrics' && (
              <InlineField label="Metric" tooltip="One series per group instead of five: what an alert rule needs">
                <Select
                  aria-label="Metric"
                  width={16}
                  options={METRICS}
                  value={query.metric || 'all'}
                  onChange={(v) => change({ metric: v.value === 'all' ? undefined : v.value }, true)}
                />
              </InlineField>
            )}
            {(queryType === 'traffic' || queryType === 'logs') && (
              <InlineField label="Live" tooltip="Stream new requests as they are captured">
                <InlineSwitch
                  data-testid="podwire-live"
                  aria-label="Live"
                  value={Boolean(query.live)}
                  onChange={(e) => change({ live: e.currentTarget.checked }, true)}
                />
              </InlineField>
            )}
          </Stack>
          <Examples onPick={(filter) => change({ filter }, true)} />
        </>
      )}
    </div>
  );
}

/** switchType keeps what the new type uses and drops the rest. */
export function switchType(q: PodwireQuery, t: QueryType): Partial<PodwireQuery> {
  const patch: Partial<PodwireQuery> = { queryType: t };
  if (t === 'serviceMap' && q.groupBy && !MAP_GROUPS.includes(q.groupBy)) {
    patch.groupBy = 'workload';
  }
  if ((t === 'traffic' || t === 'logs') && !q.limit) {
    patch.limit = DEFAULT_LIMIT;
  }
  if (t !== 'traffic' && t !== 'logs') {
    patch.live = undefined;
  }
  if (t !== 'metrics') {
    patch.metric = undefined;
  }
  return patch;
}

function LimitField({ query, onChange }: { query: PodwireQuery; onChange: (p: Partial<PodwireQuery>, run?: boolean) => void }) {
  const [text, setText] = useState(String(query.limit ?? DEFAULT_LIMIT));
  useEffect(() => setText(String(query.limit ?? DEFAULT_LIMIT)), [query.limit]);
  const n = Number(text);
  const invalid = !(Number.isInteger(n) && n > 0 && n <= MAX_LIMIT);
  return (
    <InlineField label="Limit" invalid={invalid} error={`a whole number from 1 to ${MAX_LIMIT}`} tooltip="Most recent requests to show (merged across agents)">
      <Input
        type="number"
        width={12}
        aria-label="Limit"
        data-testid="podwire-limit"
        value={text}
        min={1}
        max={MAX_LIMIT}
        onChange={(e) => setText(e.currentTarget.value)}
        onBlur={() => {
          if (!invalid && n !== query.limit) {
            onChange({ limit: n }, true);
          }
        }}
      />
    </InlineField>
  );
}

function EntryQuery({ query, onChange, onRunQuery, api }: Props & { api: ResourceApi }) {
  const [id, setId] = useState(query.entryId ?? '');
  // A data link or the history can replace the query under the editor.
  useEffect(() => setId(query.entryId ?? ''), [query.entryId]);
  return (
    <>
      <InlineField label="Entry id" grow tooltip="The id of one captured request (table rows, log lines and map edges link here)">
        <Input
          aria-label="Entry id"
          data-testid="podwire-entry-id"
          value={id}
          placeholder="node-1-42"
          onChange={(e) => setId(e.currentTarget.value)}
          onBlur={() => {
            if (id !== (query.entryId ?? '')) {
              onChange({ ...query, entryId: id.trim() });
              onRunQuery();
            }
          }}
          onKeyDown={(e) => e.key === 'Enter' && e.currentTarget.blur()}
        />
      </InlineField>
      {query.entryId && !query.entryId.includes('$') && <EntryViewer api={api} entryId={query.entryId} />}
    </>
  );
}

function Examples({ onPick }: { onPick: (filter: string) => void }) {
  const styles = useStyles2(getStyles);
  return (
    <details className={styles.examples}>
      <summary>Filter examples</summary>
      <ul>
        {EXAMPLES.map((ex) => (
          <li key={ex.filter}>
            <button type="button" className={styles.example} onClick={() => onPick(ex.filter)} title="Use this filter">
              <code>{ex.filter}</code>
            </button>{' '}
            <span className={styles.what}>{ex.what}</span>
          </li>
        ))}
      </ul>
      <div className={styles.what}>
        CEL over one request. Ctrl+Space completes names and values; Shift+Enter runs the query. See docs/filter.md for every name.
      </div>
    </details>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  editor: css({ display: 'flex', flexDirection: 'column', gap: theme.spacing(1), width: '100%' }),
  examples: css({
    fontSize: theme.typography.bodySmall.fontSize,
    summary: { cursor: 'pointer', color: theme.colors.text.secondary },
    ul: { margin: theme.spacing(0.5, 0), paddingLeft: theme.spacing(2) },
  }),
  example: css({ border: 'none', background: 'none', padding: 0, cursor: 'pointer', color: theme.colors.text.link, textAlign: 'left' }),
  what: css({ color: theme.colors.text.secondary }),
});
