import { expect } from 'expect';
import { describe, it } from 'node:test';
import { serializeSfString } from './structured-field';

describe('serializeSfString', () => {
  it('quotes the value', () => {
    expect(serializeSfString('8d7c4b1e-0f6a-4f0e-9a57-3c1b2d9e8f70:42')).toBe(
      '"8d7c4b1e-0f6a-4f0e-9a57-3c1b2d9e8f70:42"',
    );
    expect(serializeSfString('')).toBe('""');
  });

  it('escapes double quotes and backslashes', () => {
    expect(serializeSfString('a"b\\c')).toBe('"a\\"b\\\\c"');
  });

  it('refuses what an sf-string cannot hold', () => {
    for (const v of ['tab\there', 'line\nbreak', 'caf\u00e9', '\u007f']) {
      expect(() => serializeSfString(v)).toThrow(TypeError);
    }
  });
});
