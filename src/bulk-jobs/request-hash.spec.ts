import { expect } from 'expect';
import { describe, it } from 'node:test';
import { canonicalJson, hashRequest } from './request-hash';

interface Spec {
  action: string;
  params?: unknown;
  options?: unknown;
}

const hashOf = (spec: Spec, targets: unknown[]) => hashRequest(spec, targets);

const SPEC: Spec = { action: 'noop', params: { a: 1, b: { c: [1, 2] } }, options: { max_attempts: 2 } };
const TARGETS = ['a', { id: 'b', data: { x: 1, y: 'z' } }];

describe('canonicalJson', () => {
  it('sorts object keys at every depth', () => {
    expect(canonicalJson({ b: 1, a: { d: [{ f: 1, e: 2 }], c: null } })).toBe(
      '{"a":{"c":null,"d":[{"e":2,"f":1}]},"b":1}',
    );
  });

  it('keeps array order', () => {
    expect(canonicalJson([3, 1, 2])).toBe('[3,1,2]');
  });

  it('leaves out undefined members, as JSON does', () => {
    expect(canonicalJson({ a: undefined, b: 1 })).toBe('{"b":1}');
    expect(canonicalJson([undefined])).toBe('[null]');
  });

  it('escapes strings as JSON does', () => {
    expect(canonicalJson('a\n"b"\\')).toBe(JSON.stringify('a\n"b"\\'));
  });

  it('reads the own members of class instances', () => {
    class Options {
      max_attempts?: number = undefined;
      concurrency = 4;
    }
    expect(canonicalJson(new Options())).toBe('{"concurrency":4}');
  });
});

describe('RequestHasher', () => {
  it('is a hex SHA-256', () => {
    expect(hashOf(SPEC, TARGETS)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('gives the same hash for the same request', () => {
    expect(hashOf(SPEC, TARGETS)).toBe(hashOf(structuredClone(SPEC), structuredClone(TARGETS)));
  });

  it('does not depend on key order in the spec, params, options or target objects', () => {
    const reordered: Spec = {
      options: { max_attempts: 2 },
      params: { b: { c: [1, 2] }, a: 1 },
      action: 'noop',
    };
    expect(hashOf(reordered, ['a', { data: { y: 'z', x: 1 }, id: 'b' }])).toBe(hashOf(SPEC, TARGETS));
  });

  it('treats missing params and options as empty objects', () => {
    expect(hashOf({ action: 'noop' }, ['a'])).toBe(
      hashOf({ action: 'noop', params: {}, options: {} }, ['a']),
    );
  });

  it('differs for another action, other params or other options', () => {
    const base = hashOf(SPEC, TARGETS);
    expect(hashOf({ ...SPEC, action: 'http' }, TARGETS)).not.toBe(base);
    expect(hashOf({ ...SPEC, params: { a: 2, b: { c: [1, 2] } } }, TARGETS)).not.toBe(base);
    expect(hashOf({ ...SPEC, params: { a: 1, b: { c: [2, 1] } } }, TARGETS)).not.toBe(base);
    expect(hashOf({ ...SPEC, params: { a: 1 } }, TARGETS)).not.toBe(base);
    expect(hashOf({ ...SPEC, options: { max_attempts: 3 } }, TARGETS)).not.toBe(base);
    expect(hashOf({ ...SPEC, options: {} }, TARGETS)).not.toBe(base);
  });

  it('differs for other targets, other target data, another order or another count', () => {
    const base = hashOf(SPEC, TARGETS);
    expect(hashOf(SPEC, ['a', { id: 'c', data: { x: 1, y: 'z' } }])).not.toBe(base);
    expect(hashOf(SPEC, ['a', { id: 'b', data: { x: 2, y: 'z' } }])).not.toBe(base);
    expect(hashOf(SPEC, ['a', { id: 'b' }])).not.toBe(base);
    expect(hashOf(SPEC, [TARGETS[1], TARGETS[0]])).not.toBe(base);
    expect(hashOf(SPEC, ['a'])).not.toBe(base);
    expect(hashOf(SPEC, [...TARGETS, 'a'])).not.toBe(base);
    expect(hashOf(SPEC, [])).not.toBe(base);
  });

  it('keeps target boundaries apart', () => {
    expect(hashOf(SPEC, ['a\nb'])).not.toBe(hashOf(SPEC, ['a', 'b']));
    expect(hashOf(SPEC, ['a', 'b'])).not.toBe(hashOf(SPEC, ['ab']));
    expect(hashOf(SPEC, [['a', 'b']])).not.toBe(hashOf(SPEC, ['a', 'b']));
  });

  it('tells a string target from an object target with the same id', () => {
    expect(hashOf(SPEC, ['a'])).not.toBe(hashOf(SPEC, [{ id: 'a' }]));
  });
});
