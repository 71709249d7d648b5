import { expect } from 'expect';
import { describe, it } from 'node:test';
import { ConcurrencyLimiter, type Acquired } from './concurrency-limiter';

const release = (a: Acquired) => {
  if (!a.acquired) throw new Error(`refused by ${a.refusedBy}`);
  return a.release;
};

describe('ConcurrencyLimiter', () => {
  it('gives a key its cap of slots, then refuses it, naming its own cap', () => {
    const l = new ConcurrencyLimiter(2, 10);
    release(l.acquire('a'));
    release(l.acquire('a'));
    expect(l.acquire('a')).toEqual({ acquired: false, refusedBy: 'owner', limit: 2 });
    expect(l.acquire('b').acquired).toBe(true);
    expect(l.inUse('a')).toBe(2);
    expect(l.inUse()).toBe(3);
  });

  it('refuses any key once the process holds its cap, naming that cap', () => {
    const l = new ConcurrencyLimiter(2, 3);
    for (const key of ['a', 'b', 'c']) release(l.acquire(key));
    expect(l.acquire('d')).toEqual({ acquired: false, refusedBy: 'server', limit: 3 });
    // A key at its own cap hears about its own cap first: that is the one it can do something about.
    const m = new ConcurrencyLimiter(1, 1);
    release(m.acquire('a'));
    expect(m.acquire('a')).toEqual({ acquired: false, refusedBy: 'owner', limit: 1 });
  });

  it('frees a slot on release, once however often release is called, and forgets idle keys', () => {
    const l = new ConcurrencyLimiter(1, 2);
    const free = release(l.acquire('a'));
    release(l.acquire('b'));
    free();
    free();
    free();
    expect(l.inUse()).toBe(1);
    expect(l.inUse('a')).toBe(0);
    expect(l.keys).toBe(1);
    release(l.acquire('a'));
    expect(l.acquire('c')).toMatchObject({ acquired: false, refusedBy: 'server' });
  });

  it('has no cap where the cap is 0', () => {
    const l = new ConcurrencyLimiter(0, 0);
    for (let i = 0; i < 1000; i++) release(l.acquire('a'));
    expect(l.inUse('a')).toBe(1000);
    const perKeyOnly = new ConcurrencyLimiter(0, 2);
    release(perKeyOnly.acquire('a'));
    release(perKeyOnly.acquire('a'));
    expect(perKeyOnly.acquire('b')).toMatchObject({ acquired: false, refusedBy: 'server' });
  });

  it('refuses a negative cap', () => {
    expect(() => new ConcurrencyLimiter(-1, 0)).toThrow();
    expect(() => new ConcurrencyLimiter(0, Number.NaN)).toThrow();
  });
});
