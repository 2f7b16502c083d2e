import { describe, expect, it } from 'vitest';

import { adhocTerm, celEscape, interpolateFilter, splitCel, withAdhoc } from './interpolate';
import { fakeTemplates } from './test/fakes';

const vars = fakeTemplates({
  namespace: 'shop',
  many: ['shop', 'front'],
  one: ['shop'],
  evil: 'a"b\\c\nd',
  evils: ['x"y', "it's"],
  version: 'v2',
  status: '500',
  all: '__all__',
});

describe('interpolateFilter', () => {
  const cases: Array<[string, string, string]> = [
    ['single value becomes a string literal', 'dst.namespace == $namespace', 'dst.namespace == "shop"'],
    ['braced form', 'dst.namespace == ${namespace} && http', 'dst.namespace == "shop" && http'],
    ['multi value with == becomes in', 'dst.namespace == $many', 'dst.namespace in ["shop", "front"]'],
    ['multi value with one selected is still a list', 'dst.namespace == $one', 'dst.namespace in ["shop"]'],
    ['multi value with != becomes not in', 'dst.namespace != $many && http', 'dst.namespace in ["shop", "front"] == false && http'],
    ['multi value after in', 'src.namespace in $many', 'src.namespace in ["shop", "front"]'],
    ['value is escaped for CEL', 'path == $evil', 'path == "a\\"b\\\\c\\nd"'],
    ['multi values are escaped', 'path == $evils', 'path in ["x\\"y", "it\\\'s"]'],
    ['inside a string the value is escaped, not quoted', 'path.startsWith("/api/$version/")', 'path.startsWith("/api/v2/")'],
    ['inside a string an evil value cannot close it', 'path.contains("$evil")', 'path.contains("a\\"b\\\\c\\nd")'],
    ['inside a string several values join with |', 'dst.namespace.matches("^($many)$")', 'dst.namespace.matches("^(shop|front)$")'],
    ['raw format is left alone for numbers', 'status >= ${status:raw}', 'status >= 500'],
    ['All means no restriction', 'http && dst.namespace == $all && x', 'http && true && x'],
    ['not All is false', 'dst.namespace != ${all} || y', 'false || y'],
    ['header operands keep their index', 'request.headers["x-a"] == $many', 'request.headers["x-a"] in ["shop", "front"]'],
    ['unknown variables stay', 'x == $nope', 'x == $nope'],
    ['no variables', 'http && status >= 500', 'http && status >= 500'],
  ];
  for (const [name, input, want] of cases) {
    it(name, () => {
      expect(interpolateFilter(input, vars)).toBe(want);
    });
  }

  it('scoped variables win (repeated panels)', () => {
    expect(interpolateFilter('dst.workload == $w', vars, { w: { text: 'cart', value: 'cart' } })).toBe('dst.workload == "cart"');
  });
});

describe('celEscape', () => {
  it('escapes quotes, backslashes and control characters', () => {
    expect(celEscape('a"b\'c\\d\te\u0001')).toBe('a\\"b\\\'c\\\\d\\te\\x01');
  });
  it('keeps other unicode', () => {
    expect(celEscape('café ☕')).toBe('café ☕');
  });
});

describe('splitCel', () => {
  it('keeps the text and finds string literals', () => {
    const src = 'a == "x\\"$y" && b.matches(\'$z\') // "c"';
    const segs = splitCel(src);
    expect(segs.map((s) => s.text).join('')).toBe(src);
    expect(segs.filter((s) => s.quote).map((s) => s.text)).toEqual(['x\\"$y', '$z']);
  });
});

describe('ad-hoc filters', () => {
  it('turns each operator into a CEL term', () => {
    expect(adhocTerm({ key: 'dst.namespace', operator: '=', value: 'shop' })).toBe('dst.namespace == "shop"');
    expect(adhocTerm({ key: 'dst.namespace', operator: '!=', value: 'shop' })).toBe('dst.namespace != "shop"');
    expect(adhocTerm({ key: 'path', operator: '=~', value: '^/api/' })).toBe('path.matches("^/api/")');
    expect(adhocTerm({ key: 'path', operator: '!~', value: '^/health' })).toBe('!path.matches("^/health")');
  });

  it('keeps numbers numbers for int fields, and escapes strings', () => {
    expect(adhocTerm({ key: 'status', operator: '=', value: '503' }, { status: 'int' })).toBe('status == 503');
    expect(adhocTerm({ key: 'status', operator: '>', value: '499' }, { status: 'int' })).toBe('status > 499');
    expect(adhocTerm({ key: 'path', operator: '=', value: '/a"b' }, { path: 'string' })).toBe('path == "/a\\"b"');
    // The types /tag-keys names (docs/plugin.md): string, number, boolean.
    expect(adhocTerm({ key: 'dst.port', operator: '=', value: '6379' }, { 'dst.port': 'number' })).toBe('dst.port == 6379');
    expect(adhocTerm({ key: 'failed', operator: '=', value: 'true' }, { failed: 'boolean' })).toBe('failed == true');
    expect(adhocTerm({ key: 'dst.port', operator: '=', value: 'x' }, { 'dst.port': 'number' })).toBe('dst.port == "x"');
  });

  it('are added to the filter as && terms', () => {
    const filters = [
      { key: 'dst.namespace', operator: '=', value: 'shop' },
      { key: 'method', operator: '!=', value: 'GET' },
    ];
    expect(withAdhoc('http || grpc', filters)).toBe('(http || grpc\n) && dst.namespace == "shop" && method != "GET"');
    expect(withAdhoc('', filters)).toBe('dst.namespace == "shop" && method != "GET"');
    expect(withAdhoc('http', [])).toBe('http');
  });

  it('rejects an operator it cannot express', () => {
    expect(() => adhocTerm({ key: 'x', operator: '~~', value: 'y' })).toThrow(/operator ~~/);
  });
});
