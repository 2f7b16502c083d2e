import { describe, expect, it } from 'vitest';

import { healthText } from './health';

describe('healthText', () => {
  it('says per agent what answered, what failed and what was lost', () => {
    const t = healthText({
      answering: 1,
      total: 2,
      dnsName: 'podwire-agents.podwire.svc:7700',
      agents: [
        { address: '10.0.0.7:7700', ok: true, node: 'node-1', version: '0.1.0', capture: 'running', kernel: '6.1.0', programs: 4, drops: { tcp_gaps: 3 }, counters: { packets: 10, entries: 5 } },
        { address: '10.0.0.8:7700', ok: false, error: 'connection refused' },
      ],
    });
    expect(t.message).toBe(
      'podwire-agents.podwire.svc:7700 resolves to 2 agents\n' +
        '✓ 10.0.0.7:7700: node node-1, version 0.1.0, capture running; lost: tcp_gaps 3\n' +
        '✗ 10.0.0.8:7700: connection refused'
    );
    expect(t.verboseMessage).toBe('10.0.0.7:7700 (node-1)\n  kernel 6.1.0\n  4 eBPF programs attached\n  entries: 5\n  packets: 10');
  });
});
