/**
 * The time source of rules that count time (the per-principal rate limit). A
 * provider of its own, so that a test can hold time still or move it on
 * instead of racing the wall clock across a window boundary.
 */
export abstract class Clock {
  /** Milliseconds since the epoch, as Date.now(). */
  abstract now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
