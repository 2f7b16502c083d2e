import { css } from '@emotion/css';
import { DataSourcePluginOptionsEditorProps, GrafanaTheme2 } from '@grafana/data';
import { Field, Input, InlineSwitch, RadioButtonGroup, SecretInput, SecretTextArea, TextArea, useStyles2 } from '@grafana/ui';
import React, { useState } from 'react';

import { PodwireOptions, PodwireSecureJsonData } from '../types';

export type ConfigProps = DataSourcePluginOptionsEditorProps<PodwireOptions, PodwireSecureJsonData>;

type SecureKey = keyof PodwireSecureJsonData;

/** badAgent says what is wrong with one host:port, or '' when nothing is. */
export function badAgent(a: string): string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):(\d+)$/.exec(a);
  if (!m) {
    return `"${a}" is not host:port`;
  }
  const port = Number(m[2]);
  if (port < 1 || port > 65535) {
    return `"${a}": port ${port} is out of range`;
  }
  return '';
}

/** parseAgents reads the agents text area: one host:port a line (commas and
 * spaces separate too). */
export function parseAgents(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** ConfigEditor edits the settings docs/plugin.md lists: the agents (a list
 * or a DNS name), the timeout, TLS and the token. */
export function ConfigEditor({ options, onOptionsChange }: ConfigProps) {
  const styles = useStyles2(getStyles);
  const jd = options.jsonData ?? {};
  const secureFields = options.secureJsonFields ?? {};
  const secure = (options.secureJsonData ?? {}) as PodwireSecureJsonData;
  const [mode, setMode] = useState<'list' | 'dns'>(jd.agentsDnsName ? 'dns' : 'list');
  // agents may also have been saved (or provisioned) as one string.
  const [agentsText, setAgentsText] = useState(() => {
    const a: unknown = jd.agents;
    return typeof a === 'string' ? parseAgents(a).join('\n') : Array.isArray(a) ? a.join('\n') : '';
  });

  const setJson = (patch: Partial<PodwireOptions>) => {
    const next: PodwireOptions = { ...jd, ...patch };
    for (const k of Object.keys(patch) as Array<keyof PodwireOptions>) {
      if (patch[k] === undefined) {
        delete next[k];
      }
    }
    onOptionsChange({ ...options, jsonData: next });
  };
  const setSecure = (key: SecureKey, value: string) => {
    onOptionsChange({ ...options, secureJsonData: { ...secure, [key]: value } });
  };
  const resetSecure = (key: SecureKey) => {
    onOptionsChange({
      ...options,
      secureJsonFields: { ...secureFields, [key]: false },
      secureJsonData: { ...secure, [key]: '' },
    });
  };

  const agents = parseAgents(agentsText);
  const agentErrors = agents.map(badAgent).filter(Boolean);
  const dnsError = jd.agentsDnsName ? badAgent(jd.agentsDnsName) : '';

  const secretArea = (key: SecureKey, label: string, description: string, placeholder: string) => (
    <Field label={label} description={description}>
      <SecretTextArea
        aria-label={label}
        rows={4}
        cols={64}
        placeholder={placeholder}
        isConfigured={Boolean(secureFields[key])}
        value={secure[key] ?? ''}
        onChange={(e) => setSecure(key, e.currentTarget.value)}
        onReset={() => resetSecure(key)}
      />
    </Field>
  );

  return (
    <div className={styles.config} data-testid="podwire-config-editor">
      <h3 className={styles.heading}>Agents</h3>
      <Field label="Find agents by" description="A fixed list, or a DNS name whose addresses are the agents (the Helm chart's headless Service)">
        <RadioButtonGroup<'list' | 'dns'>
          aria-label="Find agents by"
          options={[
            { label: 'List', value: 'list' },
            { label: 'DNS name', value: 'dns' },
          ]}
          value={mode}
          onChange={(m) => {
            setMode(m);
            // Exactly one of agents and agentsDnsName is set.
            if (m === 'list') {
              setJson({ agentsDnsName: undefined, dnsCacheSeconds: undefined, agents: parseAgents(agentsText) });
            } else {
              setJson({ agents: undefined });
            }
          }}
        />
      </Field>
      {mode === 'list' ? (
        <Field
          label="Agents"
          description="host:port of each agent, one a line"
          invalid={agentErrors.length > 0 || agents.length === 0}
          error={agents.length === 0 ? 'at least one agent is needed' : agentErrors.join('; ')}
        >
          <TextArea
            aria-label="Agents"
            rows={Math.min(8, Math.max(2, agents.length + 1))}
            placeholder={'10.0.0.7:7700\n10.0.0.8:7700'}
            value={agentsText}
            onChange={(e) => {
              setAgentsText(e.currentTarget.value);
              setJson({ agents: parseAgents(e.currentTarget.value) });
            }}
          />
        </Field>
      ) : (
        <>
          <Field label="DNS name" description="name:port resolved to every agent, e.g. podwire-agents.podwire.svc:7700" invalid={Boolean(dnsError) || !jd.agentsDnsName} error={dnsError || 'a name:port is needed'}>
            <Input
              aria-label="DNS name"
              width={50}
              placeholder="podwire-agents.podwire.svc:7700"
              value={jd.agentsDnsName ?? ''}
              onChange={(e) => setJson({ agentsDnsName: e.currentTarget.value.trim() })}
            />
          </Field>
          <Field label="Resolve again after (seconds)" description="New nodes' agents are found this often (default 10)">
            <Input
              aria-label="DNS cache seconds"
              type="number"
              width={12}
              min={1}
              placeholder="10"
              value={jd.dnsCacheSeconds ?? ''}
              onChange={(e) => setJson({ dnsCacheSeconds: positive(e.currentTarget.value) })}
            />
          </Field>
        </>
      )}
      <Field label="Timeout (seconds)" description="How long to wait for each agent's answer (default 10); a late agent becomes a warning, the others' data is shown">
        <Input
          aria-label="Timeout"
          type="number"
          width={12}
          min={1}
          placeholder="10"
          value={jd.timeoutSeconds ?? ''}
          onChange={(e) => setJson({ timeoutSeconds: positive(e.currentTarget.value) })}
        />
      </Field>
      <Field label="Token" description="Bearer token the agents require (--token on the agent)">
        <SecretInput
          aria-label="Token"
          width={50}
          placeholder="token"
          isConfigured={Boolean(secureFields.token)}
          value={secure.token ?? ''}
          onChange={(e) => setSecure('token', e.currentTarget.value)}
          onReset={() => resetSecure('token')}
        />
      </Field>

      <h3 className={styles.heading}>TLS</h3>
      <Field label="Use TLS" description="Connect to the agents over TLS">
        <InlineSwitch aria-label="Use TLS" value={Boolean(jd.tls)} onChange={(e) => setJson({ tls: e.currentTarget.checked })} />
      </Field>
      {jd.tls && (
        <>
          <Field label="Skip verification" description="Do not check the agents' certificates (insecure)">
            <InlineSwitch aria-label="Skip verification" value={Boolean(jd.tlsSkipVerify)} onChange={(e) => setJson({ tlsSkipVerify: e.currentTarget.checked })} />
          </Field>
          <Field label="Server name" description="Name to check the agents' certificates against, when it is not the address dialled">
            <Input aria-label="Server name" width={50} value={jd.tlsServerName ?? ''} onChange={(e) => setJson({ tlsServerName: e.currentTarget.value.trim() || undefined })} />
          </Field>
          {!jd.tlsSkipVerify && secretArea('tlsCACert', 'CA certificate', 'PEM certificate of the CA that signed the agents\' certificates (empty: the system roots)', '-----BEGIN CERTIFICATE-----')}
          <Field label="Client certificate" description="Present a client certificate to the agents">
            <InlineSwitch aria-label="Client certificate" value={Boolean(jd.tlsAuth)} onChange={(e) => setJson({ tlsAuth: e.currentTarget.checked })} />
          </Field>
          {jd.tlsAuth && (
            <>
              {secretArea('tlsClientCert', 'Client certificate (PEM)', 'The certificate Grafana presents', '-----BEGIN CERTIFICATE-----')}
              {secretArea('tlsClientKey', 'Client key (PEM)', 'Its private key', '-----BEGIN PRIVATE KEY-----')}
            </>
          )}
        </>
      )}
    </div>
  );
}

function positive(s: string): number | undefined {
  const n = Number(s);
  return s.trim() && Number.isFinite(n) && n > 0 ? n : undefined;
}

const getStyles = (theme: GrafanaTheme2) => ({
  config: css({ maxWidth: 720 }),
  heading: css({ marginTop: theme.spacing(2) }),
});
