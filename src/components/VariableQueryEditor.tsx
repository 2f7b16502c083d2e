import { css } from '@emotion/css';
import { GrafanaTheme2, QueryEditorProps } from '@grafana/data';
import { InlineField, Input, RadioButtonGroup, useStyles2 } from '@grafana/ui';
import React, { useEffect, useState } from 'react';

import type { DataSource } from '../datasource';
import { PodwireOptions, PodwireQuery, ResourceApi, VALUE_FIELDS } from '../types';
import { FilterField } from './FilterField';

export type VariableProps = QueryEditorProps<DataSource, PodwireQuery, PodwireOptions, PodwireQuery>;

const OTHER = '__other';

/** VariableQueryEditor edits a variable's query: the values of one field
 * (namespaces, workloads, services, pods, protocols, or any string field of
 * the filter language) in entries that match an optional filter. */
export function VariableQueryEditor({ query, onChange, datasource }: VariableProps) {
  const styles = useStyles2(getStyles);
  const field = query.field || 'namespace';
  const known = VALUE_FIELDS.includes(field);
  const [other, setOther] = useState(known ? '' : field);
  const [mode, setMode] = useState(known ? field : OTHER);
  const api = datasource as unknown as ResourceApi;

  const update = (patch: Partial<PodwireQuery>) => {
    onChange({ ...query, refId: query.refId || 'PodwireVariable', queryType: 'values', field, ...patch });
  };

  // A new variable's query says what it shows (namespaces) from the start.
  useEffect(() => {
    if (!query.field || query.queryType !== 'values') {
      onChange({ ...query, refId: query.refId || 'PodwireVariable', queryType: 'values', field: query.field || 'namespace' });
    }
    // Only when the editor opens.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  return (
    <div className={styles.editor} data-testid="podwire-variable-editor">
      <InlineField label="Values of" labelWidth={14} tooltip="namespace, workload, service and pod mean either end of a request">
        <RadioButtonGroup<string>
          aria-label="Values of"
          options={[...VALUE_FIELDS.map((f) => ({ label: f, value: f })), { label: 'other field', value: OTHER }]}
          value={mode}
          onChange={(v) => {
            setMode(v);
            if (v !== OTHER) {
              update({ field: v });
            }
          }}
        />
      </InlineField>
      {mode === OTHER && (
        <InlineField label="Field" labelWidth={14} tooltip="A string field of the filter language, e.g. dst.workload or method">
          <Input
            aria-label="Field"
            width={30}
            value={other}
            placeholder="dst.workload"
            onChange={(e) => setOther(e.currentTarget.value)}
            onBlur={() => other.trim() && update({ field: other.trim() })}
          />
        </InlineField>
      )}
      <InlineField label="Filter" labelWidth={14} grow tooltip="Only values seen in requests that match, e.g. dst.namespace == $namespace">
        <FilterField
          api={api}
          value={query.filter ?? ''}
          onChange={(filter) => update({ filter })}
          interpolate={typeof datasource.interpolateFilter === 'function' ? (f) => datasource.interpolateFilter(f) : undefined}
          placeholder="optional CEL filter, e.g. dst.namespace == $namespace"
        />
      </InlineField>
    </div>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  editor: css({ display: 'flex', flexDirection: 'column', gap: theme.spacing(0.5) }),
});
