import { useEffect, useRef, useState } from 'preact/hooks';
import {
  asProblem,
  isTerminal,
  JOB_STATUSES,
  type Client,
  type Job,
  type JobCounts,
  type JobFilters,
  type JobStatus,
  type Problem,
} from './api';
import { Link, ProblemBox, ProgressBar, StatusBadge } from './components';
import { formatNumber, formatTime, shortId } from './format';
import { useInfiniteScroll, usePaged } from './paged';
import type { Session } from './session';

/** How often the page asks for the running jobs while it shows any (one request, whatever their number). */
const LIVE_POLL_MS = 1000;
/** How often the counts are read. */
const COUNTS_POLL_MS = 5000;

function filtersFromUrl(): JobFilters {
  const q = new URLSearchParams(location.search);
  const status = q.get('status');
  return {
    status: (JOB_STATUSES as readonly string[]).includes(status ?? '') ? (status as JobStatus) : undefined,
    show_deleted: q.get('show_deleted') === 'true',
    owner: q.get('owner') || undefined,
    label: q.getAll('label').filter(Boolean),
  };
}

function filtersToUrl(filters: JobFilters): string {
  const q = new URLSearchParams();
  if (filters.status) q.set('status', filters.status);
  if (filters.show_deleted) q.set('show_deleted', 'true');
  if (filters.owner) q.set('owner', filters.owner);
  for (const label of filters.label ?? []) q.append('label', label);
  const qs = q.toString();
  return qs ? `/ui?${qs}` : '/ui';
}

/**
 * The jobs, newest first, with infinite scroll over the API's cursor. Live
 * progress comes from one poll of the running jobs a second (not one event
 * stream per job: see the README's "Dashboard" for what each costs the
 * server), and only while the page shows a job that is not finished.
 */
