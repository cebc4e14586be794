import { randomBytes } from 'node:crypto';
import { logger } from '../common/observability.ts';
import { MAX_CARRIED_ITEM_BYTES, type Outgoing, type StepQueue } from '../queue/port.ts';
import { UnknownWorkflowError } from './errors.ts';
import type { CreateRunResult, RunStore } from './ports.ts';
import type { Reporter } from './reporter.ts';
import type { Moment, NewRun, Plan } from './transitions.ts';
import type { NewEvent, Run } from './types.ts';
import type { Workflow, WorkflowRegistry } from './workflow.ts';

export interface EngineOptions<S> {
  store: RunStore;
  queue: StepQueue;
  workflows: WorkflowRegistry<S>;
  services: S;
  reporters?: Reporter[];
  now?: () => Date;
  random?: () => number;
  /** Identifies this worker in leases. */
  owner?: string;
  /** Extra time on top of a node's timeout before its lease may be taken over. */
  leaseGraceMs?: number;
  /** A pending step not leased this long after it became due was never enqueued (or lost): re-enqueue. */
  enqueueGraceMs?: number;
  /** How long a reporter may hold its claim. */
  reportClaimMs?: number;
  /** How long a report carried by a step waits for the step to end (reporting.ts `carried`). */
  carriedReportWaitMs?: number;
  /** Active runs the sweeper reads per page (default 200); it reads every page. */
  sweepPageSize?: number;
  /**
   * Steps a queue message may run one after another in its invocation when each schedules the
   * next for now (steps.ts, transitions.ts `chainNext`). 0, the default: one step per message.
   */
  chainSteps?: number;
  /**
   * A step whose commit leaves nothing due now (a gate, a delayed retry, the end) shows its new
   * state itself, in its own invocation, instead of sending a report message for another one
   * (steps.ts). Only with a budget (a queue message's invocation) that has a minute left
   * (`INLINE_REPORT_MIN_MS`); a failed report becomes a report message as a carried one does. Off
   * by default.
   */
  reportInline?: boolean;
  /**
   * A step of a `lazyLease` node (workflow.ts) runs its first try, on its message's first
   * delivery, without writing its lease until it needs one (steps.ts, hold.ts `StepHold`): before
   * its first effect, or once it has run this long (default 1 s). 0: every step writes its lease
   * before its node runs.
   */
  lazyLeaseMs?: number;
  /** Called at named points of the step lifecycle (fault-injection tests crash here). */
  faults?: (point: FaultPoint, run: Run) => void | Promise<void>;
}

export type FaultPoint = 'after-lease' | 'after-effect' | 'after-commit' | 'before-enqueue';

/** Active runs read per page by the sweeper. */
const SWEEP_PAGE = 200;

/**
 * What the engine's parts (start, signals, steps, reporting, sweeping) share: its ports and
 * settings, and the one place a plan is written to the store and its messages are sent.
 */
export class EngineCore<S> {
  readonly store: RunStore;
  readonly queue: StepQueue;
  readonly workflows: WorkflowRegistry<S>;
  readonly services: S;
  readonly reporters: Reporter[];
  readonly now: () => Date;
  readonly random: () => number;
  readonly owner: string;
  readonly leaseGraceMs: number;
  readonly enqueueGraceMs: number;
  readonly reportClaimMs: number;
  readonly carriedReportWaitMs: number;
  readonly sweepPageSize: number;
  readonly chainSteps: number;
  readonly reportInline: boolean;
  readonly lazyLeaseMs: number;
  readonly faults: EngineOptions<S>['faults'];

  constructor(opts: EngineOptions<S>) {
    this.store = opts.store;
    this.queue = opts.queue;
    this.workflows = opts.workflows;
    this.services = opts.services;
    this.reporters = opts.reporters ?? [];
    this.now = opts.now ?? (() => new Date());
    this.random = opts.random ?? Math.random;
    this.owner = opts.owner ?? `w-${randomBytes(4).toString('hex')}`;
    this.leaseGraceMs = opts.leaseGraceMs ?? 5_000;
    this.enqueueGraceMs = opts.enqueueGraceMs ?? 60_000;
    this.reportClaimMs = opts.reportClaimMs ?? 30_000;
    this.carriedReportWaitMs = opts.carriedReportWaitMs ?? 2_000;
    this.sweepPageSize = opts.sweepPageSize ?? SWEEP_PAGE;
    this.chainSteps = opts.chainSteps ?? 0;
    this.reportInline = opts.reportInline ?? false;
    this.lazyLeaseMs = opts.lazyLeaseMs ?? 1_000;
    this.faults = opts.faults;
  }

