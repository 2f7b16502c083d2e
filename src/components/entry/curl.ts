import { Entry } from '../../types';

/** shellQuote quotes s for a POSIX shell. */
export function shellQuote(s: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) {
    return s;
  }
  return "'" + s.replace(/'/g, `'\\''`) + "'";
}

// Headers curl sets itself, or that describe the connection rather than the request.
const SKIP = new Set(['content-length', 'host', 'connection', 'transfer-encoding', 'keep-alive', 'upgrade', 'http2-settings', 'te']);

/** canCurl says whether an entry is a request curl can repeat. */
export function canCurl(e: Entry): boolean {
  return e.protocol === 'http' || e.protocol === 'grpc';
}

/** curlCommand is a curl command line that repeats the entry's request:
 * method, URL, headers in their order, and the body (binary bodies through
 * base64 -d). */
export function curlCommand(e: Entry): string {
  const req = e.request ?? {};
  const list = req.headerList?.length
    ? req.headerList
    : Object.entries(req.headers ?? {}).map(([name, value]) => ({ name, value }));
  const get = (n: string) => list.find((h) => h.name.toLowerCase() === n)?.value;
  const host = get(':authority') ?? get('host') ?? hostOf(e);
  const scheme = get(':scheme') ?? 'http';
  const method = get(':method') ?? (e.protocol === 'grpc' ? 'POST' : e.method || 'GET');
  const path = get(':path') ?? (e.protocol === 'grpc' ? e.path ?? e.method : e.path) ?? '/';
  const url = `${scheme}://${host}${path.startsWith('/') ? path : '/' + path}`;

  const args: string[] = ['curl'];
  if (e.httpVersion === '2' || e.protocol === 'grpc') {
    args.push(scheme === 'https' ? '--http2' : '--http2-prior-knowledge');
  }
  // The agent keeps gRPC messages as a decoded field tree, not their bytes:
  // such a body cannot be sent again.
  const treeOnly = e.protocol === 'grpc' && req.bodyEncoding !== 'base64' && (req.body ?? '') !== '';
  const hasBody = (req.body ?? '') !== '' && !treeOnly;
  if (!(method === 'GET' && !hasBody) && !(method === 'POST' && hasBody)) {
    args.push('-X', shellQuote(method));
  }
  args.push(shellQuote(url));
  for (const h of list) {
    const name = h.name.toLowerCase();
    if (name.startsWith(':') || SKIP.has(name)) {
      continue;
    }
    args.push('-H', shellQuote(`${h.name}: ${h.value}`));
  }
  let prefix = '';
  let suffix = '';
  if (treeOnly) {
    suffix = ' # body left out: the agent kept only the decoded messages';
  } else if (hasBody) {
    if (req.bodyEncoding === 'base64') {
      prefix = `printf %s ${shellQuote(req.body!)} | base64 -d | `;
      args.push('--data-binary', '@-');
    } else {
      args.push('--data-binary', shellQuote(req.body!));
    }
  }
  return prefix + args.join(' ') + suffix;
}

function hostOf(e: Entry): string {
  const d = e.dst ?? {};
  const name = d.service && d.namespace ? `${d.service}.${d.namespace}` : d.ip ?? 'localhost';
  const ip = name.includes(':') && !name.startsWith('[') ? `[${name}]` : name;
  return d.port ? `${ip}:${d.port}` : ip;
}
