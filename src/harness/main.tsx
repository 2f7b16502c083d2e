// The browser tests' page: the plugin's real QueryEditor (with the filter
// field), ConfigEditor and entry viewer, in @grafana/ui's theme, with a
// DataSource whose backend calls go to this page's origin. There the test
// host (internal/grafanahost) forwards them to the real plugin backend, as
// Grafana's server would. Not part of what Grafana loads.
import { css } from '@emotion/css';
import {
  CoreApp,
  createTheme,
  DataFrame,
  DataQueryRequest,
  DataQueryResponse,
  DataSourceInstanceSettings,
  DataSourcePluginMeta,
  DataSourceSettings,
  dateTime,
  GrafanaTheme2,
} from '@grafana/data';
import { setBackendSrv } from '@grafana/runtime';
import { Button, ThemeContext, useStyles2 } from '@grafana/ui';
import React, { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { flushSync } from 'react-dom';
import { lastValueFrom } from 'rxjs';

import { ConfigEditor } from '../components/ConfigEditor';
import { EntryViewer } from '../components/entry/EntryViewer';
import { QueryEditor } from '../components/QueryEditor';
import { DataSource } from '../datasource';
import { Entry, PodwireOptions, PodwireQuery, PodwireSecureJsonData } from '../types';
import { FetchBackendSrv } from './backendSrv';

const backendSrv = new FetchBackendSrv();
setBackendSrv(backendSrv);

const theme = createTheme({ colors: { mode: 'dark' } });
const uid = new URLSearchParams(window.location.search).get('uid') ?? 'podwire';
const PLUGIN_ID = 'podwire-traffic-datasource';

type Settings = DataSourceSettings<PodwireOptions, PodwireSecureJsonData>;

/** noTemplates stands in for Grafana's TemplateSrv: the harness has no
 * dashboard variables. */
const noTemplates = { replace: (target?: string) => target ?? '' };

function instanceSettings(s: Settings): DataSourceInstanceSettings<PodwireOptions> {
  const meta = { id: PLUGIN_ID, name: 'Podwire', type: 'datasource', backend: true, info: {} } as unknown as DataSourcePluginMeta;
  return { id: s.id, uid: s.uid, type: PLUGIN_ID, name: s.name, meta, jsonData: s.jsonData, access: 'proxy', readOnly: false };
}

function settingsUrl(): string {
  return `/api/datasources/uid/${encodeURIComponent(uid)}`;
}

function App() {
  const styles = useStyles2(getStyles);
  const [settings, setSettings] = useState<Settings | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);

  useEffect(() => {
    backendSrv
      .get<Settings>(settingsUrl())
      .then(setSettings)
      .catch((e) => setLoadError(describe(e)));
  }, []);
  // One DataSource per saved settings, as Grafana makes one per version.
  const ds = useMemo(() => (settings ? new DataSource(instanceSettings(settings), noTemplates) : null), [settings]);

  if (loadError) {
    return <div data-testid="harness-load-error">Loading the data source failed: {loadError}</div>;
  }
  if (!settings || !ds) {
    return <div>Loading…</div>;
  }
  return (
    <div className={styles.page}>
      <section className={styles.section}>
        <h2>Query editor</h2>
        <QueryPanel ds={ds} />
      </section>
      <section className={styles.section}>
        <h2>Data source settings</h2>
        <ConfigPanel saved={settings} onSaved={setSettings} />
      </section>
    </div>
  );
}

/** QueryPanel is the query editor and what its query answered, as in
 * Explore: a traffic table's ids open the entry query, as its data links do. */
function QueryPanel({ ds }: { ds: DataSource }) {
  const styles = useStyles2(getStyles);
  const [query, setQuery] = useState<PodwireQuery>({ refId: 'A', queryType: 'traffic', filter: '', limit: 100 });
  const latest = useRef(query);
  const [result, setResult] = useState<{ frames: DataFrame[]; error?: string } | null>(null);
  const [running, setRunning] = useState(false);

  const onChange = useCallback((q: PodwireQuery) => {
    latest.current = q;
    setQuery(q);
  }, []);

  const run = useCallback(async () => {
    const q = latest.current;
    if (!ds.filterQuery(q)) {
      return;
    }
    setRunning(true);
    try {
      const to = dateTime();
      const from = dateTime(to).subtract(1, 'hour');
      const request = {
        requestId: 'harness',
        app: CoreApp.Explore,
        targets: [q],
        range: { from, to, raw: { from: 'now-1h', to: 'now' } },
        interval: '1s',
        intervalMs: 1000,
        maxDataPoints: 1000,
        scopedVars: {},
        timezone: 'utc',
        startTime: Date.now(),
      } as unknown as DataQueryRequest<PodwireQuery>;
      const rsp: DataQueryResponse = await lastValueFrom(ds.query(request));
      const error = rsp.errors?.map((e) => e.message).join('; ') || rsp.error?.message;
      setResult({ frames: (rsp.data ?? []) as DataFrame[], error });
    } catch (e) {
      setResult({ frames: [], error: describe(e) });
    } finally {
      setRunning(false);
    }
  }, [ds]);

  const openEntry = (id: string) => {
    onChange({ refId: 'A', queryType: 'entry', entryId: id });
    setResult(null);
  };

  return (
    <div className={styles.column}>
      <QueryEditor datasource={ds} query={query} onChange={onChange} onRunQuery={run} app={CoreApp.Explore} />
      <div>
        <Button size="sm" onClick={run} data-testid="harness-run-query" disabled={running}>
          Run query
        </Button>
      </div>
      {result?.error && (
        <div className={styles.error} data-testid="harness-query-error">
          {result.error}
        </div>
      )}
      {result && query.queryType !== 'entry' && <Frames frames={result.frames} onOpen={openEntry} />}
    </div>
  );
}

