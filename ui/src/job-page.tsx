import { useEffect, useRef, useState } from 'preact/hooks';
import {
  asProblem,
  isTerminal,
  ITEM_STATUSES,
  type Client,
  type Item,
  type ItemStatus,
  type Job,
  type Problem,
} from './api';
import { Link, navigate, ProblemBox, ProgressBar, StatusBadge } from './components';
import { followJob } from './events';
import { formatDuration, formatNumber, formatRate, formatTime } from './format';
import { useInfiniteScroll, usePaged } from './paged';
import type { Session } from './session';
import { Throughput } from './throughput';

/** While its event stream is refused (the per-owner cap on streams, say), the page reads the job this often. */
const FALLBACK_POLL_MS = 2000;

/**
 * What an operator can do to a job: each entry is a button, shown when
 * `shown` says so and calling the public API. New operations of the API are
 * one entry each.
 */
interface JobAction {
  id: string;
  label: string;
  shown: (job: Job) => boolean;
  /** The job as it now is, or another page to go to (a new job), or nothing to show. */
  run: (api: Client, job: Job) => Promise<Job | { goTo: string } | undefined>;
  /** Asked before running it, for what cannot be undone. */
  confirm?: string;
  danger?: boolean;
}

const JOB_ACTIONS: readonly JobAction[] = [
  {
    id: 'cancel',
    label: 'Cancel',
    shown: (job) => !job.deleted_at && !isTerminal(job.status),
    run: (api, job) => api.cancel(job.id),
    confirm: 'Cancel this job? Items not started yet are skipped; this cannot be undone.',
    danger: true,
  },
  {
    id: 'pause',
    label: 'Pause',
    shown: (job) => !job.deleted_at && (job.status === 'pending' || job.status === 'running'),
    run: (api, job) => api.pause(job.id),
  },
  {
    id: 'resume',
    label: 'Resume',
    shown: (job) => !job.deleted_at && job.status === 'paused',
    run: (api, job) => api.resume(job.id),
  },
  {
    id: 'retry',
    label: 'Retry failures',
    shown: (job) => !job.deleted_at && isTerminal(job.status) && job.failed_items > 0,
    run: async (api, job) => {
      const { body, location } = await api.retry(job.id);
      // Location is the new job's API address: its last segment is the id.
      const id = location?.split('/').filter(Boolean).pop() ?? body.id;
      return { goTo: `/ui/jobs/${id}` };
    },
  },
  {
    id: 'delete',
    label: 'Delete',
    // Shown for unfinished jobs too: the server decides, and its 409 says why not.
    shown: (job) => !job.deleted_at,
    run: async (api, job) => {
      await api.remove(job.id);
      return undefined;
    },
  },
  {
    id: 'restore',
    label: 'Restore',
    shown: (job) => job.deleted_at !== null,
    run: (api, job) => api.restore(job.id),
  },
  {
    id: 'export-ndjson',
    label: 'Export NDJSON',
    shown: () => true,
    run: async (api, job) => {
      await api.exportResults(job.id, 'ndjson');
      return undefined;
    },
  },
  {
    id: 'export-csv',
    label: 'Export CSV',
    shown: () => true,
    run: async (api, job) => {
      await api.exportResults(job.id, 'csv');
      return undefined;
    },
  },
];

