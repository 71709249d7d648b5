import type { ComponentChildren } from 'preact';
import type { Job, Problem } from './api';
import { formatPercent } from './format';

/** A job's progress: succeeded, failed and skipped shares side by side, in a bar of fixed size. */
export function ProgressBar({ job, label }: { job: Job; label: string }) {
  const total = job.total_items || 1;
  const share = (n: number) => `${(n / total) * 100}%`;
  const done = job.succeeded_items + job.failed_items + job.skipped_items;
  return (
    <div class="progress">
      <div
        class="bar"
        role="progressbar"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={job.total_items}
        aria-valuenow={done}
        aria-valuetext={`${formatPercent(job.progress)}: ${done} of ${job.total_items} items finished`}
      >
        <span class="seg succeeded" style={{ width: share(job.succeeded_items) }} />
        <span class="seg failed" style={{ width: share(job.failed_items) }} />
        <span class="seg skipped" style={{ width: share(job.skipped_items) }} />
      </div>
      <span class="pct" data-testid="progress-text">
        {formatPercent(job.progress)}
      </span>
    </div>
  );
}

export function StatusBadge({ status, deleted }: { status: string; deleted?: boolean }) {
  return (
    <span class={`badge status-${status}`}>
      {status}
      {deleted ? <span class="deleted-mark"> · deleted</span> : null}
    </span>
  );
}

/** A problem+json error, readable: its title, its detail, and what else it says (job_status, fields). */
export function ProblemBox({ problem, onDismiss }: { problem: Problem; onDismiss?: () => void }) {
  const extra = Object.entries(problem.details ?? {});
  return (
    <div class="problem" role="alert" data-testid="problem">
      <p class="problem-title">
        {problem.status ? <span class="problem-status">{problem.status}</span> : null} {problem.title}
      </p>
      {problem.detail ? <p class="problem-detail">{problem.detail}</p> : null}
      {problem.job_status ? (
        <p class="problem-extra">
          Job status: <strong data-testid="problem-job-status">{problem.job_status}</strong>
        </p>
      ) : null}
      {extra.length > 0 ? (
        <ul class="problem-extra">
          {extra.map(([field, message]) => (
            <li key={field}>
              <code>{field}</code>: {message}
            </li>
          ))}
        </ul>
      ) : null}
      <p class="problem-meta">
        {problem.type !== 'about:blank' ? <code>{problem.type}</code> : null}
        {problem.requestId ? <span> request {problem.requestId}</span> : null}
      </p>
      {onDismiss ? (
        <button type="button" class="link" onClick={onDismiss}>
          Dismiss
        </button>
      ) : null}
    </div>
  );
}

/** An internal link that the router follows without a page load; still a real link (new tab, keyboard). */
export function Link({
  href,
  children,
  class: className,
}: {
  href: string;
  children: ComponentChildren;
  class?: string;
}) {
  return (
    <a
      href={href}
      class={className}
      onClick={(e) => {
        if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(href);
      }}
    >
      {children}
    </a>
  );
}

const listeners = new Set<() => void>();

export function navigate(href: string): void {
  history.pushState(null, '', href);
  for (const listener of listeners) listener();
}

export function onNavigate(listener: () => void): () => void {
  listeners.add(listener);
  window.addEventListener('popstate', listener);
  return () => {
    listeners.delete(listener);
    window.removeEventListener('popstate', listener);
  };
}
