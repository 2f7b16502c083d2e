import { render, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import React, { useState } from 'react';
import { describe, expect, it, vi } from 'vitest';

import type { DataSource } from '../datasource';
import { fakeApi } from '../test/fakes';
import { FieldInfo, PodwireQuery, ValidateResult } from '../types';
import { QueryEditor } from './QueryEditor';

const FIELDS: FieldInfo[] = [
  { name: 'status', type: 'int', doc: 'HTTP status' },
  { name: 'src.namespace', type: 'string', doc: 'Client namespace' },
  { name: 'dst.namespace', type: 'string', doc: 'Server namespace' },
  { name: 'dst.pod', type: 'string', doc: 'Server pod' },
];

/** validator says "undeclared reference" at the first "staus", like the backend. */
function validator(body: unknown): ValidateResult {
  const filter = (body as { filter: string }).filter;
  const at = filter.indexOf('staus');
  if (at < 0) {
    return { ok: true };
  }
  const before = filter.slice(0, at);
  const line = before.split('\n').length;
  const column = at - before.lastIndexOf('\n');
  return { ok: false, error: `filter:${line}:${column}: undeclared reference to 'staus' (did you mean 'status'?)`, line, column, offset: at };
}

function setup(initial: Partial<PodwireQuery> = {}, interpolate?: (f: string) => string) {
  const api = fakeApi({
    get: (path, params) => {
      if (path === 'fields') {
        return FIELDS;
      }
      if (path === 'complete') {
        const all = ['shop', 'shipping', 'front'];
        const prefix = String(params?.prefix ?? '');
        return { values: all.filter((v) => v.startsWith(prefix)).map((value, i) => ({ value, count: 10 - i })) };
      }
      if (path.startsWith('entries/')) {
        return { id: decodeURIComponent(path.slice(8)), protocol: 'http', method: 'GET', path: '/cart', status: 200, response: { body: 'ok', headers: {} } };
      }
      throw new Error('unexpected ' + path);
    },
    post: (path, body) => {
      if (path === 'validate') {
        return validator(body);
      }
      throw new Error('unexpected ' + path);
    },
  });
  const ds = Object.assign(api, { interpolateFilter: interpolate }) as unknown as DataSource;
  const onRunQuery = vi.fn();
  const changes: PodwireQuery[] = [];
  function Harness() {
    const [query, setQuery] = useState<PodwireQuery>({ refId: 'A', queryType: 'traffic', filter: '', limit: 1000, ...initial });
    return (
      <QueryEditor
        datasource={ds}
        query={query}
        onRunQuery={onRunQuery}
        onChange={(q) => {
          changes.push(q);
          setQuery(q);
        }}
      />
    );
  }
  const user = userEvent.setup();
  render(<Harness />);
  return { api, user, onRunQuery, changes };
}

describe('filter field', () => {
  it('validates through /validate and shows the error at its position', async () => {
    const { api, user } = setup();
    const input = screen.getByTestId('podwire-filter-input');
    await user.type(input, 'http && staus >= 500');
    const error = await screen.findByTestId('podwire-filter-error', {}, { timeout: 3000 });
    expect(error.textContent).toContain("line 1, column 9: undeclared reference to 'staus'");
    // The caret under the line points at the column.
    expect(error.querySelector('pre')!.textContent).toBe('http && staus >= 500\n        ^');
    // And the text at that position is marked in the field itself.
    expect(screen.getByTestId('podwire-filter-error-mark').textContent).toBe('s');
    expect(input.getAttribute('aria-invalid')).toBe('true');
    // Debounced: one call for the whole typed text, not one per key.
    const validations = api.calls.filter((c) => c.path === 'validate');
    expect(validations.length).toBeLessThan(4);
    expect(validations[validations.length - 1].body).toEqual({ filter: 'http && staus >= 500' });

    await user.clear(input);
    await user.type(input, 'http && status >= 500');
    await waitFor(() => expect(screen.queryByTestId('podwire-filter-error')).toBeNull(), { timeout: 3000 });
  });

  it('places errors on later lines', async () => {
    const { user } = setup();
    await user.type(screen.getByTestId('podwire-filter-input'), 'http &&{Shift>}{Enter}{/Shift}');
    // Shift+Enter runs the query instead of adding a line: use a plain newline.
    await user.type(screen.getByTestId('podwire-filter-input'), '{Enter}  staus > 1');
    const error = await screen.findByTestId('podwire-filter-error', {}, { timeout: 3000 });
    expect(error.textContent).toContain('line 2, column 3');
  });

  it('validates the filter with variables expanded and says so when the error is in them', async () => {
    const { api, user } = setup({}, (f) => f.replace('$ns', '"shop"'));
    await user.type(screen.getByTestId('podwire-filter-input'), 'dst.namespace == $ns');
    await waitFor(() => expect(api.calls.some((c) => c.path === 'validate')).toBe(true), { timeout: 3000 });
    expect(api.calls.filter((c) => c.path === 'validate').pop()!.body).toEqual({ filter: 'dst.namespace == "shop"' });
    expect(screen.queryByTestId('podwire-filter-error')).toBeNull();
  });

  it('completes field names from /fields and values from /complete', async () => {
    const { api, user } = setup();
    const input = screen.getByTestId('podwire-filter-input') as HTMLTextAreaElement;
    await user.type(input, 'dst.na');
    const items = await screen.findAllByTestId('podwire-completion-item');
    expect(items.map((i) => i.textContent)).toEqual(['dst.namespacestring']);
    await user.keyboard('{Enter}');
    expect(input.value).toBe('dst.namespace');

    await user.type(input, ' == "sh');
    await waitFor(() => expect(screen.getAllByTestId('podwire-completion-item').map((i) => i.querySelector('span')!.textContent)).toEqual(['shop', 'shipping']));
    const complete = api.calls.filter((c) => c.path === 'complete').pop()!;
    expect(complete.params).toEqual({ field: 'dst.namespace', prefix: 'sh' });
    await user.click(screen.getAllByTestId('podwire-completion-item')[1]);
    expect(input.value).toBe('dst.namespace == "shipping"');
    expect(screen.queryByTestId('podwire-completion')).toBeNull();
  });

  it('opens completion on Ctrl+Space and moves with the arrows', async () => {
    const { user } = setup();
    const input = screen.getByTestId('podwire-filter-input') as HTMLTextAreaElement;
    await user.click(input);
    await user.keyboard('{Control>} {/Control}');
    const items = await screen.findAllByTestId('podwire-completion-item');
    expect(items).toHaveLength(FIELDS.length);
    await user.keyboard('{ArrowDown}{ArrowDown}{Tab}');
    expect(input.value).toBe('dst.namespace');
  });

  it('runs the query on Shift+Enter', async () => {
    const { user, onRunQuery } = setup();
    await user.type(screen.getByTestId('podwire-filter-input'), 'http{Shift>}{Enter}{/Shift}');
    expect(onRunQuery).toHaveBeenCalled();
  });
});

describe('query editor', () => {
  it('switches query types and shows what each uses', async () => {
    const { user, changes, onRunQuery } = setup();
    expect(screen.getByTestId('podwire-limit')).toBeTruthy();
    expect(screen.getByTestId('podwire-live')).toBeTruthy();
    expect(screen.queryByLabelText('Group by')).toBeNull();

    await user.click(screen.getByLabelText('Service map'));
    expect(changes.pop()!.queryType).toBe('serviceMap');
    expect(onRunQuery).toHaveBeenCalled();
    expect(screen.queryByTestId('podwire-limit')).toBeNull();
    expect(screen.queryByTestId('podwire-live')).toBeNull();
    expect(screen.getByText('Group by')).toBeTruthy();

    await user.click(screen.getByLabelText('Logs'));
    expect(changes.pop()!.queryType).toBe('logs');
    expect(screen.getByTestId('podwire-live')).toBeTruthy();

    await user.click(screen.getByLabelText('Entry'));
    expect(screen.queryByTestId('podwire-filter-input')).toBeNull();
    const id = screen.getByTestId('podwire-entry-id');
    await user.type(id, 'node-1-42{Enter}');
    expect(changes.pop()).toMatchObject({ queryType: 'entry', entryId: 'node-1-42' });
    // The entry's view is in the editor, for the data links that open it in Explore.
    expect(await screen.findByTestId('podwire-entry-viewer')).toBeTruthy();
    expect(screen.getByTestId('podwire-entry-body').textContent).toContain('ok');
  });

  it('shows the entry of an entry query opened from a data link', async () => {
    const { api } = setup({ queryType: 'entry', entryId: 'node-2-7' });
    expect(await screen.findByTestId('podwire-entry-viewer')).toBeTruthy();
    expect(api.calls.find((c) => c.path.startsWith('entries/'))!.path).toBe('entries/node-2-7');
  });

  it('narrows a metrics query to one metric and forgets it for other types', async () => {
    const { user, changes } = setup({ queryType: 'metrics', metric: 'latencyP95' });
    expect(screen.getByText('Metric')).toBeTruthy();
    expect(screen.getByText('p95 latency')).toBeTruthy();
    await user.click(screen.getByLabelText('Traffic'));
    const q = changes.pop()!;
    expect(q.queryType).toBe('traffic');
    expect(q.metric).toBeUndefined();
    expect(screen.queryByText('Metric')).toBeNull();
  });

  it('turns live on and sets the limit', async () => {
    const { user, changes } = setup();
    await user.click(screen.getByTestId('podwire-live'));
    expect(changes.pop()!.live).toBe(true);
    const limit = screen.getByTestId('podwire-limit');
    await user.clear(limit);
    await user.type(limit, '200');
    await user.tab();
    expect(changes.pop()!.limit).toBe(200);
  });

  it('puts a clicked example into the filter', async () => {
    const { user, changes } = setup();
    await user.click(screen.getByText('Filter examples'));
    await user.click(screen.getByText('grpc && status != 0'));
    expect(changes.pop()!.filter).toBe('grpc && status != 0');
  });
});
