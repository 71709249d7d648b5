import { Clock } from '../../src/common/clock';
import type { ProviderOverride } from './app';

/**
 * A clock that stands still until the test moves it: time-window rules are
 * then decided by the test, not by where the wall clock happens to be.
 */
export class ManualClock extends Clock {
  /** Starts 30 s into a minute, far from any window boundary, unless told otherwise. */
  constructor(private ms = Date.UTC(2030, 0, 1, 0, 0, 30)) {
    super();
  }

  now(): number {
    return this.ms;
  }

  advance(ms: number): void {
    this.ms += ms;
  }
}

/** The override that makes the app count time on `clock`. */
export const useClock = (clock: Clock): ProviderOverride => ({ provide: Clock, useValue: clock });
