import { expect } from 'expect';
import { describe, it } from 'node:test';
import {
  isCancellable,
  isDeletable,
  isItemStatus,
  isJobStatus,
  isPausable,
  isTerminal,
  takesReturnedItems,
  ITEM_STATUSES,
  JOB_STATUSES,
  type JobStatus,
} from './job-status';

interface Rule {
  terminal: boolean;
  deletable: boolean;
  cancellable: boolean;
  pausable: boolean;
  returnsItems: boolean;
}

const EXPECTED: Record<JobStatus, Rule> = {
  pending: { terminal: false, deletable: false, cancellable: true, pausable: true, returnsItems: true },
  running: { terminal: false, deletable: false, cancellable: true, pausable: true, returnsItems: true },
  paused: { terminal: false, deletable: false, cancellable: true, pausable: false, returnsItems: true },
  cancelling: { terminal: false, deletable: false, cancellable: false, pausable: false, returnsItems: false },
  completed: { terminal: true, deletable: true, cancellable: false, pausable: false, returnsItems: false },
  failed: { terminal: true, deletable: true, cancellable: false, pausable: false, returnsItems: false },
  cancelled: { terminal: true, deletable: true, cancellable: false, pausable: false, returnsItems: false },
};

describe('job status rules', () => {
  it('covers every job status in the table below', () => {
    expect([...JOB_STATUSES].sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const status of JOB_STATUSES) {
    const rule = EXPECTED[status];
    it(`${status}: terminal=${rule.terminal}, deletable=${rule.deletable}, cancellable=${rule.cancellable}`, () => {
      expect(isTerminal(status)).toBe(rule.terminal);
      expect(isDeletable(status)).toBe(rule.deletable);
      expect(isCancellable(status)).toBe(rule.cancellable);
      expect(isPausable(status)).toBe(rule.pausable);
      expect(takesReturnedItems(status)).toBe(rule.returnsItems);
    });
  }

  it('only terminal jobs are deletable, and no terminal job is cancellable', () => {
    for (const status of JOB_STATUSES) {
      expect(isDeletable(status)).toBe(isTerminal(status));
      if (isTerminal(status)) expect(isCancellable(status)).toBe(false);
    }
  });

  it('recognises job and item statuses and nothing else', () => {
    for (const status of JOB_STATUSES) expect(isJobStatus(status)).toBe(true);
    for (const status of ITEM_STATUSES) expect(isItemStatus(status)).toBe(true);
    for (const value of ['', 'PENDING', 'deleted', 'succeeded', ' pending', 'constructor']) {
      expect(isJobStatus(value)).toBe(false);
    }
    for (const value of ['', 'completed', 'cancelled', 'Running', 'toString']) {
      expect(isItemStatus(value)).toBe(false);
    }
  });
});
