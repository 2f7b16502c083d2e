/** AgentHealth is one agent in CheckHealth's JSON details (pkg/plugin/health.go). */
export interface AgentHealth {
  address: string;
  ok: boolean;
  error?: string;
  node?: string;
  version?: string;
  kernel?: string;
  capture?: string;
  cgroupRoot?: string;
  uptimeSeconds?: number;
  programs?: number;
  drops?: Record<string, number>;
  counters?: Record<string, number>;
}

/** HealthDetails is CheckHealth's JSON details. */
export interface HealthDetails {
  answering: number;
  total: number;
  dnsName?: string;
  warning?: string;
  agents?: AgentHealth[];
}

function uptime(s?: number): string {
  if (!s) {
    return '';
  }
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h${m}m` : m ? `${m}m` : `${Math.round(s)}s`;
}

/** healthText turns the details into what Grafana's "Save & test" shows:
 * details.message (one line per agent) and details.verboseMessage (what
 * each agent runs and what it dropped). */
export function healthText(d: HealthDetails): { message: string; verboseMessage: string } {
  const agents = d.agents ?? [];
  const lines = agents.map((a) => {
    if (!a.ok) {
      return `✗ ${a.address}: ${a.error ?? 'no answer'}`;
    }
    const parts = [a.node && `node ${a.node}`, a.version && `version ${a.version}`, a.capture && `capture ${a.capture}`].filter(Boolean);
    const drops = Object.entries(a.drops ?? {});
    const lost = drops.length ? `; lost: ${drops.map(([k, v]) => `${k} ${v}`).join(', ')}` : '';
    return `✓ ${a.address}: ${parts.join(', ')}${lost}`;
  });
  if (d.dnsName) {
    lines.unshift(`${d.dnsName} resolves to ${d.total} agent${d.total === 1 ? '' : 's'}`);
  }
  if (d.warning) {
    lines.push(`warning: ${d.warning}`);
  }
  const verbose = agents
    .filter((a) => a.ok)
    .map((a) =>
      [
        `${a.address} (${a.node ?? '?'})`,
        a.kernel && `  kernel ${a.kernel}`,
        a.cgroupRoot && `  cgroup root ${a.cgroupRoot}`,
        a.uptimeSeconds ? `  up ${uptime(a.uptimeSeconds)}` : '',
        a.programs != null && `  ${a.programs} eBPF programs attached`,
        ...Object.entries(a.counters ?? {})
          .sort(([x], [y]) => x.localeCompare(y))
          .map(([k, v]) => `  ${k}: ${v}`),
      ]
        .filter(Boolean)
        .join('\n')
    );
  return { message: lines.join('\n'), verboseMessage: verbose.join('\n\n') };
}

/** isHealthDetails says whether details came from Podwire's CheckHealth. */
export function isHealthDetails(d: unknown): d is HealthDetails {
  return Boolean(d && typeof d === 'object' && typeof (d as HealthDetails).total === 'number');
}
