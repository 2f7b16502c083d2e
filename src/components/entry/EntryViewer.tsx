import { css, cx } from '@emotion/css';
import { GrafanaTheme2 } from '@grafana/data';
import { Alert, Badge, Button, ClipboardButton, LoadingPlaceholder, RadioButtonGroup, Tab, TabContent, TabsBar, useStyles2 } from '@grafana/ui';
import React, { useEffect, useMemo, useState } from 'react';

import { Endpoint, Entry, EntryMessage, ResourceApi } from '../../types';
import { BodyKind, bodyBytes, bodyKind, extension, formatBytes, formPairs, header, hexLines, prettyXml } from './bodies';
import { canCurl, curlCommand } from './curl';
import { JsonTree } from './JsonTree';
import { decodeGrpc, parseFieldTree, TreeNode } from './protobuf';
import { formatMs, phases } from './timing';

export interface EntryViewerProps {
  /** api fetches GET /entries/{id}; not needed when entry is given. */
  api?: ResourceApi;
  entryId?: string;
  /** entry shows this entry instead of fetching one. */
  entry?: Entry;
}

/** EntryViewer shows one entry: summary, timings, and the request and
 * response with headers and bodies. */
export function EntryViewer({ api, entryId, entry: given }: EntryViewerProps) {
  const styles = useStyles2(getStyles);
  const [state, setState] = useState<{ entry?: Entry; error?: string; loading: boolean }>({ entry: given, loading: false });

  useEffect(() => {
    if (given) {
      setState({ entry: given, loading: false });
      return;
    }
    const id = entryId?.trim();
    if (!api || !id) {
      setState({ loading: false });
      return;
    }
    let cancelled = false;
    setState({ loading: true });
    api
      .getResource<Entry>(`entries/${encodeURIComponent(id)}`)
      .then((entry) => !cancelled && setState({ entry, loading: false }))
      .catch((e) => !cancelled && setState({ error: describeError(e), loading: false }));
    return () => {
      cancelled = true;
    };
  }, [api, entryId, given]);

  if (state.loading) {
    return <LoadingPlaceholder text={`Loading entry ${entryId}…`} />;
  }
  if (state.error) {
    return (
      <Alert severity="error" title={`Entry ${entryId ?? ''}`} data-testid="podwire-entry-error">
        {state.error}
      </Alert>
    );
  }
  if (!state.entry) {
    return null;
  }
  return (
    <div className={styles.viewer} data-testid="podwire-entry-viewer">
      <Summary entry={state.entry} />
      <Timings entry={state.entry} />
      <Exchange entry={state.entry} />
    </div>
  );
}

function describeError(e: unknown): string {
  if (e && typeof e === 'object') {
    const o = e as { data?: { message?: string; error?: string }; message?: string; status?: number; statusText?: string };
    const msg = o.data?.error ?? o.data?.message ?? o.message ?? o.statusText;
    return o.status ? `${o.status}: ${msg ?? 'request failed'}` : msg ?? 'request failed';
  }
  return String(e);
}

function endpointName(p?: Endpoint): string {
  if (!p) {
    return '–';
  }
  const addr = p.ip ? (p.ip.includes(':') ? `[${p.ip}]` : p.ip) + (p.port ? `:${p.port}` : '') : '';
  const name = p.pod ? `${p.namespace ? p.namespace + '/' : ''}${p.pod}` : p.process ? `process ${p.process}` : '';
  return name ? `${name} (${addr})` : addr || '–';
}

/** EndpointRow is one end of the exchange: its name and address, then its workload and service. */
function EndpointRow({ label, p }: { label: string; p?: Endpoint }) {
  const styles = useStyles2(getStyles);
  return (
    <tr>
      <th>{label}</th>
      <td>
        {endpointName(p)}
        {p?.workload && <span className={styles.muted}> · {p.workloadKind ?? 'workload'} {p.workload}</span>}
        {p?.service && <span className={styles.muted}> · service {p.service}</span>}
      </td>
    </tr>
  );
}

