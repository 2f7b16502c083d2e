import { EntryMessage } from '../../types';

/** BodyKind is how a body is shown. */
export type BodyKind = 'empty' | 'json' | 'xml' | 'form' | 'grpc' | 'protobuf' | 'binary' | 'text';

/** header reads one header of a message (names are lower-case). */
export function header(m: EntryMessage | undefined, name: string): string {
  if (!m) {
    return '';
  }
  const v = m.headers?.[name];
  if (v != null) {
    return v;
  }
  return m.headerList?.find((h) => h.name.toLowerCase() === name)?.value ?? '';
}

/** bodyKind picks the view for a message's body from its content type,
 * encoding and content. */
export function bodyKind(m: EntryMessage | undefined, protocol?: string): BodyKind {
  const body = m?.body ?? '';
  if (!body) {
    return 'empty';
  }
  const ct = header(m, 'content-type').toLowerCase();
  const binary = m?.bodyEncoding === 'base64';
  if (ct.startsWith('application/grpc') || protocol === 'grpc') {
    return binary ? 'protobuf' : 'grpc';
  }
  if (binary) {
    return ct.includes('protobuf') ? 'protobuf' : 'binary';
  }
  if (ct.includes('json')) {
    return 'json';
  }
  if (ct.includes('x-www-form-urlencoded')) {
    return 'form';
  }
  if (ct.includes('xml')) {
    return 'xml';
  }
  const head = body.trimStart().slice(0, 1);
  if (!ct || ct.startsWith('text/plain')) {
    if ((head === '{' || head === '[') && looksLikeJson(body)) {
      return 'json';
    }
    if (body.trimStart().startsWith('<?xml')) {
      return 'xml';
    }
  }
  return 'text';
}

function looksLikeJson(body: string): boolean {
  try {
    JSON.parse(body);
    return true;
  } catch {
    return false;
  }
}

/** decodeBase64 decodes standard base64 into bytes. */
export function decodeBase64(s: string): Uint8Array {
  const bin = atob(s.replace(/\s+/g, ''));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) {
    out[i] = bin.charCodeAt(i);
  }
  return out;
}

/** bodyBytes is the body as bytes: base64-decoded or UTF-8 encoded. */
export function bodyBytes(m: EntryMessage): Uint8Array {
  if (m.bodyEncoding === 'base64') {
    return decodeBase64(m.body ?? '');
  }
  return new TextEncoder().encode(m.body ?? '');
}

/** hexLines is a hex dump of bytes [from, to): offset, 16 bytes in hex, and
 * their printable ASCII. */
export function hexLines(b: Uint8Array, from = 0, to = b.length): string[] {
  const lines: string[] = [];
  for (let off = from - (from % 16); off < Math.min(to, b.length); off += 16) {
    let hex = '';
    let ascii = '';
    for (let i = 0; i < 16; i++) {
      if (off + i < b.length) {
        const c = b[off + i];
        hex += c.toString(16).padStart(2, '0') + ' ';
        ascii += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '.';
      } else {
        hex += '   ';
      }
      if (i === 7) {
        hex += ' ';
      }
    }
    lines.push(`${off.toString(16).padStart(8, '0')}  ${hex} |${ascii}|`);
  }
  return lines;
}

/** formPairs parses an application/x-www-form-urlencoded body. */
export function formPairs(body: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const part of body.split('&')) {
    if (!part) {
      continue;
    }
    const eq = part.indexOf('=');
    const k = eq < 0 ? part : part.slice(0, eq);
    const v = eq < 0 ? '' : part.slice(eq + 1);
    out.push([decodeForm(k), decodeForm(v)]);
  }
  return out;
}

function decodeForm(s: string): string {
  const plus = s.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(plus);
  } catch {
    return plus;
  }
}

/** prettyXml indents XML (and XML-like HTML): one element, comment or text
 * run a line. Text is kept as it is; a document that does not nest cleanly
 * is still shown, indented as far as it goes. */
export function prettyXml(src: string, indent = '  '): string {
  const tokens = src.match(/<!\[CDATA\[[\s\S]*?\]\]>|<!--[\s\S]*?-->|<\?[\s\S]*?\?>|<![^>]*>|<\/?[^>]+>|[^<]+/g) ?? [];
  const lines: string[] = [];
  let depth = 0;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t.startsWith('</')) {
      depth = Math.max(0, depth - 1);
      lines.push(indent.repeat(depth) + t);
      continue;
    }
    if (t.startsWith('<') && !t.startsWith('<!') && !t.startsWith('<?') && !t.endsWith('/>')) {
      // <a>text</a> stays on one line.
      const text = tokens[i + 1];
      const close = tokens[i + 2];
      const name = /^<([^\s>/]+)/.exec(t)?.[1];
      if (text !== undefined && !text.startsWith('<') && close === `</${name}>`) {
        lines.push(indent.repeat(depth) + t + text.trim() + close);
        i += 2;
        continue;
      }
      lines.push(indent.repeat(depth) + t);
      depth++;
      continue;
    }
    const trimmed = t.startsWith('<') ? t : t.trim();
    if (trimmed) {
      lines.push(indent.repeat(depth) + trimmed);
    }
  }
  return lines.join('\n');
}

/** extension is a file name extension for a downloaded body. */
export function extension(kind: BodyKind): string {
  switch (kind) {
    case 'json':
      return 'json';
    case 'xml':
      return 'xml';
    case 'form':
    case 'text':
    case 'grpc':
      return 'txt';
    default:
      return 'bin';
  }
}

/** formatBytes is n bytes for people. */
export function formatBytes(n: number): string {
  if (n < 1024) {
    return `${n} B`;
  }
  if (n < 1024 * 1024) {
    return `${(n / 1024).toFixed(1)} KiB`;
  }
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
