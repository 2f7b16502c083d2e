import { DataSourceSettings } from '@grafana/data';
import { fireEvent, render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import React, { useState } from 'react';
import { describe, expect, it } from 'vitest';

import { PodwireOptions, PodwireSecureJsonData } from '../types';
import { badAgent, ConfigEditor, parseAgents } from './ConfigEditor';

type Settings = DataSourceSettings<PodwireOptions, PodwireSecureJsonData>;

function setup(jsonData: PodwireOptions, secureJsonFields: Record<string, boolean> = {}) {
  const seen: Settings[] = [];
  function Harness() {
    const [options, setOptions] = useState({ jsonData, secureJsonFields, secureJsonData: {} } as unknown as Settings);
    return (
      <ConfigEditor
        options={options}
        onOptionsChange={(o) => {
          seen.push(o);
          setOptions(o);
        }}
      />
    );
  }
  render(<Harness />);
  return { seen, user: userEvent.setup(), last: () => seen[seen.length - 1] };
}

describe('config editor', () => {
  it('edits the agent list, one host:port a line, and flags bad ones', async () => {
    const { last } = setup({ agents: ['10.0.0.7:7700'] });
    const area = screen.getByLabelText('Agents');
    fireEvent.change(area, { target: { value: '10.0.0.7:7700\n[fd00::1]:7700\nnode-3' } });
    expect(last().jsonData.agents).toEqual(['10.0.0.7:7700', '[fd00::1]:7700', 'node-3']);
    expect(screen.getByText('"node-3" is not host:port')).toBeTruthy();
  });

  it('reads agents provisioned as one string', () => {
    setup({ agents: '10.0.0.7:7700,10.0.0.8:7700' as unknown as string[] });
    expect((screen.getByLabelText('Agents') as HTMLTextAreaElement).value).toBe('10.0.0.7:7700\n10.0.0.8:7700');
  });

  it('switches to DNS discovery and keeps exactly one of agents and agentsDnsName', async () => {
    const { user, last } = setup({ agents: ['10.0.0.7:7700'] });
    await user.click(screen.getByRole('radio', { name: 'DNS name' }));
    expect(last().jsonData.agents).toBeUndefined();
    fireEvent.change(screen.getByRole('textbox', { name: 'DNS name' }), { target: { value: 'podwire-agents.podwire.svc:7700' } });
    expect(last().jsonData.agentsDnsName).toBe('podwire-agents.podwire.svc:7700');
    await user.click(screen.getByRole('radio', { name: 'List' }));
    expect(last().jsonData.agentsDnsName).toBeUndefined();
    expect(last().jsonData.agents).toEqual(['10.0.0.7:7700']);
  });

  it('keeps the token and certificates as secure fields that can be reset', async () => {
    const { user, last } = setup({ agents: ['a:1'], tls: true, tlsAuth: true }, { token: true, tlsClientKey: true });
    // Configured secrets are not shown, only that they are set.
    expect(screen.getAllByText('Reset').length).toBe(2);
    await user.click(screen.getAllByText('Reset')[0]);
    expect(last().secureJsonFields.token).toBe(false);
    expect(last().secureJsonData).toEqual({ token: '' });
    fireEvent.change(screen.getByLabelText('Token'), { target: { value: 's3cret' } });
    expect(last().secureJsonData).toEqual({ token: 's3cret' });
    fireEvent.change(screen.getByLabelText('CA certificate'), { target: { value: '-----BEGIN CERTIFICATE-----' } });
    expect(last().secureJsonData!.tlsCACert).toBe('-----BEGIN CERTIFICATE-----');
    expect(last().jsonData).toEqual({ agents: ['a:1'], tls: true, tlsAuth: true });
  });

  it('shows TLS options only with TLS on', async () => {
    const { user, last } = setup({ agents: ['a:1'] });
    expect(screen.queryByLabelText('Server name')).toBeNull();
    await user.click(screen.getByLabelText('Use TLS'));
    expect(last().jsonData.tls).toBe(true);
    fireEvent.change(screen.getByLabelText('Server name'), { target: { value: 'agents.podwire' } });
    expect(last().jsonData.tlsServerName).toBe('agents.podwire');
  });

  it('sets the timeout as a number', () => {
    const { last } = setup({ agents: ['a:1'] });
    fireEvent.change(screen.getByLabelText('Timeout'), { target: { value: '3' } });
    expect(last().jsonData.timeoutSeconds).toBe(3);
  });
});

describe('agents', () => {
  it('parses and checks host:port', () => {
    expect(parseAgents(' a:1, b:2\n\nc:3 ')).toEqual(['a:1', 'b:2', 'c:3']);
    expect(badAgent('a:1')).toBe('');
    expect(badAgent('a:70000')).toContain('out of range');
    expect(badAgent('fd00::1:7700')).toContain('not host:port');
  });
});
