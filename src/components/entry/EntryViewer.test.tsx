import { render, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import React from 'react';
import { describe, expect, it } from 'vitest';

import { fakeApi } from '../../test/fakes';
import { Entry, EntryMessage } from '../../types';
import { curlCommand } from './curl';
import { EntryViewer } from './EntryViewer';
import { PAGE, ROW_BUDGET } from './JsonTree';
import { decodeGrpc, decodeProtobuf, parseFieldTree } from './protobuf';
import { prettyXml } from './bodies';

function entry(response: EntryMessage, extra: Partial<Entry> = {}): Entry {
  return {
    id: 'node-1-42',
    time: '2026-11-24T10:00:00.000100Z',
    protocol: 'http',
    httpVersion: '1.1',
    src: { ip: '10.0.0.7', port: 41234, pod: 'web-1', namespace: 'front', workload: 'web', workloadKind: 'Deployment' },
    dst: { ip: '10.0.0.9', port: 8080, pod: 'cart-1', namespace: 'shop', workload: 'cart', service: 'cart' },
    method: 'POST',
    path: '/api/cart?x=1',
    status: 200,
    latencyMs: 12.5,
    node: 'node-1',
    request: {
      headerList: [
        { name: 'host', value: 'cart.shop:8080' },
        { name: 'content-type', value: 'application/json' },
        { name: 'x-note', value: "it's" },
      ],
      body: '{"item":"book"}',
      bodyBytes: '15',
      start: '2026-11-24T10:00:00.000100Z',
      end: '2026-11-24T10:00:00.000600Z',
    },
    response: { start: '2026-11-24T10:00:00.010100Z', end: '2026-11-24T10:00:00.012600Z', ...response },
    ...extra,
  };
}

async function show(e: Entry) {
  const api = fakeApi({ get: (path) => (path === `entries/${e.id}` ? e : Promise.reject({ status: 404, data: { message: 'no entry' } })) });
  render(<EntryViewer api={api} entryId={e.id} />);
  await screen.findByTestId('podwire-entry-viewer');
  return screen.getByTestId('podwire-entry-body');
}

describe('entry viewer', () => {
  it('fetches the entry and shows summary and timings', async () => {
    await show(entry({ headers: { 'content-type': 'text/plain' }, body: 'ok' }));
    const summary = screen.getByTestId('podwire-entry-summary').textContent!;
    expect(summary).toContain('POST');
    expect(summary).toContain('/api/cart?x=1');
    expect(summary).toContain('front/web-1 (10.0.0.7:41234)');
    expect(summary).toContain('shop/cart-1 (10.0.0.9:8080)');
    const timings = screen.getByTestId('podwire-entry-timings').textContent!;
    expect(timings).toContain('request 500 µs');
    expect(timings).toContain('waiting 9.50 ms');
    expect(timings).toContain('response 2.50 ms');
    expect(timings).toContain('total 12.5 ms');
  });

  it('says when the entry cannot be fetched', async () => {
    // Resource errors are {"error", "status"} (docs/plugin.md).
    const api = fakeApi({ get: () => Promise.reject({ status: 404, data: { error: 'entry node-9-1 not found', status: 404 } }) });
    render(<EntryViewer api={api} entryId="node-9-1" />);
    expect((await screen.findByTestId('podwire-entry-error')).textContent).toContain('404: entry node-9-1 not found');
  });

  it('shows a JSON body as a tree that folds', async () => {
    const user = userEvent.setup();
    const body = await show(entry({ headers: { 'content-type': 'application/json; charset=utf-8' }, body: '{"cart":{"items":[{"sku":"b-1","qty":2}]},"ok":true}' }));
    expect(body.dataset.kind).toBe('json');
    expect(body.textContent).toContain('"sku": "b-1"');
    await user.click(screen.getByLabelText('Fold "cart"'.replace(/"/g, '')));
    expect(body.textContent).not.toContain('"sku"');
    expect(body.textContent).toContain('1 key');
    // Raw shows the text as it came.
    await user.click(screen.getByLabelText('Raw'));
    expect(screen.getByTestId('podwire-entry-body').textContent).toBe('{"cart":{"items":[{"sku":"b-1","qty":2}]},"ok":true}');
  });

  it('indents an XML body', async () => {
    const body = await show(entry({ headers: { 'content-type': 'application/xml' }, body: '<?xml version="1.0"?><cart><item sku="b-1"><qty>2</qty></item><empty/></cart>' }));
    expect(body.dataset.kind).toBe('xml');
    expect(body.textContent).toBe('<?xml version="1.0"?>\n<cart>\n  <item sku="b-1">\n    <qty>2</qty>\n  </item>\n  <empty/>\n</cart>');
  });

  it('shows a form body as a table', async () => {
    const body = await show(entry({ headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'user=ann+lee&note=a%26b%3Dc&empty=' }));
    expect(body.dataset.kind).toBe('form');
    const rows = Array.from(body.querySelectorAll('tbody tr')).map((tr) => Array.from(tr.children).map((c) => c.textContent));
    expect(rows).toEqual([
      ['user', 'ann lee'],
      ['note', 'a&b=c'],
      ['empty', ''],
    ]);
  });

  it('shows a text body as it is', async () => {
    const body = await show(entry({ headers: { 'content-type': 'text/html' }, body: '<p>out of stock</p>' }));
    expect(body.dataset.kind).toBe('text');
    expect(body.textContent).toBe('<p>out of stock</p>');
  });

  it('shows a binary body as a hex dump', async () => {
    const bytes = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0xff];
    const body = await show(entry({ headers: { 'content-type': 'image/png' }, body: btoa(String.fromCharCode(...bytes)), bodyEncoding: 'base64', bodyBytes: '18' }));
    expect(body.dataset.kind).toBe('binary');
    expect(screen.getByTestId('podwire-hexdump').textContent).toBe(
      '00000000  89 50 4e 47 0d 0a 1a 0a  00 00 00 0d 49 48 44 52  |.PNG........IHDR|\n' +
        '00000010  00 ff                                             |..|'
    );
  });

  it('shows gRPC messages as field trees', async () => {
    const text = '# message 1 (14 bytes)\n1: "missing"\n2 {\n  1: 5\n}\n# message 2 (2 bytes)\n3: 7';
    const body = await show(entry({ headers: { 'content-type': 'application/grpc' }, body: text }, { protocol: 'grpc', httpVersion: '2' }));
    expect(body.dataset.kind).toBe('grpc');
    const tree = screen.getByTestId('podwire-field-tree');
    expect(tree.textContent).toContain('message 1 (14 bytes)');
    expect(tree.textContent).toContain('1: "missing"');
    expect(tree.textContent).toContain('3: 7');
  });

  it('decodes a binary protobuf body without a schema', async () => {
    // gRPC frame around {1: "missing", 2: 150, 3: {1: 5}}
    const msg = [0x0a, 7, ...Array.from('missing', (c) => c.charCodeAt(0)), 0x10, 0x96, 0x01, 0x1a, 0x02, 0x08, 0x05];
    const framed = [0, 0, 0, 0, msg.length, ...msg];
    const body = await show(entry({ headers: { 'content-type': 'application/grpc+proto' }, body: btoa(String.fromCharCode(...framed)), bodyEncoding: 'base64' }, { protocol: 'grpc' }));
    expect(body.dataset.kind).toBe('protobuf');
    const tree = screen.getByTestId('podwire-field-tree').textContent!;
    expect(tree).toContain('message 1 (16 bytes)');
    expect(tree).toContain('1 string: "missing"');
    expect(tree).toContain('2 varint: 150');
    expect(tree).toContain('3 message');
    expect(tree).toContain('1 varint: 5');
  });

  it('keeps a 5 MiB JSON body responsive: folded and paged', async () => {
    const items = [];
    for (let i = 0; items.length === 0 || JSON.stringify(items).length < 5 * 1024 * 1024; i++) {
      for (let j = 0; j < 1000; j++) {
        const n = i * 1000 + j;
        items.push({ id: n, sku: `sku-${n}`, name: `item number ${n}`, tags: ['a', 'b', 'c'], price: { amount: n / 100, currency: 'EUR' } });
      }
    }
    const text = JSON.stringify({ items, count: items.length });
    expect(text.length).toBeGreaterThan(5 * 1024 * 1024);
    const t0 = performance.now();
    const body = await show(entry({ headers: { 'content-type': 'application/json' }, body: text, bodyBytes: String(text.length) }));
    const ms = performance.now() - t0;
    // Only the unfolded part is in the page: a few hundred rows, not the
    // ~200,000 values of the body.
    const rows = body.querySelectorAll('[data-testid="podwire-json-tree"] div').length;
    expect(rows).toBeLessThanOrEqual(ROW_BUDGET + PAGE);
    expect(body.textContent).toContain(`show 1000 more of ${items.length - PAGE}`);
    console.warn(`5 MiB JSON (${(text.length / 1048576).toFixed(1)} MiB, ${items.length} items): shown in ${ms.toFixed(0)} ms in jsdom, ${rows} rows rendered`);
  });
});

describe('copy as curl', () => {
  it('repeats method, URL, headers and body, quoted for the shell', () => {
    const e = entry({ body: '' });
    expect(curlCommand(e)).toBe(
      `curl 'http://cart.shop:8080/api/cart?x=1' -H 'content-type: application/json' -H 'x-note: it'\\''s' --data-binary '{"item":"book"}'`
    );
  });

  it('uses HTTP/2 pseudo-headers and pipes binary bodies through base64', () => {
    const e = entry({}, {
      httpVersion: '2',
      method: 'PUT',
      request: {
        headerList: [
          { name: ':method', value: 'PUT' },
          { name: ':scheme', value: 'http' },
          { name: ':authority', value: 'blob.shop' },
          { name: ':path', value: '/b/1' },
          { name: 'content-type', value: 'application/octet-stream' },
        ],
        body: btoa('\x00\x01'),
        bodyEncoding: 'base64',
      },
    });
    expect(curlCommand(e)).toBe(
      "printf %s AAE= | base64 -d | curl --http2-prior-knowledge -X PUT http://blob.shop/b/1 -H 'content-type: application/octet-stream' --data-binary @-"
    );
  });

  it('is offered on the entry and leaves out a body it cannot replay', async () => {
    const e = entry({ body: '' }, { protocol: 'grpc', httpVersion: '2', path: '/shop.Cart/Add', method: '/shop.Cart/Add', request: { headers: { 'content-type': 'application/grpc' }, body: '1: "x"' } });
    render(<EntryViewer entry={e} />);
    expect(await screen.findByTestId('podwire-copy-curl')).toBeTruthy();
    expect(curlCommand(e)).toBe(
      "curl --http2-prior-knowledge -X POST http://cart.shop:8080/shop.Cart/Add -H 'content-type: application/grpc' # body left out: the agent kept only the decoded messages"
    );
  });
});

describe('protobuf', () => {
  it('parses the agents field-tree text', () => {
    expect(parseFieldTree('1: "a"\n2 {\n  3: 4\n}\n5: 0x01')).toEqual([
      { key: '1', value: '"a"' },
      { key: '2', children: [{ key: '3', value: '4' }] },
      { key: '5', value: '0x01' },
    ]);
  });
  it('rejects bytes that are not a message and falls back to hex', () => {
    expect(decodeProtobuf(new Uint8Array([0x07, 0x01]))).toBeNull();
    expect(decodeGrpc(new Uint8Array([0xff, 0xfe]))).toEqual([{ key: 'bytes', value: '0xfffe' }]);
  });
  it('reads fixed-width fields and negative varints', () => {
    const nodes = decodeProtobuf(new Uint8Array([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x15, 0x00, 0x00, 0x80, 0x3f]))!;
    expect(nodes[0]).toEqual({ key: '1', wire: 'varint', value: '18446744073709551615 (int64 -1)' });
    expect(nodes[1].value).toContain('float 1');
  });
});

describe('xml', () => {
  it('keeps comments and CDATA', () => {
    expect(prettyXml('<a><!-- c --><b><![CDATA[x<y]]></b></a>')).toBe('<a>\n  <!-- c -->\n  <b>\n    <![CDATA[x<y]]>\n  </b>\n</a>');
  });
});

describe('entry given directly', () => {
  it('renders without fetching', async () => {
    render(<EntryViewer entry={entry({ body: 'hello' })} />);
    await waitFor(() => expect(screen.getByTestId('podwire-entry-body').textContent).toBe('hello'));
  });
});