export function JobsList({ api, session }: { api: Client; session: Session }) {
  const [filters, setFilters] = useState<JobFilters>(filtersFromUrl);
  const [ownerDraft, setOwnerDraft] = useState(filters.owner ?? '');
  const [labelDraft, setLabelDraft] = useState('');
  const labels = filters.label ?? [];
  const [counts, setCounts] = useState<JobCounts>();
  const [countsProblem, setCountsProblem] = useState<Problem>();
  const [newer, setNewer] = useState(0);
  const [reloads, setReloads] = useState(0);
  const filtersKey = JSON.stringify(filters);
  const key = `${filtersKey} ${reloads}`;
  const paged = usePaged(key, (cursor, signal) => api.listJobs(filters, cursor, 50, signal));
  const sentinel = useInfiniteScroll(paged);

  const apply = (next: JobFilters) => {
    history.replaceState(null, '', filtersToUrl(next));
    setFilters(next);
    setNewer(0);
  };

  // Counts, and whether jobs arrived that the list does not show yet.
  const baseline = useRef<number | undefined>(undefined);
  useEffect(() => {
    baseline.current = undefined;
    const abort = new AbortController();
    const read = () => {
      if (document.hidden) return;
      api
        .counts(filters.owner, abort.signal)
        .then((c) => {
          setCounts(c);
          setCountsProblem(undefined);
          if (baseline.current === undefined) baseline.current = c.total;
          setNewer(Math.max(0, c.total - baseline.current));
        })
        .catch((err: unknown) => {
          if (!abort.signal.aborted) setCountsProblem(asProblem(err));
        });
    };
    read();
    const timer = setInterval(read, COUNTS_POLL_MS);
    return () => {
      abort.abort();
      clearInterval(timer);
    };
  }, [filtersKey]);

  // Live progress: one request for every running job, then a read of each listed job that stopped running.
  const active = paged.items.some((j) => !isTerminal(j.status));
  const lastCounts = useRef<string>('');
  // The latest list and counts, read by the poll without restarting it at every change.
  const listedRef = useRef(paged.items);
  listedRef.current = paged.items;
  const countsRef = useRef(counts);
  countsRef.current = counts;
  useEffect(() => {
    if (!active) return;
    const abort = new AbortController();
    let busy = false;
    const tick = async () => {
      if (busy || document.hidden) return;
      busy = true;
      try {
        const listed = listedRef.current;
        const running = await api.listJobs(
          { status: 'running', owner: filters.owner },
          undefined,
          500,
          abort.signal,
        );
        const fresh = new Map(running.items.map((j) => [j.id, j]));
        // Jobs that left `running` (finished, cancelling), and pending ones once the counts moved.
        const countsNow = JSON.stringify(countsRef.current?.by_status ?? {});
        const countsMoved = countsNow !== lastCounts.current;
        lastCounts.current = countsNow;
        const stale = listed.filter(
          (j) =>
            !isTerminal(j.status) &&
            !fresh.has(j.id) &&
            ((j.status !== 'pending' && j.status !== 'paused') || countsMoved),
        );
        for (const job of stale.slice(0, 20)) fresh.set(job.id, await api.job(job.id, abort.signal));
        if (abort.signal.aborted) return;
        paged.setItems((items) => items.map((j) => fresh.get(j.id) ?? j));
      } catch {
        // The next tick tries again; the list keeps what it showed.
      } finally {
        busy = false;
      }
    };
    const timer = setInterval(() => void tick(), LIVE_POLL_MS);
    return () => {
      abort.abort();
      clearInterval(timer);
    };
  }, [active, key]);

  return (
    <main id="main" class="page">
      <h1 class="visually-hidden">Jobs</h1>
      <section class="counts" aria-label="Jobs by status">
        <button
          type="button"
          class={`count ${filters.status === undefined ? 'selected' : ''}`}
          aria-pressed={filters.status === undefined}
          onClick={() => apply({ ...filters, status: undefined })}
        >
          <span class="count-n" data-testid="count-all">
            {counts ? formatNumber(counts.total) : '…'}
          </span>
          <span class="count-label">all</span>
        </button>
        {JOB_STATUSES.map((status) => (
          <button
            type="button"
            key={status}
            class={`count status-${status} ${filters.status === status ? 'selected' : ''}`}
            aria-pressed={filters.status === status}
            onClick={() => apply({ ...filters, status })}
          >
            <span class="count-n" data-testid={`count-${status}`}>
              {counts ? formatNumber(counts.by_status[status]) : '…'}
            </span>
            <span class="count-label">{status}</span>
          </button>
        ))}
      </section>
      {countsProblem ? <ProblemBox problem={countsProblem} /> : null}

      <form
        class="filters"
        aria-label="Filters"
        onSubmit={(e) => {
          e.preventDefault();
          const label = labelDraft.trim();
          setLabelDraft('');
          apply({
            ...filters,
            owner: session.admin ? ownerDraft.trim() || undefined : undefined,
            label: label && !labels.includes(label) ? [...labels, label] : labels,
          });
        }}
      >
        <label>
          Status{' '}
          <select
            value={filters.status ?? ''}
            onChange={(e) => {
              const value = (e.target as HTMLSelectElement).value;
              apply({ ...filters, status: value ? (value as JobStatus) : undefined });
            }}
          >
            <option value="">any</option>
            {JOB_STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label class="check">
          <input
            type="checkbox"
            checked={filters.show_deleted ?? false}
            onChange={(e) => apply({ ...filters, show_deleted: (e.target as HTMLInputElement).checked })}
          />{' '}
          show deleted
        </label>
        <span class="text-filters">
          <label>
            Label{' '}
            <input
              type="search"
              value={labelDraft}
              placeholder="key:value"
              onInput={(e) => setLabelDraft((e.target as HTMLInputElement).value)}
            />
          </label>
          {session.admin ? (
            <label>
              Owner{' '}
              <input
                type="search"
                value={ownerDraft}
                placeholder="every owner"
                onInput={(e) => setOwnerDraft((e.target as HTMLInputElement).value)}
              />
            </label>
          ) : null}
          <button type="submit">Filter</button>
        </span>
      </form>
      {labels.length > 0 ? (
        <ul class="labels label-filters" aria-label="Label filters">
          {labels.map((label) => (
            <li key={label} class="label">
              <code>{label}</code>{' '}
              <button
                type="button"
                class="link"
                aria-label={`Remove label filter ${label}`}
                onClick={() => apply({ ...filters, label: labels.filter((l) => l !== label) })}
              >
                ×
              </button>
            </li>
          ))}
        </ul>
      ) : null}

      <div class="notice-slot" aria-live="polite">
        {newer > 0 ? (
          <button
            type="button"
            class="link"
            onClick={() => {
              setNewer(0);
              baseline.current = counts?.total;
              setReloads((n) => n + 1);
            }}
          >
            {newer === 1 ? '1 new job' : `${newer} new jobs`}: show
          </button>
        ) : null}
      </div>

      <table class="jobs">
        <caption class="visually-hidden">Jobs, newest first</caption>
        <colgroup>
          <col class="c-id" />
          <col class="c-action" />
          {session.admin ? <col class="c-owner" /> : null}
          <col class="c-status" />
          <col class="c-progress" />
          <col class="c-items" />
          <col class="c-created" />
        </colgroup>
        <thead>
          <tr>
            <th scope="col">Job</th>
            <th scope="col">Action</th>
            {session.admin ? <th scope="col">Owner</th> : null}
            <th scope="col">Status</th>
            <th scope="col">Progress</th>
            <th scope="col">Items</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          {paged.items.map((job) => (
            <JobRow key={job.id} job={job} admin={session.admin} />
          ))}
        </tbody>
      </table>
      {paged.problem ? <ProblemBox problem={paged.problem} /> : null}
      <div class="list-end" ref={sentinel}>
        {paged.loading ? (
          <span>Loading…</span>
        ) : paged.more && !paged.problem ? (
          <button type="button" onClick={paged.loadMore}>
            Load more
          </button>
        ) : paged.items.length === 0 && !paged.problem ? (
          <span>No jobs.</span>
        ) : (
          <span>{`${formatNumber(paged.items.length)} ${paged.items.length === 1 ? 'job' : 'jobs'}, end of list.`}</span>
        )}
      </div>
    </main>
  );
}

function JobRow({ job, admin }: { job: Job; admin: boolean }) {
  const href = `/ui/jobs/${job.id}`;
  return (
    <tr data-job-id={job.id} class={job.deleted_at ? 'deleted' : undefined}>
      <td data-label="Job">
        <Link href={href} class="job-link">
          <code class="id-long">{job.id}</code>
          <code class="id-short">{shortId(job.id)}</code>
        </Link>
      </td>
      <td data-label="Action">{job.action}</td>
      {admin ? <td data-label="Owner">{job.owner}</td> : null}
      <td data-label="Status">
        <StatusBadge status={job.status} deleted={job.deleted_at !== null} />
      </td>
      <td data-label="Progress">
        <ProgressBar job={job} label={`Progress of job ${shortId(job.id)}`} />
      </td>
      <td data-label="Items" class="num">
        {formatNumber(job.total_items)}
        {job.failed_items > 0 ? (
          <span class="failed-n"> · {formatNumber(job.failed_items)} failed</span>
        ) : null}
      </td>
      <td data-label="Created">{formatTime(job.created_at)}</td>
    </tr>
  );
}
