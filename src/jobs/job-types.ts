/** Why a job could not run, or why an item failed (`error`, `last_error`). */
export interface JobError {
  code: string;
  message: string;
}

/** A job's `options`, as a client sends them at create. */
export interface JobOptions {
  max_attempts?: number;
  concurrency?: number;
  rate_limit_per_second?: number;
}
