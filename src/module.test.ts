// The built module.js is what Grafana loads: an AMD module whose
// dependencies are only the modules Grafana shares, and whose `plugin`
// export is the data source plugin with its editors.
import * as emotion from '@emotion/css';
import * as grafanaData from '@grafana/data';
import * as grafanaRuntime from '@grafana/runtime';
import * as grafanaUi from '@grafana/ui';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as react from 'react';
import * as rxjs from 'rxjs';
import * as rxjsOperators from 'rxjs/operators';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { externals } from '../vite.externals';

const shared: Record<string, unknown> = {
  react,
  '@grafana/data': grafanaData,
  '@grafana/ui': grafanaUi,
  '@grafana/runtime': grafanaRuntime,
  '@emotion/css': emotion,
  rxjs,
  'rxjs/operators': rxjsOperators,
};

describe('dist/module.js', () => {
  let out: string;
  let code: string;
  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), 'podwire-module-'));
    // The real build, as `npm run build` runs it (esbuild does not run under jsdom).
    const root = resolve(__dirname, '..');
    execFileSync(process.execPath, [join(root, 'node_modules/vite/bin/vite.js'), 'build', '--outDir', out, '--logLevel', 'warn'], { cwd: root, stdio: 'pipe' });
    code = readFileSync(join(out, 'module.js'), 'utf8');
  }, 120000);
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('is an AMD module that needs only what Grafana provides', () => {
    const deps = /^define\((\[[^\]]*\])/.exec(code);
    expect(deps).not.toBeNull();
    const names: string[] = JSON.parse(deps![1]);
    for (const n of names) {
      expect(['require', 'exports', ...externals], n).toContain(n);
    }
    // React and @grafana/ui are not bundled in.
    expect(code).not.toContain('__SECRET_INTERNALS');
    expect(code.length).toBeLessThan(200 * 1024);
  });

  it('exports the data source plugin with its editors and variable support', () => {
    let exported: Record<string, unknown> = {};
    const define = (deps: string[], factory: (...a: unknown[]) => void) => {
      const exports: Record<string, unknown> = {};
      factory(
        ...deps.map((d) => {
          if (d === 'exports') {
            return exports;
          }
          if (d === 'require') {
            return () => {
              throw new Error('no require');
            };
          }
          if (!(d in shared)) {
            throw new Error(`module.js needs ${d}, which the test does not provide`);
          }
          return shared[d];
        })
      );
      exported = exports;
    };
    new Function('define', code)(define);
    const plugin = exported.plugin as grafanaData.DataSourcePlugin<grafanaData.DataSourceApi>;
    expect(plugin).toBeInstanceOf(grafanaData.DataSourcePlugin);
    expect(plugin.components.QueryEditor).toBeTypeOf('function');
    expect(plugin.components.ConfigEditor).toBeTypeOf('function');
    const ds = new plugin.DataSourceClass({
      id: 1,
      uid: 'podwire',
      type: 'podwire-traffic-datasource',
      name: 'Podwire',
      jsonData: {},
      meta: { id: 'podwire-traffic-datasource' },
    } as unknown as grafanaData.DataSourceInstanceSettings);
    expect(ds.variables?.getType()).toBe(grafanaData.VariableSupportType.Custom);
  });
});
