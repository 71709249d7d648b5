/** Resolves after `ms`; for giving something the chance to happen that must not (a negative check). */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Polls `probe` every `intervalMs` until it returns something other than
 * undefined/false, or fails after `timeoutMs` (with `describeState()` in the
 * message). The default deadline is generous on purpose: it bounds how long a
 * broken run hangs, not how fast a working one must be.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  {
    timeoutMs = 30_000,
    intervalMs = 150,
    describeState,
  }: { timeoutMs?: number; intervalMs?: number; describeState?: () => Promise<string> } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${describeState ? `: ${await describeState()}` : ''}`,
      );
    await sleep(intervalMs);
  }
}

/** `promise`, or a failure naming `what` once `timeoutMs` have passed: a spec fails rather than hangs. */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
