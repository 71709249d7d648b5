import { expect } from 'expect';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Env, loadEnv } from './env';

// The specs run from the repository root (npm test).
const example = readFileSync(join(process.cwd(), '.env.example'), 'utf8');
const listed = example
  .split('\n')
  .map((line) => /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line))
  .filter((m): m is RegExpExecArray => m !== null);

describe('.env.example', () => {
  it('lists every setting the service reads, and nothing else', () => {
    const names = listed.map((m) => m[1]).sort();
    expect(names).toEqual(Object.keys(new Env()).sort());
  });

  it('gives every setting its default (or leaves it empty)', () => {
    const values = Object.fromEntries(listed.map((m) => [m[1], m[2]]));
    const fromExample = loadEnv(values);
    const defaults = loadEnv({});
    expect(fromExample).toEqual(defaults);
  });
});