function Summary({ entry: e }: { entry: Entry }) {
  const styles = useStyles2(getStyles);
  const status = e.status ?? 0;
  return (
    <div className={styles.summary} data-testid="podwire-entry-summary">
      <div className={styles.title}>
        <Badge text={(e.protocol ?? '?').toUpperCase() + (e.httpVersion ? ` ${e.httpVersion}` : '')} color="blue" />
        <span className={styles.method}>{e.method}</span>
        <span className={styles.path}>{e.path}</span>
        <Badge text={String(status)} color={e.failed ? 'red' : 'green'} />
        <span className={styles.muted}>{formatMs(e.latencyMs ?? NaN)}</span>
        {e.incomplete && <Badge text="incomplete" color="orange" tooltip="Some bytes of the exchange were lost" />}
      </div>
      <table className={styles.kv}>
        <tbody>
          <EndpointRow label="From" p={e.src} />
          <EndpointRow label="To" p={e.dst} />
          <tr>
            <th>Time</th>
            <td>{e.time}</td>
          </tr>
          <tr>
            <th>Captured by</th>
            <td>
              {e.node} <span className={styles.muted}>· id {e.id}</span>
            </td>
          </tr>
          {e.notes && e.notes.length > 0 && (
            <tr>
              <th>Notes</th>
              <td>{e.notes.join('; ')}</td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}

function Timings({ entry }: { entry: Entry }) {
  const styles = useStyles2(getStyles);
  const { total, phases: ps } = phases(entry);
  if (!ps.length || total <= 0) {
    return null;
  }
  return (
    <div className={styles.timings} data-testid="podwire-entry-timings">
      <div className={styles.bar}>
        {ps.map((p) => (
          <div
            key={p.name}
            className={cx(styles.phase, styles[p.name])}
            style={{ left: `${(p.from / total) * 100}%`, width: `${Math.max(0.5, ((p.to - p.from) / total) * 100)}%` }}
            title={`${p.name}: ${formatMs(p.to - p.from)}`}
          />
        ))}
      </div>
      <div className={styles.legend}>
        {ps.map((p) => (
          <span key={p.name}>
            <span className={cx(styles.swatch, styles[p.name])} /> {p.name} {formatMs(p.to - p.from)}
          </span>
        ))}
        <span className={styles.muted}>total {formatMs(total)}</span>
      </div>
    </div>
  );
}

function Exchange({ entry }: { entry: Entry }) {
  const styles = useStyles2(getStyles);
  const [tab, setTab] = useState<'request' | 'response'>('response');
  const msg = tab === 'request' ? entry.request : entry.response;
  return (
    <div>
      <div className={styles.tabsRow}>
        <TabsBar>
          <Tab label="Request" active={tab === 'request'} onChangeTab={() => setTab('request')} />
          <Tab label="Response" active={tab === 'response'} onChangeTab={() => setTab('response')} />
        </TabsBar>
        {canCurl(entry) && (
          <ClipboardButton icon="copy" variant="secondary" size="sm" getText={() => curlCommand(entry)} data-testid="podwire-copy-curl">
            Copy as curl
          </ClipboardButton>
        )}
      </div>
      <TabContent>
        <MessageView key={tab} entry={entry} which={tab} message={msg} />
      </TabContent>
    </div>
  );
}

function MessageView({ entry, which, message }: { entry: Entry; which: 'request' | 'response'; message?: EntryMessage }) {
  const styles = useStyles2(getStyles);
  if (!message) {
    return <div className={styles.muted}>No {which}.</div>;
  }
  const headers = message.headerList?.length
    ? message.headerList
    : Object.entries(message.headers ?? {}).map(([name, value]) => ({ name, value }));
  const trailers = Object.entries(message.trailers ?? {});
  return (
    <div className={styles.message}>
      {headers.length > 0 && <HeaderTable title="Headers" rows={headers.map((h) => [h.name, h.value])} />}
      <BodyView entry={entry} which={which} message={message} />
      {trailers.length > 0 && <HeaderTable title="Trailers" rows={trailers} />}
    </div>
  );
}

function HeaderTable({ title, rows }: { title: string; rows: Array<[string, string]> | string[][] }) {
  const styles = useStyles2(getStyles);
  return (
    <details open className={styles.section}>
      <summary>
        {title} ({rows.length})
      </summary>
      <table className={styles.headers}>
        <tbody>
          {rows.map(([k, v], i) => (
            <tr key={i}>
              <th>{k}</th>
              <td>{v}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}

const KIND_LABEL: Record<BodyKind, string> = {
  empty: 'empty',
  json: 'JSON',
  xml: 'XML',
  form: 'form',
  grpc: 'gRPC messages',
  protobuf: 'protobuf',
  binary: 'binary',
  text: 'text',
};

function BodyView({ entry, which, message }: { entry: Entry; which: string; message: EntryMessage }) {
  const styles = useStyles2(getStyles);
  const kind = bodyKind(message, entry.protocol);
  const [mode, setMode] = useState<'pretty' | 'raw'>('pretty');
  const size = Number(message.bodyBytes ?? 0);
  if (kind === 'empty') {
    return <div className={styles.muted}>{size > 0 ? `Body of ${formatBytes(size)} not kept.` : 'No body.'}</div>;
  }
  const download = () => {
    const bytes = bodyBytes(message);
    const blob = new Blob([bytes as BlobPart], { type: header(message, 'content-type') || 'application/octet-stream' });
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = `${entry.id}-${which}.${extension(kind)}`;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };
  const prettyable = kind !== 'text' && kind !== 'binary';
  return (
    <div className={styles.section}>
      <div className={styles.bodyBar}>
        <span>
          Body <Badge text={KIND_LABEL[kind]} color="purple" />{' '}
          <span className={styles.muted}>{formatBytes(size || (message.body ?? '').length)}</span>
          {message.truncated && <Badge text="truncated" color="orange" tooltip="The agent kept only the start of this body" />}
        </span>
        <span className={styles.actions}>
          {prettyable && (
            <RadioButtonGroup<'pretty' | 'raw'>
              size="sm"
              value={mode}
              onChange={(v) => setMode(v)}
              options={[
                { label: 'Pretty', value: 'pretty' },
                { label: 'Raw', value: 'raw' },
              ]}
            />
          )}
          <Button size="sm" variant="secondary" icon="download-alt" onClick={download} data-testid="podwire-download-body">
            Download
          </Button>
        </span>
      </div>
      <div className={styles.body} data-testid="podwire-entry-body" data-kind={kind}>
        {mode === 'raw' && prettyable ? <RawText text={message.body ?? ''} /> : <PrettyBody kind={kind} message={message} />}
      </div>
    </div>
  );
}

function PrettyBody({ kind, message }: { kind: BodyKind; message: EntryMessage }) {
  const body = message.body ?? '';
  switch (kind) {
    case 'json':
      return <JsonBody body={body} />;
    case 'xml':
      return <XmlBody body={body} />;
    case 'form':
      return <FormBody body={body} />;
    case 'grpc':
      return <FieldTree nodes={parseFieldTree(body)} />;
    case 'protobuf':
      return <ProtobufBody body={body} />;
    case 'binary':
      return <HexBody body={body} />;
    default:
      return <RawText text={body} />;
  }
}

function JsonBody({ body }: { body: string }) {
  const parsed = useMemo(() => {
    try {
      return { value: JSON.parse(body) as unknown };
    } catch (e) {
      return { error: e instanceof Error ? e.message : String(e) };
    }
  }, [body]);
  if ('error' in parsed) {
    return (
      <>
        <Alert severity="info" title="Not valid JSON (truncated?); shown as text">
          {parsed.error}
        </Alert>
        <RawText text={body} />
      </>
    );
  }
  return <JsonTree value={parsed.value} />;
}

function XmlBody({ body }: { body: string }) {
  const pretty = useMemo(() => prettyXml(body), [body]);
  return <RawText text={pretty} />;
}

function FormBody({ body }: { body: string }) {
  const styles = useStyles2(getStyles);
  const pairs = useMemo(() => formPairs(body), [body]);
  return (
    <table className={styles.headers} data-testid="podwire-form-table">
      <thead>
        <tr>
          <th>name</th>
          <th>value</th>
        </tr>
      </thead>
      <tbody>
        {pairs.map(([k, v], i) => (
          <tr key={i}>
            <th>{k}</th>
            <td>{v}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function ProtobufBody({ body }: { body: string }) {
  const nodes = useMemo(() => {
    try {
      return decodeGrpc(bodyBytesOf(body));
    } catch {
      return null;
    }
  }, [body]);
  return nodes ? <FieldTree nodes={nodes} /> : <HexBody body={body} />;
}

function bodyBytesOf(base64: string): Uint8Array {
  return bodyBytes({ body: base64, bodyEncoding: 'base64' });
}

const HEX_PAGE = 256;

function HexBody({ body }: { body: string }) {
  const styles = useStyles2(getStyles);
  const bytes = useMemo(() => bodyBytesOf(body), [body]);
  const [lines, setLines] = useState(HEX_PAGE);
  const shown = useMemo(() => hexLines(bytes, 0, lines * 16).join('\n'), [bytes, lines]);
  const total = Math.ceil(bytes.length / 16);
  return (
    <>
      <pre className={styles.pre} data-testid="podwire-hexdump">
        {shown}
      </pre>
      {lines < total && (
        <Button size="sm" variant="secondary" fill="text" onClick={() => setLines(lines + HEX_PAGE * 16)}>
          Show more ({formatBytes(bytes.length - lines * 16)} left)
        </Button>
      )}
    </>
  );
}

const TEXT_PAGE = 64 * 1024;

/** RawText shows text, the first 64 KiB at first and more on demand. */
function RawText({ text }: { text: string }) {
  const styles = useStyles2(getStyles);
  const [upto, setUpto] = useState(TEXT_PAGE);
  return (
    <>
      <pre className={styles.pre}>{text.length > upto ? text.slice(0, upto) : text}</pre>
      {text.length > upto && (
        <Button size="sm" variant="secondary" fill="text" onClick={() => setUpto(upto + TEXT_PAGE * 16)}>
          Show more ({formatBytes(text.length - upto)} left)
        </Button>
      )}
    </>
  );
}

function FieldTree({ nodes }: { nodes: TreeNode[] }) {
  const styles = useStyles2(getStyles);
  return (
    <div className={styles.tree} data-testid="podwire-field-tree">
      {nodes.map((n, i) => (
        <FieldNode key={i} node={n} depth={0} />
      ))}
    </div>
  );
}

function FieldNode({ node, depth }: { node: TreeNode; depth: number }) {
  const styles = useStyles2(getStyles);
  const [open, setOpen] = useState(depth < 3);
  if (!node.children) {
    return (
      <div className={styles.treeRow}>
        {node.key && <span className={styles.fieldNo}>{node.key}</span>}
        {node.wire && <span className={styles.muted}> {node.wire}</span>}
        {node.key && ': '}
        <span className={styles.fieldValue}>{node.value}</span>
      </div>
    );
  }
  return (
    <div className={styles.treeRow}>
      <button type="button" className={styles.treeToggle} aria-expanded={open} onClick={() => setOpen(!open)}>
        {open ? '▾' : '▸'}
      </button>
      <span className={styles.fieldNo}>{node.key}</span>
      {node.wire && <span className={styles.muted}> {node.wire}</span>}
      {!open && <span className={styles.muted}> {'{'}… {node.children.length} fields{'}'}</span>}
      {open && (
        <div className={styles.treeChildren}>
          {node.children.map((c, i) => (
            <FieldNode key={i} node={c} depth={depth + 1} />
          ))}
        </div>
      )}
    </div>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  viewer: css({ display: 'flex', flexDirection: 'column', gap: theme.spacing(1.5), width: '100%', minWidth: 0 }),
  summary: css({ display: 'flex', flexDirection: 'column', gap: theme.spacing(1) }),
  title: css({ display: 'flex', alignItems: 'center', gap: theme.spacing(1), flexWrap: 'wrap' }),
  method: css({ fontWeight: theme.typography.fontWeightBold }),
  path: css({ fontFamily: theme.typography.fontFamilyMonospace, wordBreak: 'break-all' }),
  muted: css({ color: theme.colors.text.secondary }),
  kv: css({
    fontSize: theme.typography.bodySmall.fontSize,
    width: 'auto',
    th: { width: '1%', whiteSpace: 'nowrap', textAlign: 'left', paddingRight: theme.spacing(2), color: theme.colors.text.secondary, fontWeight: 'normal', verticalAlign: 'top' },
  }),
  timings: css({ display: 'flex', flexDirection: 'column', gap: theme.spacing(0.5) }),
  bar: css({ position: 'relative', height: 10, background: theme.colors.background.secondary, borderRadius: theme.shape.radius.default }),
  phase: css({ position: 'absolute', top: 0, bottom: 0, borderRadius: 2 }),
  request: css({ background: theme.visualization.getColorByName('blue') }),
  waiting: css({ background: theme.visualization.getColorByName('yellow') }),
  response: css({ background: theme.visualization.getColorByName('green') }),
  swatch: css({ display: 'inline-block', width: 10, height: 10, borderRadius: 2 }),
  legend: css({ display: 'flex', gap: theme.spacing(2), fontSize: theme.typography.bodySmall.fontSize, flexWrap: 'wrap' }),
  tabsRow: css({ display: 'flex', justifyContent: 'space-between', alignItems: 'flex-end', gap: theme.spacing(1) }),
  message: css({ display: 'flex', flexDirection: 'column', gap: theme.spacing(1), paddingTop: theme.spacing(1) }),
  section: css({ summary: { cursor: 'pointer', color: theme.colors.text.secondary } }),
  headers: css({
    width: '100%',
    fontFamily: theme.typography.fontFamilyMonospace,
    fontSize: theme.typography.bodySmall.fontSize,
    th: { width: '1%', textAlign: 'left', verticalAlign: 'top', paddingRight: theme.spacing(2), color: theme.colors.primary.text, fontWeight: 'normal', whiteSpace: 'nowrap' },
    td: { wordBreak: 'break-all' },
  }),
  bodyBar: css({ display: 'flex', justifyContent: 'space-between', alignItems: 'center', gap: theme.spacing(1), marginBottom: theme.spacing(0.5) }),
  actions: css({ display: 'flex', gap: theme.spacing(1), alignItems: 'center' }),
  body: css({
    maxHeight: 600,
    overflow: 'auto',
    padding: theme.spacing(1),
    background: theme.colors.background.canvas,
    border: `1px solid ${theme.colors.border.weak}`,
    borderRadius: theme.shape.radius.default,
  }),
  pre: css({ margin: 0, padding: 0, border: 'none', background: 'transparent', fontSize: theme.typography.bodySmall.fontSize, whiteSpace: 'pre-wrap', wordBreak: 'break-all' }),
  tree: css({ fontFamily: theme.typography.fontFamilyMonospace, fontSize: theme.typography.bodySmall.fontSize, lineHeight: '18px' }),
  treeRow: css({ position: 'relative', paddingLeft: 14 }),
  treeChildren: css({ paddingLeft: theme.spacing(1), borderLeft: `1px dotted ${theme.colors.border.weak}` }),
  treeToggle: css({ position: 'absolute', left: 0, width: 14, padding: 0, border: 'none', background: 'none', color: theme.colors.text.secondary, cursor: 'pointer', font: 'inherit' }),
  fieldNo: css({ color: theme.colors.primary.text }),
  fieldValue: css({ wordBreak: 'break-all' }),
});