  workflow(name: string): Workflow<S> {
    const wf = this.workflows.get(name);
    if (!wf) throw new UnknownWorkflowError(`unknown workflow ${name}`);
    return wf;
  }

  /** Now, as a transition sees it. */
  moment(): Moment {
    return { at: this.now().toISOString(), reporting: this.reporters.length > 0 };
  }

  // Every write of a run's state goes through one of these three: a new run (`create`), a
  // transition (`commit`), a lease (`lease`). Report claims and retiring are in reporting.ts, the
  // effect journal in effects.ts.

  /** Create a run with its first events, idempotency key and subject lock (store: createRun). */
  create(fresh: NewRun, idempotencyKey: string | undefined): Promise<CreateRunResult> {
    return this.store.createRun({
      run: fresh.run,
      events: fresh.events,
      ...(idempotencyKey !== undefined ? { idempotencyKey } : {}),
      lockKey: fresh.lockKey,
    });
  }

  /**
   * A conditional write of the run without history: a step's lease taken, or given back early.
   * Throws ConcurrencyError when the run is no longer at `expectedVersion`.
   */
  lease(run: Run, expectedVersion: number): Promise<Run> {
    return this.store.update(run, expectedVersion);
  }

  /** Write a plan: the run and its events in one conditional commit (ConcurrencyError if it moved). */
  commit(plan: Plan): Promise<Run> {
    const lock = plan.lock;
    return this.store.commit({
      run: plan.run,
      expectedVersion: plan.expectedVersion,
      events: plan.events,
      ...(lock && 'release' in lock ? { releaseLock: lock.release } : {}),
      ...(lock && 'acquire' in lock ? { acquireLock: lock.acquire } : {}),
    });
  }

  /** Commit a plan, then send its messages. */
  async apply(plan: Plan): Promise<Run> {
    const saved = await this.commit(plan);
    await this.send(saved, plan.messages);
    return saved;
  }

  /**
   * Send the messages that follow a commit. The commit is the truth and already happened: a send
   * that fails (SQS refusing a batch) must not fail the caller as if nothing had been done. A
   * webhook answered 5xx for a run it did start, or a step failed (and an attempt spent) because
   * waking another run could not send that run's message, were both wrong. The sweeper re-sends
   * what a lost message left behind: a never-picked-up step after the enqueue grace, an
   * unreported version after the report claim time.
   */
  async send(run: Run, batch: Outgoing[]): Promise<void> {
    if (batch.length === 0) return;
    try {
      await this.queue.send(batch.map((out) => this.carrying(run, out)));
    } catch (err) {
      logger.warn('queue send after a commit failed; the sweeper re-sends it', {
        runId: run.id,
        version: run.version,
        messages: batch.map((b) => b.message.kind),
        error: (err as Error).message,
      });
    }
  }

  /**
   * A step message of `run`'s own version, for a `lazyLease` node, with the run item that version
   * wrote: its first try runs from it without reading the run (steps.ts). Others as they are.
   */
  private carrying(run: Run, out: Outgoing): Outgoing {
    const m = out.message;
    if (m.kind !== 'step' || m.runId !== run.id || m.version !== run.version || m.node === undefined)
      return out;
    if (!this.workflows.get(run.workflow)?.nodes.get(m.node)?.lazyLease) return out;
    const item = this.store.carriedRun(run.id, run.version, MAX_CARRIED_ITEM_BYTES);
    return item === undefined ? out : { ...out, message: { ...m, item } };
  }

  /** An audit-only event (a refusal, an outbound call in dry-run): no state change, never races a step. */
  async recordEvent(runId: string, event: NewEvent): Promise<void> {
    await this.store.appendEvent(runId, { ...event, at: event.at ?? this.now().toISOString() });
  }
}
