// The provisioned dashboards must work the moment the plugin is installed:
// every panel queries the provisioned data source with a query the backend
// knows, and its filter expands to CEL with the dashboard's variables.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { ALL_VALUE, interpolateFilter, splitCel } from './interpolate';
import { fakeTemplates } from './test/fakes';
import { MAP_GROUPS, METRICS_GROUPS, PodwireQuery } from './types';

const root = join(__dirname, '..', 'provisioning');
const dashDir = join(root, 'dashboards');

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: Array<PodwireQuery & { datasource?: { uid: string } }>;
  panels?: Panel[];
}

const dashboards = readdirSync(dashDir)
  .filter((f) => f.endsWith('.json'))
  .map((f) => ({ file: f, json: JSON.parse(readFileSync(join(dashDir, f), 'utf8')) }));

const dsYaml = readFileSync(join(root, 'datasources', 'podwire.yaml'), 'utf8');
const dsUid = /^\s+uid:\s*(\S+)/m.exec(dsYaml)?.[1];

describe('provisioning', () => {
  it('provisions the data source with the uid the dashboards use', () => {
    expect(dsUid).toBe('podwire');
    expect(dsYaml).toMatch(/type:\s*podwire-traffic-datasource/);
    expect(dsYaml).toContain('${PODWIRE_AGENTS}');
  });

  it('has the three dashboards', () => {
    expect(dashboards.map((d) => d.json.title).sort()).toEqual(['Podwire / Service map', 'Podwire / Traffic', 'Podwire / Workload']);
  });

  for (const { file, json } of dashboards) {
    describe(file, () => {
      const panels: Panel[] = json.panels;
      const vars: Record<string, string | string[]> = {};
      for (const v of json.templating.list) {
        if (v.type === 'query') {
          expect(v.datasource.uid).toBe(dsUid);
          expect(v.query.queryType).toBe('values');
          vars[v.name] = v.includeAll ? ALL_VALUE : v.multi ? ['shop', "o'neil"] : 'shop';
        }
      }

      it('keeps every panel at the top level (no rows), each with a Podwire query', () => {
        for (const p of panels) {
          expect(p.panels, p.title).toBeUndefined();
          expect(p.type).not.toBe('row');
          expect(p.datasource?.uid, p.title).toBe(dsUid);
          expect(p.targets?.length, p.title).toBeGreaterThan(0);
        }
      });

      it('has queries the backend knows, whose filters expand to CEL', () => {
        const templates = fakeTemplates(vars);
        for (const p of panels) {
          for (const t of p.targets!) {
            expect(t.datasource?.uid).toBe(dsUid);
            expect(['traffic', 'logs', 'serviceMap', 'metrics']).toContain(t.queryType);
            if (t.queryType === 'serviceMap') {
              expect(MAP_GROUPS).toContain(t.groupBy);
            }
            if (t.queryType === 'metrics') {
              expect(METRICS_GROUPS).toContain(t.groupBy);
            }
            const cel = interpolateFilter(t.filter ?? '', templates);
            // No variable is left outside string literals.
            const code = splitCel(cel)
              .filter((s) => !s.quote)
              .map((s) => s.text)
              .join('');
            expect(code, `${p.title}: ${cel}`).not.toMatch(/\$/);
          }
        }
      });
    });
  }
});
