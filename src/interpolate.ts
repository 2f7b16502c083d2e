import { AdHocVariableFilter, ScopedVars } from '@grafana/data';

/** Templates is the part of Grafana's TemplateSrv that interpolation needs. */
export interface Templates {
  replace(target?: string, scopedVars?: ScopedVars, format?: string | Function): string;
}

/** celEscape escapes s for the inside of a CEL string literal (either quote). */
export function celEscape(s: string): string {
  let out = '';
  for (const ch of s) {
    switch (ch) {
      case '\\':
        out += '\\\\';
        break;
      case '"':
        out += '\\"';
        break;
      case "'":
        out += "\\'";
        break;
      case '\n':
        out += '\\n';
        break;
      case '\r':
        out += '\\r';
        break;
      case '\t':
        out += '\\t';
        break;
      default: {
        const c = ch.codePointAt(0)!;
        if (c < 0x20 || c === 0x7f) {
          out += '\\x' + c.toString(16).padStart(2, '0');
        } else {
          out += ch;
        }
      }
    }
  }
  return out;
}

/** celString is s as a double-quoted CEL string literal. */
export function celString(s: string): string {
  return '"' + celEscape(s) + '"';
}

/** celList is values as a CEL list of strings. */
export function celList(values: unknown[]): string {
  return '[' + values.map((v) => celString(String(v))).join(', ') + ']';
}

/** celValueFormat is the template format for a variable in expression
 * context: one value becomes a string literal, a multi-value variable a list. */
export function celValueFormat(value: unknown): string {
  if (Array.isArray(value)) {
    return celList(value);
  }
  return celString(value == null ? '' : String(value));
}

/** celInStringFormat is the template format for a variable inside a string
 * literal: escaped for it, several values joined with "|" (for matches()). */
export function celInStringFormat(value: unknown): string {
  if (Array.isArray(value)) {
    return value.map((v) => celEscape(String(v))).join('|');
  }
  return celEscape(value == null ? '' : String(value));
}

interface Segment {
  text: string;
  // quote is the opening delimiter of a string literal ('"', "'", '"""',
  // "'''", with an r/R prefix for raw strings), or '' for code.
  quote: string;
  raw: boolean;
}

/** splitCel cuts a filter into code and string-literal parts (the inside of
 * a literal; its quotes belong to the code around it), so variables can be
 * formatted for where they stand. The parts' texts joined give the input. */
export function splitCel(src: string): Segment[] {
  const out: Segment[] = [];
  let code = '';
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (c === '/' && src[i + 1] === '/') {
      const nl = src.indexOf('\n', i);
      const end = nl < 0 ? src.length : nl;
      code += src.slice(i, end);
      i = end;
      continue;
    }
    if (c !== '"' && c !== "'") {
      code += c;
      i++;
      continue;
    }
    // A raw-string prefix (r or R, possibly after b) stays in the code part.
    const prev = code.slice(-1);
    const raw = (prev === 'r' || prev === 'R') && !/[A-Za-z0-9_]/.test(code.slice(-2, -1));
    const triple = src.startsWith(c + c + c, i);
    const delim = triple ? c + c + c : c;
    let j = i + delim.length;
    let inner = '';
    let closed = false;
    while (j < src.length) {
      if (!raw && src[j] === '\\' && j + 1 < src.length) {
        inner += src[j] + src[j + 1];
        j += 2;
        continue;
      }
      if (src.startsWith(delim, j)) {
        closed = true;
        break;
      }
      if (!triple && src[j] === '\n') {
        break;
      }
      inner += src[j];
      j++;
    }
    out.push({ text: code + delim, quote: '', raw: false });
    code = '';
    out.push({ text: inner, quote: delim, raw });
    if (closed) {
      out.push({ text: delim, quote: '', raw: false });
      j += delim.length;
    }
    i = j;
  }
  if (code) {
    out.push({ text: code, quote: '', raw: false });
  }
  // Closing delimiters were pushed as their own code parts; merge neighbours.
  const merged: Segment[] = [];
  for (const s of out) {
    const last = merged[merged.length - 1];
    if (last && last.quote === '' && s.quote === '') {
      last.text += s.text;
    } else {
      merged.push({ ...s });
    }
  }
  return merged;
}

// VAR_REF matches Grafana's three variable syntaxes.
const VAR_REF = String.raw`\$\w+|\$\{[^}]+\}|\[\[[^\]]+\]\]`;
// CMP_VAR matches `operand == $var` and `operand != $var`.
const CMP_VAR = new RegExp(String.raw`([A-Za-z_][\w.]*(?:\[[^\]]*\])?\s*)?(==|!=)(\s*)(` + VAR_REF + ')', 'g');

