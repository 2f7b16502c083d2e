import { describe, expect, it } from 'vitest';

import { byteOffsetToIndex, completionContext, errorMessage, matchFields, positionToIndex } from './filterText';

describe('positions', () => {
  it('maps line and column (characters) to an index', () => {
    const text = 'http &&\n  staus >= 500';
    expect(text[positionToIndex(text, 2, 3)]).toBe('s');
    expect(positionToIndex(text, 1, 1)).toBe(0);
    // Columns count characters, not UTF-16 units.
    const emoji = 'path == "😀" && x';
    expect(emoji.slice(positionToIndex(emoji, 1, 14))).toBe('& x');
  });
  it('maps a UTF-8 byte offset to an index', () => {
    const text = 'path == "é" && staus';
    expect(text.slice(byteOffsetToIndex(text, 16))).toBe('staus');
  });
  it('strips the filter:L:C prefix and the caret lines', () => {
    expect(errorMessage("filter:1:9: undeclared reference to 'staus'\nhttp && staus\n        ^")).toBe("undeclared reference to 'staus'");
  });
});

describe('completionContext', () => {
  it('completes a field name being typed', () => {
    expect(completionContext('http && dst.na', 14)).toEqual({ kind: 'field', prefix: 'dst.na', from: 8, to: 14 });
  });
  it('completes a value inside the string after ==', () => {
    const text = 'dst.namespace == "sh';
    expect(completionContext(text, text.length)).toEqual({ kind: 'value', field: 'dst.namespace', prefix: 'sh', from: 18, to: 20, closed: false });
  });
  it('knows when the string is already closed', () => {
    const text = 'dst.pod == "we" && http';
    expect(completionContext(text, 13)).toMatchObject({ kind: 'value', field: 'dst.pod', prefix: 'w', from: 12, to: 14, closed: true });
  });
  it('completes values in lists and string functions', () => {
    const list = 'method in ["GET", "PO';
    expect(completionContext(list, list.length)).toMatchObject({ kind: 'value', field: 'method', prefix: 'PO' });
    const fn = 'src.pod.startsWith("we';
    expect(completionContext(fn, fn.length)).toMatchObject({ kind: 'value', field: 'src.pod', prefix: 'we' });
  });
  it('offers nothing inside other strings or numbers', () => {
    expect(completionContext('duration("20', 12)).toEqual({ kind: 'none' });
    expect(completionContext('status >= 5', 11).kind).toBe('none');
  });
});

describe('matchFields', () => {
  it('puts prefix matches first, then substring matches', () => {
    const fields = [{ name: 'src.namespace', type: 'string' }, { name: 'dst.namespace', type: 'string' }, { name: 'namespace_x', type: 'string' }];
    expect(matchFields(fields, 'name').map((f) => f.name)).toEqual(['namespace_x', 'src.namespace', 'dst.namespace']);
  });
});
