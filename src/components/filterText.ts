import { splitCel } from '../interpolate';
import { FieldInfo } from '../types';

/** positionToIndex turns a 1-based line and column (columns count
 * characters) into an index into text. */
export function positionToIndex(text: string, line: number, column: number): number {
  let idx = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf('\n', idx);
    if (nl < 0) {
      return text.length;
    }
    idx = nl + 1;
  }
  for (let c = 1; c < column && idx < text.length && text[idx] !== '\n'; c++) {
    const code = text.codePointAt(idx)!;
    idx += code > 0xffff ? 2 : 1;
  }
  return Math.min(idx, text.length);
}

/** byteOffsetToIndex turns a UTF-8 byte offset into an index into text. */
export function byteOffsetToIndex(text: string, offset: number): number {
  let bytes = 0;
  let i = 0;
  while (i < text.length && bytes < offset) {
    const code = text.codePointAt(i)!;
    bytes += code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
    i += code > 0xffff ? 2 : 1;
  }
  return i;
}

/** errorMessage is the first line of a validation error without its
 * "filter:L:C: " prefix. */
export function errorMessage(error: string): string {
  const first = error.split('\n')[0];
  return first.replace(/^filter:\d+:\d+:\s*/, '');
}

/** CompletionContext says what to complete at the cursor: a field name
 * (replacing [from, to)), or a value of field inside a string literal. */
export type CompletionContext =
  | { kind: 'field'; prefix: string; from: number; to: number }
  | { kind: 'value'; field: string; prefix: string; from: number; to: number; closed: boolean }
  | { kind: 'none' };

const VALUE_BEFORE = [
  // field == "   field != "
  /([A-Za-z_][\w.]*)\s*(?:==|!=)\s*$/,
  // field in ["a", "
  /([A-Za-z_][\w.]*)\s+in\s*\[(?:[^\]]*,)?\s*$/,
  // field.startsWith("   and friends
  /([A-Za-z_][\w.]*)\.(?:startsWith|endsWith|contains|matches)\(\s*$/,
];

/** completionContext finds what the cursor at pos is in. */
export function completionContext(text: string, pos: number): CompletionContext {
  const before = text.slice(0, pos);
  const segs = splitCel(before);
  const last = segs[segs.length - 1];
  if (last && last.quote) {
    // The cursor is inside a string literal (the slice never closes it).
    const start = before.length - last.text.length;
    const code = before.slice(0, start - last.quote.length);
    for (const re of VALUE_BEFORE) {
      const m = re.exec(code);
      if (m) {
        const rest = text.slice(pos);
        const closeAt = rest.indexOf(last.quote);
        const nl = rest.indexOf('\n');
        const closed = closeAt >= 0 && (nl < 0 || closeAt < nl);
        return { kind: 'value', field: m[1], prefix: last.text, from: start, to: closed ? pos + closeAt : pos, closed };
      }
    }
    return { kind: 'none' };
  }
  const m = /[A-Za-z_][\w.]*$/.exec(before);
  if ((m && /\d/.test(before[m.index - 1] ?? '')) || (!m && /[\d.]$/.test(before))) {
    return { kind: 'none' };
  }
  const prefix = m ? m[0] : '';
  const after = /^[\w.]*/.exec(text.slice(pos))![0];
  return { kind: 'field', prefix, from: pos - prefix.length, to: pos + after.length };
}

/** matchFields lists the fields that start with prefix (case-insensitively),
 * then those that contain it. */
export function matchFields(fields: FieldInfo[], prefix: string): FieldInfo[] {
  const p = prefix.toLowerCase();
  const starts = fields.filter((f) => f.name.toLowerCase().startsWith(p));
  const contains = p ? fields.filter((f) => !f.name.toLowerCase().startsWith(p) && f.name.toLowerCase().includes(p)) : [];
  return [...starts, ...contains];
}