function Frames({ frames, onOpen }: { frames: DataFrame[]; onOpen: (id: string) => void }) {
  const styles = useStyles2(getStyles);
  const frame = frames.find((f) => f.fields.some((x) => x.name === 'id'));
  if (!frame) {
    return <div data-testid="harness-frames">{frames.length} frames</div>;
  }
  const col = (name: string) => frame.fields.find((f) => f.name === name)?.values ?? [];
  const ids = col('id');
  const shown = ['method', 'path', 'status'];
  return (
    <table className={styles.table} data-testid="harness-frames">
      <thead>
        <tr>
          <th>id</th>
          {shown.map((n) => (
            <th key={n}>{n}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {Array.from({ length: frame.length }, (_, i) => (
          <tr key={String(ids[i])} data-testid="harness-row">
            <td>
              <button type="button" className={styles.link} data-testid="harness-entry-link" onClick={() => onOpen(String(ids[i]))}>
                {String(ids[i])}
              </button>
            </td>
            {shown.map((n) => (
              <td key={n}>{String(col(n)[i] ?? '')}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** ConfigPanel is the config editor with Grafana's "Save & test": the
 * settings are saved to the host, then its health check runs in the plugin. */
function ConfigPanel({ saved, onSaved }: { saved: Settings; onSaved: (s: Settings) => void }) {
  const styles = useStyles2(getStyles);
  const [options, setOptions] = useState<Settings>(saved);
  const [result, setResult] = useState<{ status: string; message: string; details?: string } | null>(null);
  const [busy, setBusy] = useState(false);

  const saveAndTest = async () => {
    setBusy(true);
    setResult(null);
    try {
      const res = await backendSrv.put<{ datasource: Settings }>(settingsUrl(), options);
      setOptions(res.datasource);
      onSaved(res.datasource);
      const ds = new DataSource(instanceSettings(res.datasource), noTemplates);
      const health = await ds.testDatasource();
      const details = health.details as { message?: string } | undefined;
      setResult({ status: health.status, message: health.message, details: details?.message });
    } catch (e) {
      setResult({ status: 'error', message: describe(e) });
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className={styles.column}>
      <ConfigEditor options={options} onOptionsChange={setOptions} />
      <div>
        <Button onClick={saveAndTest} disabled={busy} data-testid="harness-save-test">
          Save &amp; test
        </Button>
      </div>
      {result && (
        <div className={result.status === 'success' ? styles.ok : styles.error} data-testid="harness-test-result" data-status={result.status}>
          <div>{result.message}</div>
          {result.details && <pre>{result.details}</pre>}
        </div>
      )}
    </div>
  );
}

function describe(e: unknown): string {
  if (e && typeof e === 'object') {
    const o = e as { message?: string; data?: { message?: string; error?: string }; error?: { message?: string }; status?: number };
    return o.data?.error ?? o.data?.message ?? o.message ?? o.error?.message ?? String(o.status ?? 'request failed');
  }
  return String(e);
}

const getStyles = (t: GrafanaTheme2) => ({
  page: css({
    display: 'flex',
    flexDirection: 'column',
    gap: t.spacing(3),
    padding: t.spacing(2),
    background: t.colors.background.canvas,
    color: t.colors.text.primary,
    fontFamily: t.typography.fontFamily,
    fontSize: t.typography.body.fontSize,
    minHeight: '100vh',
  }),
  section: css({ background: t.colors.background.primary, padding: t.spacing(2), border: `1px solid ${t.colors.border.weak}` }),
  column: css({ display: 'flex', flexDirection: 'column', gap: t.spacing(1) }),
  error: css({ color: t.colors.error.text, whiteSpace: 'pre-wrap' }),
  ok: css({ color: t.colors.success.text, whiteSpace: 'pre-wrap' }),
  table: css({ borderCollapse: 'collapse', 'td, th': { padding: t.spacing(0.25, 1), borderBottom: `1px solid ${t.colors.border.weak}`, textAlign: 'left' } }),
  link: css({ border: 'none', background: 'none', padding: 0, cursor: 'pointer', color: t.colors.text.link, fontFamily: t.typography.fontFamilyMonospace }),
});

/** renderEntry mounts the entry viewer with an entry already fetched and
 * resolves with the milliseconds until its JSON tree is on screen (two
 * animation frames after it is in the document, so layout and paint are in). */
function renderEntry(entry: Entry): Promise<number> {
  const host = document.getElementById('measure')!;
  const root = createRoot(host);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    flushSync(() =>
      root.render(
        <ThemeContext.Provider value={theme}>
          <EntryViewer entry={entry} />
        </ThemeContext.Provider>
      )
    );
    const deadline = t0 + 60000;
    const check = () => {
      if (host.querySelector('[data-testid="podwire-json-tree"]')) {
        requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - t0)));
      } else if (performance.now() > deadline) {
        reject(new Error('the JSON tree did not appear within 60 s'));
      } else {
        requestAnimationFrame(check);
      }
    };
    check();
  });
}

declare global {
  interface Window {
    podwireHarness?: { renderEntry: (entry: Entry) => Promise<number> };
  }
}
window.podwireHarness = { renderEntry };

document.body.style.margin = '0';
document.body.style.background = theme.colors.background.canvas;
createRoot(document.getElementById('root')!).render(
  <ThemeContext.Provider value={theme}>
    <App />
  </ThemeContext.Provider>
);
