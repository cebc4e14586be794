import { isRetryable } from './errors.ts';
import type { RunStore } from './ports.ts';
import type { Run, RunEvent } from './types.ts';
import type { Workflow } from './workflow.ts';

/** What a reporter is given with the run it reports. */
export interface ReportContext {
  /** The run's history (kept per run by the engine and extended, not re-read, for each version). */
  events: RunEvent[];
  workflow: Workflow<unknown> | undefined;
  store: RunStore;
  /**
   * The fence of a report: true while this version is still the one to show (the claim is still
   * ours and nothing newer was reported). Call it right before each outbound write and drop the
   * update when it says false: a late writer must not overwrite a newer state. (Absent when a
   * reporter is called outside the engine, e.g. in a unit test: then there is nothing to fence.)
   */
  current?(): Promise<boolean>;
  /**
   * What this reporter noted (`note` below) at the last completed report of the run, when that
   * still describes what is shown: undefined when nothing was noted, or when a claim lapsed, a
   * report was reopened or another worker completed a report since this worker's read.
   */
  noted?: string;
  /**
   * Keep `value` for the next report of this run (it comes back as `noted`). It is written with
   * this version's completion, no write of its own; a note not given again is dropped. Absent
   * outside the engine: a reporter then keeps what it needs itself.
   */
  note?(value: string): void;
}

/** Something that shows a run's state where people look (GitHub comment, Discord message). */
export interface Reporter {
  name: string;
  report(run: Run, ctx: ReportContext): Promise<void>;
}

/**
 * A reporter failure that redelivery cannot fix: the issue or repository is gone (404, 410), the
 * App lost access (403), or GitHub refuses the content (422). It ends that reporter's work on the
 * run with a `report.failed` event, so a finished run still retires.
 */
export function isPermanentReportFailure(err: unknown): boolean {
  const status = (err as { status?: unknown } | null)?.status;
  return !isRetryable(err) && typeof status === 'number' && [403, 404, 410, 422].includes(status);
}
