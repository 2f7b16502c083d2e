/** TreeNode is one line of a protobuf field tree. */
export interface TreeNode {
  /** key is the field number, or a heading such as "message 1 (12 bytes)". */
  key: string;
  /** wire names the wire type when the tree was decoded here. */
  wire?: string;
  value?: string;
  children?: TreeNode[];
}

const MAX_DEPTH = 16;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function readVarint(b: Uint8Array, pos: number): [bigint, number] | null {
  let v = 0n;
  let shift = 0n;
  for (let i = pos; i < b.length && i < pos + 10; i++) {
    v |= BigInt(b[i] & 0x7f) << shift;
    if ((b[i] & 0x80) === 0) {
      return [v, i + 1];
    }
    shift += 7n;
  }
  return null;
}

function hex(b: Uint8Array): string {
  let s = '0x';
  for (const c of b) {
    s += c.toString(16).padStart(2, '0');
  }
  return s;
}

function printableText(b: Uint8Array): string | null {
  let s: string;
  try {
    s = utf8.decode(b);
  } catch {
    return null;
  }
  // eslint-disable-next-line no-control-regex
  return /[\x00-\x08\x0e-\x1f\x7f]/.test(s) ? null : s;
}

/** decodeProtobuf decodes protobuf wire format without a schema: fields by
 * number, varints (with their int64 reading when negative), fixed values, and
 * length-delimited fields as text, a nested message or bytes. It returns
 * null when b is not a message. */
export function decodeProtobuf(b: Uint8Array, depth = 0): TreeNode[] | null {
  const out: TreeNode[] = [];
  let pos = 0;
  while (pos < b.length) {
    const key = readVarint(b, pos);
    if (!key) {
      return null;
    }
    const [k, next] = key;
    const field = k >> 3n;
    const wt = Number(k & 7n);
    if (field === 0n || field > 536870911n) {
      return null;
    }
    pos = next;
    switch (wt) {
      case 0: {
        const v = readVarint(b, pos);
        if (!v) {
          return null;
        }
        pos = v[1];
        // A negative int32/int64 is sent as a 10-byte varint: say so.
        const signed = BigInt.asIntN(64, v[0]);
        out.push({ key: String(field), wire: 'varint', value: signed < 0n ? `${v[0]} (int64 ${signed})` : String(v[0]) });
        break;
      }
      case 1: {
        if (pos + 8 > b.length) {
          return null;
        }
        const dv = new DataView(b.buffer, b.byteOffset + pos, 8);
        out.push({ key: String(field), wire: 'fixed64', value: `${hex(b.subarray(pos, pos + 8))} (${dv.getBigUint64(0, true)}, double ${dv.getFloat64(0, true)})` });
        pos += 8;
        break;
      }
      case 5: {
        if (pos + 4 > b.length) {
          return null;
        }
        const dv = new DataView(b.buffer, b.byteOffset + pos, 4);
        out.push({ key: String(field), wire: 'fixed32', value: `${hex(b.subarray(pos, pos + 4))} (${dv.getUint32(0, true)}, float ${dv.getFloat32(0, true)})` });
        pos += 4;
        break;
      }
      case 2: {
        const l = readVarint(b, pos);
        if (!l || l[1] + Number(l[0]) > b.length) {
          return null;
        }
        const data = b.subarray(l[1], l[1] + Number(l[0]));
        pos = l[1] + data.length;
        out.push(lengthDelimited(String(field), data, depth));
        break;
      }
      default:
        return null;
    }
  }
  return out;
}

function lengthDelimited(key: string, data: Uint8Array, depth: number): TreeNode {
  if (data.length === 0) {
    return { key, wire: 'len', value: '""' };
  }
  const text = printableText(data);
  if (text != null && /^[\t\n\r\x20-\x7e\u00a0-\uffff]*$/.test(text)) {
    return { key, wire: 'string', value: JSON.stringify(text) };
  }
  if (depth + 1 < MAX_DEPTH) {
    const nested = decodeProtobuf(data, depth + 1);
    if (nested && nested.length) {
      return { key, wire: 'message', children: nested };
    }
  }
  if (text != null) {
    return { key, wire: 'string', value: JSON.stringify(text) };
  }
  return { key, wire: 'bytes', value: hex(data) };
}

/** decodeGrpc decodes a gRPC body: length-prefixed messages, each a
 * protobuf message. Bytes that are not framed are decoded as one message. */
export function decodeGrpc(b: Uint8Array): TreeNode[] {
  const msgs: TreeNode[] = [];
  let pos = 0;
  while (pos + 5 <= b.length) {
    const compressed = b[pos];
    const n = ((b[pos + 1] << 24) >>> 0) + (b[pos + 2] << 16) + (b[pos + 3] << 8) + b[pos + 4];
    if (compressed > 1 || pos + 5 + n > b.length) {
      break;
    }
    const data = b.subarray(pos + 5, pos + 5 + n);
    const key = `message ${msgs.length + 1} (${n} bytes${compressed ? ', compressed' : ''})`;
    const fields = compressed ? null : decodeProtobuf(data);
    msgs.push(fields ? { key, children: fields } : { key, value: hex(data) });
    pos += 5 + n;
  }
  if (pos === b.length && msgs.length) {
    return msgs;
  }
  const whole = decodeProtobuf(b);
  return whole ?? [{ key: 'bytes', value: hex(b) }];
}

/** parseFieldTree parses the field trees agents render for gRPC bodies:
 * "# message N (S bytes)" headings, "F: value" leaves and "F {" ... "}"
 * nested messages; any other line is kept as a leaf of its own. */
export function parseFieldTree(text: string): TreeNode[] {
  const root: TreeNode[] = [];
  const stack: TreeNode[][] = [root];
  let top = root;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) {
      continue;
    }
    const heading = /^# (.*)$/.exec(line);
    if (heading) {
      const node: TreeNode = { key: heading[1], children: [] };
      root.push(node);
      stack.length = 1;
      stack.push(node.children!);
      top = node.children!;
      continue;
    }
    const open = /^(\d+) \{$/.exec(line);
    if (open) {
      const node: TreeNode = { key: open[1], children: [] };
      top.push(node);
      stack.push(node.children!);
      top = node.children!;
      continue;
    }
    if (line === '}') {
      if (stack.length > 1) {
        stack.pop();
        top = stack[stack.length - 1];
      }
      continue;
    }
    const leaf = /^(\d+): (.*)$/.exec(line);
    top.push(leaf ? { key: leaf[1], value: leaf[2] } : { key: '', value: line });
  }
  return root;
}
