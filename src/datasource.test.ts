import { DataSourceInstanceSettings, FieldType, toDataFrame } from '@grafana/data';
import { describe, expect, it } from 'vitest';

import { DataSource, framesToValues } from './datasource';
import { fakeTemplates } from './test/fakes';
import { PodwireOptions } from './types';

function newDataSource(vars: Record<string, string | string[]> = {}) {
  const settings = {
    id: 1,
    uid: 'podwire',
    type: 'podwire-traffic-datasource',
    name: 'Podwire',
    jsonData: { agents: ['127.0.0.1:7700'] },
    meta: { id: 'podwire-traffic-datasource' },
    access: 'proxy',
    readOnly: false,
  } as unknown as DataSourceInstanceSettings<PodwireOptions>;
  return new DataSource(settings, fakeTemplates(vars));
}

describe('applyTemplateVariables', () => {
  it('expands variables in the filter and adds ad-hoc filters', () => {
    const ds = newDataSource({ namespace: ['shop', 'front'], workload: 'cart' });
    const q = ds.applyTemplateVariables(
      { refId: 'A', queryType: 'traffic', filter: 'dst.namespace == $namespace || dst.workload == $workload' },
      {},
      [{ key: 'method', operator: '=', value: 'GET' }]
    );
    expect(q.filter).toBe('(dst.namespace in ["shop", "front"] || dst.workload == "cart"\n) && method == "GET"');
  });

  it('uses field types from the tag keys for ad-hoc values', async () => {
    const ds = newDataSource();
    (ds as unknown as { getResource: unknown }).getResource = async (path: string) =>
      path === 'tag-keys' ? [{ text: 'status', type: 'int' }, { text: 'dst.namespace', type: 'string' }] : [];
    expect(await ds.getTagKeys()).toEqual([{ text: 'status' }, { text: 'dst.namespace' }]);
    const q = ds.applyTemplateVariables({ refId: 'A', filter: '' }, {}, [{ key: 'status', operator: '>', value: '499' }]);
    expect(q.filter).toBe('status > 499');
  });

  it('expands entry ids, fields and group-by, and leaves entry queries free of ad-hoc terms', () => {
    const ds = newDataSource({ id: 'node-1-9', g: 'service' });
    const q = ds.applyTemplateVariables({ refId: 'A', queryType: 'entry', entryId: '$id' }, {}, [{ key: 'method', operator: '=', value: 'GET' }]);
    expect(q.entryId).toBe('node-1-9');
    expect(q.filter).toBe('');
    expect(ds.applyTemplateVariables({ refId: 'A', queryType: 'metrics', groupBy: '$g' }, {}).groupBy).toBe('service');
  });
});

describe('filterQuery', () => {
  it('skips hidden queries and those missing what they need', () => {
    const ds = newDataSource();
    expect(ds.filterQuery({ refId: 'A', queryType: 'traffic', filter: '' })).toBe(true);
    expect(ds.filterQuery({ refId: 'A', queryType: 'traffic', hide: true })).toBe(false);
    expect(ds.filterQuery({ refId: 'A', queryType: 'entry', entryId: ' ' })).toBe(false);
    expect(ds.filterQuery({ refId: 'A', queryType: 'entry', entryId: 'n-1' })).toBe(true);
    expect(ds.filterQuery({ refId: 'A', queryType: 'values' })).toBe(false);
  });
});

describe('framesToValues', () => {
  it('reads the values frame, skipping empty and repeated values', () => {
    const frame = toDataFrame({ fields: [{ name: 'value', type: FieldType.string, values: ['shop', '', 'front', 'shop'] }] });
    expect(framesToValues([frame])).toEqual([
      { text: 'shop', value: 'shop' },
      { text: 'front', value: 'front' },
    ]);
  });
});

describe('testDatasource', () => {
  const details = {
    answering: 1,
    total: 2,
    agents: [
      { address: '10.0.0.1:7700', ok: true, node: 'node-a', version: 'v1', capture: 'running' },
      { address: '10.0.0.2:7700', ok: false, error: 'connection refused' },
    ],
  };

  it('keeps the per-agent lines of a healthy answer', async () => {
    const ds = newDataSource();
    (ds as unknown as { callHealthCheck: unknown }).callHealthCheck = async () => ({ status: 'OK', message: '1 of 2 agents answer', details });
    const res = await ds.testDatasource();
    expect(res.status).toBe('success');
    expect(res.message).toBe('1 of 2 agents answer');
    const msg = (res.details as { message: string }).message;
    expect(msg).toContain('✓ 10.0.0.1:7700: node node-a');
    expect(msg).toContain('✗ 10.0.0.2:7700: connection refused');
  });

  it('reports a failed check as an error with its details', async () => {
    const ds = newDataSource();
    (ds as unknown as { callHealthCheck: unknown }).callHealthCheck = async () => ({
      status: 'ERROR',
      message: 'no agent answers',
      details: { ...details, answering: 0, agents: [details.agents[1]] },
    });
    const res = await ds.testDatasource();
    expect(res.status).toBe('error');
    expect((res.details as { message: string }).message).toContain('connection refused');
  });
});
