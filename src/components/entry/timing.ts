import { Entry } from '../../types';

/** parseTime reads an RFC 3339 time into milliseconds since the epoch,
 * keeping the fraction below a millisecond. NaN when absent or bad. */
export function parseTime(s: string | undefined): number {
  if (!s) {
    return NaN;
  }
  const m = /^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(s);
  if (!m) {
    return Date.parse(s);
  }
  const whole = Date.parse(m[1] + m[3]);
  const frac = m[2] ? Number('0' + m[2]) * 1000 : 0;
  return whole + frac;
}

/** Phase is one span of an exchange, in milliseconds from its start. */
export interface Phase {
  name: 'request' | 'waiting' | 'response';
  from: number;
  to: number;
}

/** phases cuts an entry's exchange into the request being sent, the wait
 * for the response and the response being received. */
export function phases(e: Entry): { total: number; phases: Phase[] } {
  const rs = parseTime(e.request?.start);
  const re = parseTime(e.request?.end);
  const ps = parseTime(e.response?.start);
  const pe = parseTime(e.response?.end);
  const t0 = Number.isNaN(rs) ? parseTime(e.time) : rs;
  const out: Phase[] = [];
  if (Number.isNaN(t0)) {
    return { total: e.latencyMs ?? 0, phases: out };
  }
  const rel = (t: number) => (Number.isNaN(t) ? NaN : Math.max(0, t - t0));
  const reqEnd = rel(re);
  const rspStart = rel(ps);
  const rspEnd = rel(pe);
  if (!Number.isNaN(reqEnd)) {
    out.push({ name: 'request', from: 0, to: reqEnd });
  }
  if (!Number.isNaN(rspStart)) {
    const waitFrom = Number.isNaN(reqEnd) ? 0 : reqEnd;
    if (rspStart > waitFrom) {
      out.push({ name: 'waiting', from: waitFrom, to: rspStart });
    }
    if (!Number.isNaN(rspEnd)) {
      out.push({ name: 'response', from: rspStart, to: Math.max(rspStart, rspEnd) });
    }
  }
  const end = Math.max(e.latencyMs ?? 0, ...out.map((p) => p.to));
  return { total: end, phases: out };
}

/** formatMs is a duration for people. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) {
    return '–';
  }
  if (ms < 1) {
    return `${Math.round(ms * 1000)} µs`;
  }
  if (ms < 1000) {
    return `${ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : Math.round(ms)} ms`;
  }
  return `${(ms / 1000).toFixed(2)} s`;
}