/** ALL_VALUE is the custom "All" value for Podwire's dashboard variables:
 * `x == $var` with All selected is `true` (no restriction, so also entries
 * with no name, such as external peers), and `x != $var` is `false`. */
export const ALL_VALUE = '__all__';

/** interpolateFilter expands template variables in a CEL filter: in
 * expression context a variable is a string literal, or a list when it has
 * several values (so `x == $v` becomes `x in [...]` and `x != $v` becomes
 * `x in [...] == false`); inside a string literal its value is escaped for
 * that string. */
export function interpolateFilter(filter: string, templates: Templates, scopedVars?: ScopedVars): string {
  if (!filter || (!filter.includes('$') && !filter.includes('[['))) {
    return filter ?? '';
  }
  return splitCel(filter)
    .map((seg) => {
      if (seg.quote) {
        return seg.raw ? templates.replace(seg.text, scopedVars) : templates.replace(seg.text, scopedVars, celInStringFormat);
      }
      const rewritten = seg.text.replace(CMP_VAR, (all, lhs: string | undefined, op: string, space: string, ref: string) => {
        let list = false;
        let formatted = false;
        const probe = templates.replace(ref, scopedVars, (v: unknown) => {
          formatted = true;
          list = Array.isArray(v);
          return '';
        });
        // A custom All value is inserted as it is, without the format.
        if (!formatted && probe === ALL_VALUE && lhs) {
          return op === '==' ? 'true' : 'false';
        }
        if (!list) {
          return all;
        }
        const expanded = templates.replace(ref, scopedVars, celValueFormat);
        return `${lhs ?? ''}in${space}${expanded}${op === '!=' ? ' == false' : ''}`;
      });
      return templates.replace(rewritten, scopedVars, celValueFormat);
    })
    .join('');
}

/** FieldTypes maps a filter field name to its type ("string", "int", ...). */
export type FieldTypes = Record<string, string | undefined>;

const NUMBER = /^-?\d+(\.\d+)?$/;

function adhocLiteral(key: string, value: string, types: FieldTypes): string {
  const t = types[key];
  if ((t === 'int' || t === 'uint' || t === 'double' || t === 'number') && NUMBER.test(value.trim())) {
    return value.trim();
  }
  if ((t === 'bool' || t === 'boolean') && (value === 'true' || value === 'false')) {
    return value;
  }
  if (t === 'duration') {
    return `duration(${celString(value)})`;
  }
  return celString(value);
}

/** adhocTerm is one ad-hoc filter as a CEL term. Operators: = != =~ !~ < >
 * and the multi-value =| !=|. */
export function adhocTerm(f: AdHocVariableFilter, types: FieldTypes = {}): string {
  const key = f.key.trim();
  const values = (f as AdHocVariableFilter & { values?: string[] }).values;
  switch (f.operator) {
    case '=':
      return `${key} == ${adhocLiteral(key, f.value, types)}`;
    case '!=':
      return `${key} != ${adhocLiteral(key, f.value, types)}`;
    case '=~':
      return `${key}.matches(${celString(f.value)})`;
    case '!~':
      return `!${key}.matches(${celString(f.value)})`;
    case '<':
    case '>':
    case '<=':
    case '>=':
      return `${key} ${f.operator} ${adhocLiteral(key, f.value, types)}`;
    case '=|':
      return `${key} in [${(values ?? [f.value]).map((v) => adhocLiteral(key, v, types)).join(', ')}]`;
    case '!=|':
      return `!(${key} in [${(values ?? [f.value]).map((v) => adhocLiteral(key, v, types)).join(', ')}])`;
    default:
      throw new Error(`ad-hoc filter on ${key}: operator ${f.operator} is not supported (use =, !=, =~ or !~)`);
  }
}

/** withAdhoc appends ad-hoc filters to a filter as `&&` terms. */
export function withAdhoc(filter: string, filters: AdHocVariableFilter[] | undefined, types: FieldTypes = {}): string {
  const terms = (filters ?? []).filter((f) => f.key && f.operator).map((f) => adhocTerm(f, types));
  if (terms.length === 0) {
    return filter;
  }
  const base = filter.trim();
  if (!base) {
    return terms.join(' && ');
  }
  // The filter may end in a // comment: close the parenthesis on a new line.
  return `(${filter}\n) && ${terms.join(' && ')}`;
}
