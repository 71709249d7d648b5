import { expect } from 'expect';
import { describe, it } from 'node:test';
import { sql, sqlLiterals } from './sql';

describe('sql: named statements', () => {
  it('numbers the parameters in order of first use, one position per name', () => {
    const s = sql<{ id: string; owner: string }>(
      'SELECT 1 FROM t WHERE id = :id AND owner = :owner OR parent = :id',
    );
    expect(s.text).toBe('SELECT 1 FROM t WHERE id = $1 AND owner = $2 OR parent = $1');
    expect(s.names).toEqual(['id', 'owner']);
    expect(s.values({ owner: 'alice', id: 'x' })).toEqual(['x', 'alice']);
  });

  it('leaves casts, strings, quoted identifiers and comments alone', () => {
    const s = sql<{ ids: string[] }>(`
      SELECT '{}'::jsonb, 'at :noon', "odd:name" -- not :this
      /* nor :that */ FROM t WHERE id = ANY(:ids::uuid[])`);
    expect(s.names).toEqual(['ids']);
    expect(s.text).toContain(`'{}'::jsonb, 'at :noon', "odd:name" -- not :this`);
    expect(s.text).toContain('/* nor :that */');
    expect(s.text).toContain('id = ANY($1::uuid[])');
  });

  it('refuses a parameter left undefined, and passes null as NULL', () => {
    const s = sql<{ a: string | null; b?: string }>('SELECT :a, :b');
    expect(s.values({ a: null, b: 'x' })).toEqual([null, 'x']);
    expect(() => s.values({ a: 'x' })).toThrow(':b is undefined');
  });

  it('writes constant strings as SQL literals', () => {
    expect(sqlLiterals(['pending', "it's"])).toBe(`'pending', 'it''s'`);
  });
});
