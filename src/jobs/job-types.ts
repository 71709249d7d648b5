/** Why a job could not run, or why an item failed (`error`, `last_error`). */
export interface JobError {
  code: string;
  message: string;
}

/** A job's `options`, as a client sends them at create (a type, not an interface: it is also a JSON object). */
export type JobOptions = {
  max_attempts?: number;
  concurrency?: number;
  rate_limit_per_second?: number;
  /** Where to POST the `bulk_job.finished` event when the job ends. */
  notify?: { url: string };
  /** -10 to 10, default 0: higher priorities are claimed first. */
  priority?: number;
};