export function JobPage({ api, session, id }: { api: Client; session: Session; id: string }) {
  const [job, setJob] = useState<Job>();
  const [problem, setProblem] = useState<Problem>();
  const [actionProblem, setActionProblem] = useState<Problem>();
  const [busy, setBusy] = useState<string>();
  const [notice, setNotice] = useState<string>();
  const [itemFilter, setItemFilter] = useState<ItemStatus | undefined>(undefined);
  const [itemsVersion, setItemsVersion] = useState(0);
  const throughput = useRef(new Throughput());
  const [rate, setRate] = useState<{ rate?: number; eta?: number }>({});
  const [reload, setReload] = useState(0);

  const record = (next: Job) => {
    const done = next.succeeded_items + next.failed_items + next.skipped_items;
    throughput.current.add(done, performance.now());
    setRate({
      rate: throughput.current.rate(),
      eta: throughput.current.eta(next.total_items - done),
    });
    setJob(next);
  };

  // The job, then its live progress from its event stream while it is not finished.
  useEffect(() => {
    const abort = new AbortController();
    let stop: (() => void) | undefined;
    let poll: ReturnType<typeof setInterval> | undefined;
    throughput.current.reset();
    api
      .job(id, abort.signal)
      .then((first) => {
        setJob(first);
        setProblem(undefined);
        if (isTerminal(first.status)) return;
        stop = followJob(session.token, id, {
          progress: record,
          end: (last) => {
            record(last);
            setItemsVersion((v) => v + 1);
          },
          problem: (p) => {
            if (p.status === 429 || p.status >= 500) {
              // Refused a stream: read the job instead, less often, until it finishes.
              poll = setInterval(() => {
                api
                  .job(id, abort.signal)
                  .then((j) => {
                    record(j);
                    if (isTerminal(j.status)) {
                      clearInterval(poll);
                      setItemsVersion((v) => v + 1);
                    }
                  })
                  .catch(() => undefined);
              }, FALLBACK_POLL_MS);
            } else setProblem(p);
          },
        });
      })
      .catch((err: unknown) => {
        if (!abort.signal.aborted) setProblem(asProblem(err));
      });
    return () => {
      abort.abort();
      stop?.();
      clearInterval(poll);
    };
  }, [id, reload]);

  const runAction = async (action: JobAction) => {
    if (!job) return;
    if (action.confirm && !window.confirm(action.confirm)) return;
    setBusy(action.id);
    setActionProblem(undefined);
    setNotice(undefined);
    try {
      const updated = await action.run(api, job);
      if (updated && 'goTo' in updated) {
        navigate(updated.goTo);
        return;
      }
      setNotice(`${action.label}: done.`);
      if (updated) setJob(updated);
      // Read it again: a delete answers no job, and a cancel may leave it cancelling.
      setReload((n) => n + 1);
      setItemsVersion((v) => v + 1);
    } catch (err) {
      setActionProblem(asProblem(err));
    } finally {
      setBusy(undefined);
    }
  };

  if (problem && !job) {
    return (
      <main id="main" class="page">
        <p>
          <Link href="/ui">← Jobs</Link>
        </p>
        <ProblemBox problem={problem} />
      </main>
    );
  }
  if (!job) {
    return (
      <main id="main" class="page">
        <p>Loading…</p>
      </main>
    );
  }

  const running = !isTerminal(job.status);
  return (
    <main id="main" class="page job-page">
      <p class="crumbs">
        <Link href="/ui">← Jobs</Link>
      </p>
      <h1 class="job-title">
        Job <code>{job.id}</code>
      </h1>
      <div class="actions" role="group" aria-label="Job actions">
        {JOB_ACTIONS.filter((a) => a.shown(job)).map((a) => (
          <button
            type="button"
            key={a.id}
            class={a.danger ? 'danger' : undefined}
            disabled={busy !== undefined}
            aria-busy={busy === a.id}
            onClick={() => void runAction(a)}
          >
            {a.label}
          </button>
        ))}
        <span class="action-notice" role="status">
          {notice ?? ''}
        </span>
      </div>
      {actionProblem ? (
        <ProblemBox problem={actionProblem} onDismiss={() => setActionProblem(undefined)} />
      ) : null}
      {problem ? <ProblemBox problem={problem} /> : null}

      <section class="summary" aria-label="Progress">
        <div class="summary-status">
          <StatusBadge status={job.status} deleted={job.deleted_at !== null} />
        </div>
        <ProgressBar job={job} label="Job progress" />
        <dl class="tally">
          <div>
            <dt>succeeded</dt>
            <dd data-testid="succeeded">{formatNumber(job.succeeded_items)}</dd>
          </div>
          <div>
            <dt>failed</dt>
            <dd data-testid="failed">{formatNumber(job.failed_items)}</dd>
          </div>
          <div>
            <dt>skipped</dt>
            <dd data-testid="skipped">{formatNumber(job.skipped_items)}</dd>
          </div>
          <div>
            <dt>total</dt>
            <dd>{formatNumber(job.total_items)}</dd>
          </div>
          <div>
            <dt>throughput</dt>
            <dd data-testid="throughput">{running ? formatRate(rate.rate) : '—'}</dd>
          </div>
          <div>
            <dt>time left</dt>
            <dd data-testid="eta">{running && rate.eta !== undefined ? formatDuration(rate.eta) : '—'}</dd>
          </div>
        </dl>
      </section>

      <section class="fields" aria-label="Job fields">
        <dl>
          <Field name="Action" value={job.action} />
          <Field name="Owner" value={job.owner} />
          {job.retry_of ? (
            <div class="field">
              <dt>Retry of</dt>
              <dd>
                <Link href={`/ui/jobs/${job.retry_of}`} class="retry-of">
                  <code>{job.retry_of}</code>
                </Link>
              </dd>
            </div>
          ) : null}
          <div class="field">
            <dt>Labels</dt>
            <dd data-testid="labels">
              <Labels labels={job.labels} />
            </dd>
          </div>
          <Field name="Created" value={formatTime(job.created_at)} />
          <Field name="Started" value={formatTime(job.started_at)} />
          <Field name="Finished" value={formatTime(job.finished_at)} />
          <Field name="Updated" value={formatTime(job.updated_at)} />
          {job.deleted_at ? <Field name="Deleted" value={formatTime(job.deleted_at)} /> : null}
          {job.purge_at ? <Field name="Purged after" value={formatTime(job.purge_at)} /> : null}
          {job.error ? <Field name="Error" value={`${job.error.code}: ${job.error.message}`} /> : null}
          <Field name="Params" value={JSON.stringify(job.params)} code />
          <Field name="Options" value={JSON.stringify(job.options)} code />
        </dl>
      </section>

      <Items api={api} job={job} filter={itemFilter} setFilter={setItemFilter} version={itemsVersion} />
    </main>
  );
}

