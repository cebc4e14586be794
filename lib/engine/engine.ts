/**
 * The durable run engine's facade. All state is in the RunStore; nothing is held between calls,
 * so any number of workers (Lambda instances) can share a table. Exactly-once effects from
 * at-least-once delivery come from: a lease per step slot (conditional write), a commit
 * conditional on the leased version, step sequence numbers that make old messages stale, an effect
 * journal for side effects, and the sweeper for anything a crash left behind.
 *
 * Where to read on:
 * - transitions.ts: the state machine, pure (run + what happened -> plan);
 * - core.ts: the ports and settings the parts share, and where a plan is committed and sent;
 * - start.ts, signals.ts, steps.ts, reporting.ts, sweeping.ts: one part each, applying plans.
 */
import type { StepQueue, WorkMessage } from '../queue/port.ts';
import { EngineCore, type EngineOptions } from './core.ts';
import { NonRetryableError } from './errors.ts';
import type { ListEventsOptions, ListRunsQuery, RunStore } from './ports.ts';
import type { Reporter } from './reporter.ts';
import { Reporting } from './reporting.ts';
import { Signals } from './signals.ts';
import { type StartRunInput, type StartRunResult, startRun } from './start.ts';
import { type Delivery, type StepBudget, type StepOutcome, StepRunner } from './steps.ts';
import { Sweeper, type SweepReport } from './sweeping.ts';
import type { GateChange, Signal } from './transitions.ts';
import type { NewEvent, Run, RunEvent } from './types.ts';
import type { WorkflowRegistry } from './workflow.ts';

export type { EngineOptions, FaultPoint } from './core.ts';
export { isPermanentReportFailure, type ReportContext, type Reporter } from './reporter.ts';
export { checkSubject, newRunId, type StartRunInput, type StartRunResult, subjectOf } from './start.ts';
export type { Delivery, StepBudget, StepOutcome } from './steps.ts';

/** A message handled outside Lambda (tests, the local stack): no time limit of its own. */
const UNBOUNDED: StepBudget = { remainingMs: () => Number.POSITIVE_INFINITY };

export { RESEND_GROUP, type SweepReport } from './sweeping.ts';
export { backoffDelay, type Signal, toRunError } from './transitions.ts';

export class Engine<S = unknown> {
  readonly store: RunStore;
  readonly queue: StepQueue;
  readonly workflows: WorkflowRegistry<S>;
  readonly services: S;
  readonly owner: string;
  private readonly core: EngineCore<S>;
  private readonly signals: Signals<S>;
  private readonly steps: StepRunner<S>;
  private readonly reporting: Reporting<S>;
  private readonly sweeper: Sweeper<S>;

  constructor(opts: EngineOptions<S>) {
    this.core = new EngineCore(opts);
    this.store = this.core.store;
    this.queue = this.core.queue;
    this.workflows = this.core.workflows;
    this.services = this.core.services;
    this.owner = this.core.owner;
    this.signals = new Signals(this.core);
    this.reporting = new Reporting(this.core);
    this.steps = new StepRunner(this.core, (runId, version, step, committed) =>
      this.reporting.carried(runId, version, step, committed),
    );
    this.sweeper = new Sweeper(this.core);
  }

  addReporter(r: Reporter): void {
    this.core.reporters.push(r);
  }

  startRun(input: StartRunInput): Promise<StartRunResult> {
    return startRun(this.core, this.signals, input);
  }

  /** `known`: the run as the caller has just read it (see Signals.signal). */
  signal(runId: string, signal: Signal, opts: { known?: Run } = {}): Promise<Run> {
    return this.signals.signal(runId, signal, opts);
  }

  /** An audit-only event (a refusal, an outbound call in dry-run): no state change, never races a step. */
  recordEvent(runId: string, event: NewEvent): Promise<void> {
    return this.core.recordEvent(runId, event);
  }

  /**
   * Change what a waiting run's person gate shows (an edited plan) without leaving the gate: the run
   * data is merged and the gate binds to `binding`, so approvals of what was shown before are
   * refused. Only while the gate still shows `expected` (two editors: the second one is refused).
   */
  rebindGate(runId: string, change: GateChange): Promise<Run> {
    return this.signals.rebindGate(runId, change);
  }

  /**
   * Handle one queue message. Never throws for stale or duplicate messages. `budget`: the time
   * the invocation has left, which lets a step run the steps it schedules for now (`chainSteps`);
   * without it (or with chaining off), one step per message. `delivery`: which delivery of the
   * message this is (a redelivered step leases before its node runs, steps.ts); none: the first.
   */
  async handle(
    message: WorkMessage,
    budget: StepBudget = UNBOUNDED,
    delivery?: Delivery,
  ): Promise<StepOutcome | 'reported' | 'skipped'> {
    if (message.kind === 'route') {
      // No run exists yet: routing it needs GitHub and the config, which the worker app has.
      throw new NonRetryableError('route messages are handled by the worker app (lib/app/worker.ts)');
    }
    if (message.kind === 'report') return this.report(message.runId);
    const { workflow, node, version, due, item } = message;
    const hint =
      workflow !== undefined && node !== undefined && version !== undefined && due !== undefined
        ? { workflow, node, version, due, ...(item !== undefined ? { item } : {}) }
        : undefined;
    if (message.report === undefined)
      return this.steps.execute(message.runId, message.seq, budget, hint, delivery);
    // The step and the report it carries, side by side: the step needn't wait for GitHub and
    // Discord, and a report that fails hands itself to a message of its own. Both are awaited
    // even when the step throws: the invocation must not end with the report half done.
    // The report waits a moment for its step, so a quick step's outcome is shown once (reporting.ts).
    const step = this.steps.execute(message.runId, message.seq, budget, hint, delivery);
    const [outcome] = await Promise.allSettled([
      step,
      this.reporting.carried(message.runId, message.report, step),
    ]);
    if (outcome.status === 'rejected') throw outcome.reason;
    return outcome.value;
  }

  executeStep(runId: string, seq: number): Promise<StepOutcome> {
    return this.steps.execute(runId, seq);
  }

  /** Report the run's current state through every reporter, at most once per version. */
  report(runId: string): Promise<'reported' | 'skipped'> {
    return this.reporting.report(runId);
  }

  /** Find runs that a crash, a lost message or the clock left behind, and move them on. */
  sweep(): Promise<SweepReport> {
    return this.sweeper.sweep();
  }

  getRun(id: string): Promise<Run | null> {
    return this.store.getRun(id);
  }

  listRuns(query: ListRunsQuery): Promise<Run[]> {
    return this.store.listRuns(query);
  }

  listEvents(id: string, opts?: ListEventsOptions): Promise<RunEvent[]> {
    return this.store.listEvents(id, opts);
  }
}
