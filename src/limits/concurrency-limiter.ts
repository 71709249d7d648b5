/** Which cap refused a slot: the key's own, or the one of the whole process. */
export type ConcurrencyScope = 'owner' | 'server';

export type Acquired =
  { acquired: true; release: () => void } | { acquired: false; refusedBy: ConcurrencyScope; limit: number };

/**
 * Counts things that are in progress at the same time (uploads, event
 * streams), per key and in total, and refuses one more past either cap. A
 * slot is taken synchronously, before the caller awaits anything, so that
 * concurrent requests cannot all see room for one more. Counted in this
 * process only. A cap of 0 means no cap.
 */
export class ConcurrencyLimiter {
  private readonly byKey = new Map<string, number>();
  private total = 0;

  constructor(
    readonly perKey: number,
    readonly overall: number,
  ) {
    if (!(perKey >= 0) || !(overall >= 0)) throw new Error('caps must be 0 (none) or more');
  }

  /** A slot for `key`, or the cap that refused it. release() frees it once, however often it is called. */
  acquire(key: string): Acquired {
    const held = this.byKey.get(key) ?? 0;
    if (this.perKey > 0 && held >= this.perKey) {
      return { acquired: false, refusedBy: 'owner', limit: this.perKey };
    }
    if (this.overall > 0 && this.total >= this.overall) {
      return { acquired: false, refusedBy: 'server', limit: this.overall };
    }
    this.byKey.set(key, held + 1);
    this.total++;
    let released = false;
    return {
      acquired: true,
      release: () => {
        if (released) return;
        released = true;
        this.total--;
        const left = (this.byKey.get(key) ?? 1) - 1;
        if (left > 0) this.byKey.set(key, left);
        else this.byKey.delete(key);
      },
    };
  }

  /** Slots held, by `key` or in total. */
  inUse(key?: string): number {
    return key === undefined ? this.total : (this.byKey.get(key) ?? 0);
  }

  /** Keys that hold a slot (for tests: none is kept once its slots are released). */
  get keys(): number {
    return this.byKey.size;
  }
}