export function Labels({ labels }: { labels: Record<string, string> | undefined }) {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return <span>—</span>;
  return (
    <ul class="labels">
      {entries.map(([key, value]) => (
        <li key={key} class="label">
          <code>{`${key}:${value}`}</code>
        </li>
      ))}
    </ul>
  );
}

function Field({ name, value, code }: { name: string; value: string; code?: boolean }) {
  return (
    <div class="field">
      <dt>{name}</dt>
      <dd>{code ? <code>{value}</code> : value}</dd>
    </div>
  );
}

function Items({
  api,
  job,
  filter,
  setFilter,
  version,
}: {
  api: Client;
  job: Job;
  filter: ItemStatus | undefined;
  setFilter: (f: ItemStatus | undefined) => void;
  version: number;
}) {
  const paged = usePaged(`${job.id} ${filter ?? ''} ${version}`, (cursor, signal) =>
    api.items(job.id, filter, cursor, signal),
  );
  const sentinel = useInfiniteScroll(paged);
  return (
    <section class="items" aria-labelledby="items-title">
      <div class="items-head">
        <h2 id="items-title">Items</h2>
        <label>
          Status{' '}
          <select
            value={filter ?? ''}
            onChange={(e) => {
              const value = (e.target as HTMLSelectElement).value;
              setFilter(value ? (value as ItemStatus) : undefined);
            }}
          >
            <option value="">any</option>
            {ITEM_STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
      </div>
      <table class="items-table">
        <caption class="visually-hidden">{`Items${filter ? ` (${filter})` : ''}, in target order`}</caption>
        <colgroup>
          <col class="c-seq" />
          <col class="c-target" />
          <col class="c-istatus" />
          <col class="c-attempts" />
          <col class="c-error" />
          <col class="c-finished" />
        </colgroup>
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">Target</th>
            <th scope="col">Status</th>
            <th scope="col">Attempts</th>
            <th scope="col">Error</th>
            <th scope="col">Finished</th>
          </tr>
        </thead>
        <tbody>
          {paged.items.map((item) => (
            <ItemRow key={item.seq} item={item} />
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
          <span>{filter ? `No ${filter} items.` : 'No items.'}</span>
        ) : (
          <span>{`${formatNumber(paged.items.length)} ${paged.items.length === 1 ? 'item' : 'items'}, end of list.`}</span>
        )}
      </div>
    </section>
  );
}

function ItemRow({ item }: { item: Item }) {
  return (
    <tr data-seq={item.seq}>
      <td data-label="#" class="num">
        {item.seq}
      </td>
      <td data-label="Target">
        <code>{item.target_id}</code>
      </td>
      <td data-label="Status">
        <StatusBadge status={item.status} />
      </td>
      <td data-label="Attempts" class="num">
        {item.attempts}
      </td>
      <td data-label="Error">
        {item.last_error ? (
          <span class="item-error">
            <code class="error-code">{item.last_error.code}</code>{' '}
            <span class="error-message">{item.last_error.message}</span>
          </span>
        ) : (
          '—'
        )}
      </td>
      <td data-label="Finished">{formatTime(item.finished_at)}</td>
    </tr>
  );
}
