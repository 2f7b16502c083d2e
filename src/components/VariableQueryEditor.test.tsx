import { render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import React, { useState } from 'react';
import { describe, expect, it } from 'vitest';

import type { DataSource } from '../datasource';
import { fakeApi } from '../test/fakes';
import { PodwireQuery } from '../types';
import { placeError } from './FilterField';
import { VariableQueryEditor } from './VariableQueryEditor';

describe('variable query editor', () => {
  it('picks the field whose values the variable lists, with a filter', async () => {
    const api = fakeApi({ get: () => [], post: () => ({ ok: true }) });
    const seen: PodwireQuery[] = [];
    function Harness() {
      const [q, setQ] = useState<PodwireQuery>({ refId: 'V' });
      return (
        <VariableQueryEditor
          datasource={api as unknown as DataSource}
          query={q}
          onRunQuery={() => {}}
          onChange={(n) => {
            seen.push(n);
            setQ(n);
          }}
        />
      );
    }
    const user = userEvent.setup();
    render(<Harness />);
    // A new variable lists namespaces until told otherwise.
    expect(seen[0]).toMatchObject({ queryType: 'values', field: 'namespace' });
    await user.click(screen.getByLabelText('workload'));
    expect(seen.pop()).toMatchObject({ queryType: 'values', field: 'workload' });
    await user.type(screen.getByTestId('podwire-filter-input'), 'dst.namespace == $namespace');
    expect(seen.pop()).toMatchObject({ queryType: 'values', field: 'workload', filter: 'dst.namespace == $namespace' });
    await user.click(screen.getByLabelText('other field'));
    await user.type(screen.getByLabelText('Field'), 'dst.service');
    await user.tab();
    expect(seen.pop()).toMatchObject({ queryType: 'values', field: 'dst.service' });
  });
});

describe('placeError', () => {
  it('points into the typed filter when variables did not move the error', () => {
    const e = placeError('staus == $ns', 'staus == "shop"', { ok: false, error: 'filter:1:1: undeclared', line: 1, column: 1 });
    expect(e).toMatchObject({ index: 0, line: 1, column: 1, message: 'undeclared' });
  });
  it('does not point at the wrong place when the error is after a variable', () => {
    const e = placeError('x == $ns && staus', 'x == "shop" && staus', { ok: false, error: 'filter:1:16: undeclared', line: 1, column: 16 });
    expect(e.index).toBeUndefined();
    expect(e.message).toContain('x == "shop" && staus');
  });
});
