import type { EventType } from './events.ts';

/** The run model shared by the engine, the store, the API and the reporters. */

export const RUN_STATUSES = [
  'queued',
  'running',
  'waiting',
  'succeeded',
  'failed',
  'cancelled',
  'expired',
] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export const TERMINAL_STATUSES: ReadonlySet<RunStatus> = new Set([
  'succeeded',
  'failed',
  'cancelled',
  'expired',
]);
export const isTerminal = (s: RunStatus): boolean => TERMINAL_STATUSES.has(s);
/**
 * Ended for good: no signal moves such a run again (`retry` takes failed and expired runs only,
 * transitions.ts), so its version is its last.
 */
export const isFinal = (s: RunStatus): boolean => s === 'succeeded' || s === 'cancelled';

const RESULT_SUFFIX = 'Result';
/** Where a run keeps the answer (a `result` signal) that resumed node `node`'s gate: its data's `<node>Result`. */
export const resultKey = (node: string): string => `${node}${RESULT_SUFFIX}`;
/** Whether a data key is one `resultKey` names. */
export const isResultKey = (key: string): boolean => key.endsWith(RESULT_SUFFIX);

/** What a run is about: `owner/name#issue`, or any string (for runs not tied to an issue). */
export interface Subject {
  repo?: string;
  issue?: number;
  /** Concurrency key. Defaults to `repo#issue`, or `repo`. */
  key: string;
}

export interface Trigger {
  source: 'discord' | 'github' | 'cli' | 'api' | 'schedule' | 'test';
  /** Who asked (Discord user id, GitHub login, operator). */
  actor?: string;
  [k: string]: unknown;
}

/** The next step the worker should take. `seq` makes queue messages for older steps stale. */
export interface PendingStep {
  node: string;
  seq: number;
  /**
   * The seq of this step's first attempt (absent: `seq`). A retry is a new seq and keeps this, so
   * the step's effect journal (lib/engine/effects.ts) is found again by every attempt.
   */
  firstSeq?: number;
  attempt: number;
  /** Not before this instant (ISO). Backoff delays live here as well as in the queue delay. */
  notBefore: string;
}

export interface Lease {
  owner: string;
  /** ISO instant; past it another worker (or the sweeper) may take the step over. */
  until: string;
  seq: number;
  /** Why the lease was given back early: the step's commit failed (a throttle, the store down). */
  error?: string;
}

/** A run parked at a gate waits for a signal or for `expiresAt`. */
export interface Gate {
  node: string;
  /** `ci` and `hold` are resumed like `agent` gates: a `result` signal matching the correlation. */
  kind: 'approval' | 'agent' | 'escalation' | 'budget' | 'ci' | 'hold';
  expiresAt: string;
  /** What an approval binds to (e.g. the plan version shown); a stale approval is refused. */
  binding?: string;
  /** A correlation id for agent results (dispatched workflow, callback token). */
  correlation?: string;
  prompt?: string;
}

export interface RunError {
  name: string;
  message: string;
  node?: string;
  retryable?: boolean;
}

export interface Run {
  id: string;
  workflow: string;
  status: RunStatus;
  /** The node the run is at (or ended at). */
  node: string | null;
  subject: Subject;
  trigger: Trigger;
  createdAt: string;
  updatedAt: string;
  /** Optimistic-lock version; every write to the run is conditional on it. */
  version: number;
  /** Workflow data: node outputs merged in order. Keep it small (it is written every transition). */
  data: Record<string, unknown>;
  step?: PendingStep;
  lease?: Lease;
  gate?: Gate;
  /** Why the run ended (every terminal state records why). */
  reason?: string;
  error?: RunError;
  finishedAt?: string;
  /** Number of history events written so far (the next event's sequence number). */
  eventSeq: number;
  /**
   * Who reports this run now, claimed in the commit of `version` by the worker that shows that
   * version itself (reporting.ts: a claim with no write of its own). Commits after it carry it
   * forward; it holds while `until` is ahead and the reported version is below `version`.
   */
  reporting?: ReportingClaim;
  /** Epoch seconds at which DynamoDB TTL may remove a finished run. */
  ttl?: number;
}

/** A report claim taken in a commit (Run.reporting). */
export interface ReportingClaim {
  owner: string;
  until: string;
  /** The version whose commit took it. */
  version: number;
}

export interface RunEvent {
  seq: number;
  at: string;
  /** One of the names in lib/engine/events.ts. */
  type: EventType;
  node?: string;
  /** Who caused it (a user for signals, `worker`, `sweeper`, `system`). */
  by?: string;
  detail: Record<string, unknown>;
}

export type NewEvent = Omit<RunEvent, 'seq' | 'at'> & { at?: string };

/** The public JSON shape of a run (ARCHITECTURE.md §1), plus a few helpful extras. */
export function toPublicRun(run: Run): Record<string, unknown> {
  return {
    id: run.id,
    workflow: run.workflow,
    status: run.status,
    node: run.node,
    subject: {
      ...(run.subject.repo !== undefined ? { repo: run.subject.repo } : {}),
      ...(run.subject.issue !== undefined ? { issue: run.subject.issue } : {}),
      key: run.subject.key,
    },
    trigger: run.trigger,
    createdAt: run.createdAt,
    updatedAt: run.updatedAt,
    version: run.version,
    ...(run.gate ? { gate: run.gate } : {}),
    ...(run.reason !== undefined ? { reason: run.reason } : {}),
    ...(run.error ? { error: run.error } : {}),
    ...(run.finishedAt ? { finishedAt: run.finishedAt } : {}),
    ...(run.step && !isTerminal(run.status)
      ? { step: { node: run.step.node, attempt: run.step.attempt } }
      : {}),
  };
}
