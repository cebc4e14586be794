import { randomBytes } from 'node:crypto';
import { logger } from '../common/observability.ts';
import type { Outgoing, StepQueue, WorkMessage } from '../queue/port.ts';
import { MAX_DELAY_SECONDS } from '../queue/port.ts';
import { ConcurrencyError, StoreValidationError, SubjectLockedError } from '../store/errors.ts';
import type { ConcurrencyPolicy, ListRunsQuery, RunStore } from '../store/port.ts';
import { withStepSignal } from './abort.ts';
import { type EffectFn, type EffectOptions, runEffect } from './effects.ts';
import {
  InvalidSignalError,
  InvalidSubjectError,
  isRetryable,
  NonRetryableError,
  RunConflictError,
  RunPausedError,
  StaleApprovalError,
  StepTimeoutError,
  UnknownWorkflowError,
} from './errors.ts';
import { auditPause, describePause, pausedFor } from './pause.ts';
import {
  isTerminal,
  type NewEvent,
  type PendingStep,
  type Run,
  type RunError,
  type RunEvent,
  type RunStatus,
  type Subject,
  type Trigger,
} from './types.ts';
import type {
  NodeResult,
  ResolvedNode,
  RetryPolicy,
  StepContext,
  SubjectField,
  Workflow,
  WorkflowRegistry,
} from './workflow.ts';

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

/** Runs whose history a worker keeps in memory for its reporters (most recently reported). */
const EVENT_CACHE_RUNS = 200;

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
  /** Active runs the sweeper reads per page (default 200); it reads every page. */
  sweepPageSize?: number;
  /** Called at named points of the step lifecycle (fault-injection tests crash here). */
  faults?: (point: FaultPoint, run: Run) => void | Promise<void>;
}

export type FaultPoint = 'after-lease' | 'after-effect' | 'after-commit' | 'before-enqueue';

export interface StartRunInput {
  workflow: string;
  subject: Subject | string;
  trigger: Trigger;
  input?: Record<string, unknown>;
  idempotencyKey?: string;
  concurrency?: ConcurrencyPolicy;
}

export interface StartRunResult {
  run: Run;
  outcome: 'created' | 'duplicate' | 'attached' | 'superseded';
}

/** Gates a `result` signal (with the gate's correlation) resumes: agents, green CI, a lifted hold. */
const RESUMED_BY_RESULT = new Set<string>(['agent', 'ci', 'hold']);

export type Signal =
  | {
      type: 'approve';
      by: string;
      binding?: string;
      comment?: string /** A budget gate's new USD cap. */;
      budget?: number;
    }
  | { type: 'reject'; by: string; reason?: string }
  | { type: 'cancel'; by: string; reason?: string }
  | { type: 'retry'; by: string }
  | {
      type: 'result';
      by: string;
      correlation?: string;
      payload: Record<string, unknown>;
      edge?: string;
      ok?: boolean;
    }
  /** Withdraw the approval gate and run again from `to` (the plan changed under the gate). */
  | { type: 'replan'; by: string; to: string; reason: string; data?: Record<string, unknown> }
  /** Record `event` on an active run and report it, without moving the run (a waiting run's version is bumped so reporters show it). */
  | {
      type: 'note';
      by: string;
      event: string;
      detail: Record<string, unknown>;
      data?: Record<string, unknown>;
    };

export type StepOutcome = 'committed' | 'stale' | 'busy' | 'deferred' | 'lost' | 'missing';

export interface SweepReport {
  examined: number;
  reenqueued: number;
  expired: number;
  reported: number;
  retired: number;
  stuck: number;
  /** Runs whose sweep threw (logged); the sweep went on with the rest. */
  failed: number;
  /** Never-picked-up steps not re-sent yet: their last re-send is recent (the queue is behind). */
  backedOff: number;
}

/** Active runs read per page by the sweeper. */
const SWEEP_PAGE = 200;
/** KV group of re-send counts of never-picked-up steps (`<run id>#<seq>`, one-day TTL). */
export const RESEND_GROUP = 'step-resend';

export function subjectOf(subject: Subject | string): Subject {
  if (typeof subject === 'string') {
    const m = /^([\w.-]+\/[\w.-]+)(?:#(\d+))?$/.exec(subject);
    if (m?.[1]) {
      return { repo: m[1], ...(m[2] ? { issue: Number(m[2]) } : {}), key: subject };
    }
    return { key: subject };
  }
  return subject;
}

const SUBJECT_FIELDS: Record<SubjectField, { valid: (s: Subject) => boolean; expected: string }> = {
  repo: {
    valid: (s) => typeof s.repo === 'string' && /^[\w.-]+\/[\w.-]+$/.test(s.repo),
    expected: 'owner/name',
  },
  issue: {
    valid: (s) => Number.isSafeInteger(s.issue) && (s.issue as number) > 0,
    expected: 'a positive integer',
  },
};

/** Refuse a subject without the fields `wf` declares as required (before anything is written). */
export function checkSubject(wf: Pick<Workflow<unknown>, 'name' | 'requires'>, subject: Subject): void {
  for (const field of wf.requires) {
    const rule = SUBJECT_FIELDS[field];
    if (rule.valid(subject)) continue;
    const got = subject[field];
    throw new InvalidSubjectError(
      `${wf.name} needs subject.${field} (${rule.expected}); ${
        got === undefined ? 'it is missing' : `got ${JSON.stringify(got)}`
      } in ${JSON.stringify(subject.key)}`,
      { field: `subject.${field}` },
    );
  }
}

/** Time-sortable, URL-safe run ids: base36 millis + 40 random bits. */
export function newRunId(now: Date): string {
  return `r${now.getTime().toString(36)}${randomBytes(5).toString('hex')}`;
}

const lockKeyOf = (run: Pick<Run, 'subject' | 'workflow'>) => `${run.subject.key}#${run.workflow}`;

/**
 * The durable run engine. All state is in the RunStore; this object holds none between calls, so
 * any number of workers (Lambda instances) can share a table. Exactly-once effects from
 * at-least-once delivery come from: a lease per step slot (conditional write), a commit
 * conditional on the leased version, step sequence numbers that make old messages stale, an effect
 * journal for side effects, and the sweeper for anything a crash left behind.
 */
export class Engine<S = unknown> {
  readonly store: RunStore;
  readonly queue: StepQueue;
  readonly workflows: WorkflowRegistry<S>;
  readonly services: S;
  private readonly reporters: Reporter[];
  private readonly now: () => Date;
  private readonly random: () => number;
  readonly owner: string;
  private readonly leaseGraceMs: number;
  private readonly enqueueGraceMs: number;
  private readonly reportClaimMs: number;
  private readonly faults: EngineOptions<S>['faults'];
  private readonly sweepPageSize: number;

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
    this.faults = opts.faults;
    this.sweepPageSize = opts.sweepPageSize ?? SWEEP_PAGE;
  }

  addReporter(r: Reporter): void {
    this.reporters.push(r);
  }

  private workflow(name: string): Workflow<S> {
    const wf = this.workflows.get(name);
    if (!wf) throw new UnknownWorkflowError(`unknown workflow ${name}`);
    return wf;
  }

  // ---------------------------------------------------------------------------------- start

  async startRun(input: StartRunInput): Promise<StartRunResult> {
    const wf = this.workflow(input.workflow);
    const policy = input.concurrency ?? 'attach';
    const subject = subjectOf(input.subject);
    checkSubject(wf, subject);
    // The kill switch: refuse (and record why) before anything is written.
    const paused = await pausedFor(this.store, subject.repo);
    if (paused) {
      const reason = describePause(paused);
      await auditPause(this.store, 'run.refused', {
        reason,
        workflow: wf.name,
        subject,
        trigger: input.trigger,
      });
      throw new RunPausedError(`no new runs: ${reason}`);
    }
    let superseded = false;
    for (let attempt = 0; attempt < 5; attempt++) {
      const now = this.now();
      const at = now.toISOString();
      const run: Run = {
        id: newRunId(now),
        workflow: wf.name,
        status: 'queued',
        node: wf.start,
        subject,
        trigger: input.trigger,
        createdAt: at,
        updatedAt: at,
        version: 1,
        data: { ...input.input },
        step: { node: wf.start, seq: 1, attempt: 1, notBefore: at },
        eventSeq: 0,
      };
      const events: NewEvent[] = [
        {
          type: 'run.created',
          node: wf.start,
          by: input.trigger.actor ?? input.trigger.source,
          detail: {
            workflow: wf.name,
            workflowVersion: wf.version,
            subject,
            trigger: input.trigger,
            ...(input.idempotencyKey ? { idempotencyKey: input.idempotencyKey } : {}),
            concurrency: policy,
          },
        },
      ];
      const res = await this.store.createRun({
        run,
        events,
        ...(input.idempotencyKey !== undefined ? { idempotencyKey: input.idempotencyKey } : {}),
        lockKey: lockKeyOf(run),
      });
      if (res.outcome === 'created') {
        await this.enqueue(res.run, [this.stepMessage(res.run)]);
        return { run: res.run, outcome: superseded ? 'superseded' : 'created' };
      }
      if (res.outcome === 'duplicate') return { run: res.run, outcome: 'duplicate' };

      // The subject has an active run of this workflow.
      const active = await this.store.getRun(res.activeRunId);
      if (policy === 'reject') {
        throw new RunConflictError(`${subject.key} already has an active ${wf.name} run ${res.activeRunId}`, {
          activeRunId: res.activeRunId,
        });
      }
      if (policy === 'attach') {
        if (!active) continue; // the lock was just released; try again
        const target = input.idempotencyKey
          ? await this.store.rememberKey(input.idempotencyKey, active.id)
          : active.id;
        const attached = target === active.id ? active : await this.store.getRun(target);
        return { run: attached ?? active, outcome: target === active.id ? 'attached' : 'duplicate' };
      }
      // supersede: cancel the active run, then create ours. Not on the last try: cancelling
      // without creating after it would leave the subject with no run at all.
      if (attempt === 4) break;
      if (active && !isTerminal(active.status)) {
        try {
          await this.signal(active.id, {
            type: 'cancel',
            by: input.trigger.actor ?? 'system',
            reason: 'superseded by a newer start',
          });
        } catch (err) {
          if (!(err instanceof InvalidSignalError)) throw err;
        }
      }
      superseded = true;
    }
    throw new RunConflictError(`could not start ${wf.name} on ${subject.key}: lock contention`, {
      activeRunId: '',
    });
  }

  // -------------------------------------------------------------------------------- signals

  async signal(runId: string, signal: Signal): Promise<Run> {
    for (let attempt = 0; ; attempt++) {
      const run = await this.store.getRun(runId);
      if (!run) throw new InvalidSignalError(`run ${runId} not found`, { runId });
      try {
        return await this.applySignal(run, signal);
      } catch (err) {
        // The run moved between our read and our write (a step committed): re-read and re-decide.
        if (err instanceof ConcurrencyError && attempt < 10) continue;
        throw err;
      }
    }
  }

  private async applySignal(run: Run, signal: Signal): Promise<Run> {
    const at = this.now().toISOString();
    const wf = this.workflows.get(run.workflow);
    const sigEvent: NewEvent = {
      type: `signal.${signal.type}`,
      ...(run.node ? { node: run.node } : {}),
      by: signal.by,
      detail: signalDetail(signal),
    };

    switch (signal.type) {
      case 'cancel': {
        if (isTerminal(run.status)) {
          throw new InvalidSignalError(`run ${run.id} is already ${run.status}`, { runId: run.id });
        }
        const reason = `cancelled by ${signal.by}${signal.reason ? `: ${signal.reason}` : ''}`;
        return this.finish(run, 'cancelled', reason, [sigEvent], at);
      }
      case 'retry': {
        if (run.status !== 'failed' && run.status !== 'expired') {
          throw new InvalidSignalError(
            `run ${run.id} is ${run.status}; only failed or expired runs can be retried`,
            {
              runId: run.id,
            },
          );
        }
        if (!wf) throw new UnknownWorkflowError(`unknown workflow ${run.workflow}`);
        const node = run.node && wf.nodes.has(run.node) ? run.node : wf.start;
        const next: Run = {
          ...withoutFinish(run),
          status: 'running',
          node,
          version: run.version + 1,
          updatedAt: at,
          step: { node, seq: (run.step?.seq ?? run.version) + 1, attempt: 1, notBefore: at },
        };
        try {
          const saved = await this.store.commit({
            run: next,
            expectedVersion: run.version,
            events: [sigEvent, { type: 'step.scheduled', node, detail: { attempt: 1, reason: 'retry' } }],
            acquireLock: lockKeyOf(run),
          });
          await this.enqueue(saved, [this.stepMessage(saved)]);
          return saved;
        } catch (err) {
          if (err instanceof SubjectLockedError) {
            throw new InvalidSignalError(
              `cannot retry run ${run.id}: ${run.subject.key} has another active run ${err.activeRunId}`,
              { runId: run.id, cause: err },
            );
          }
          throw err;
        }
      }
      case 'approve':
      case 'reject': {
        const gate = run.gate;
        if (
          run.status !== 'waiting' ||
          !gate ||
          (gate.kind !== 'approval' && gate.kind !== 'escalation' && gate.kind !== 'budget')
        ) {
          throw new InvalidSignalError(
            `run ${run.id} is not waiting for an approval (status ${run.status})`,
            {
              runId: run.id,
            },
          );
        }
        if (!wf) throw new UnknownWorkflowError(`unknown workflow ${run.workflow}`);
        if (Date.parse(gate.expiresAt) < Date.parse(at)) {
          // The sweeper has not reached it yet, but the decision came too late all the same.
          throw new InvalidSignalError(
            `the ${gate.node} gate of run ${run.id} expired at ${gate.expiresAt}`,
            {
              runId: run.id,
              node: gate.node,
            },
          );
        }
        if (signal.type === 'approve') {
          if (signal.binding !== undefined && gate.binding !== undefined && signal.binding !== gate.binding) {
            // Bound to what was approved: the plan changed since the approver saw it.
            await this.recordEvent(run.id, {
              type: 'signal.approve.refused',
              node: gate.node,
              by: signal.by,
              detail: { reason: 'stale', approved: signal.binding, current: gate.binding },
            });
            throw new StaleApprovalError(
              `approval for ${signal.binding} is stale: the gate now shows ${gate.binding}`,
              { runId: run.id, node: gate.node },
            );
          }
          const approval = {
            by: signal.by,
            at,
            binding: gate.binding ?? null,
            bound: signal.binding !== undefined,
            ...(signal.budget !== undefined ? { budget: signal.budget } : {}),
          };
          return this.advance(run, wf, gate.node, { output: { approval }, edge: 'approved' }, [sigEvent], at);
        }
        const reason = `rejected by ${signal.by}${signal.reason ? `: ${signal.reason}` : ''}`;
        if (wf.hasEdge(gate.node, 'rejected')) {
          return this.advance(
            run,
            wf,
            gate.node,
            { output: { rejection: { by: signal.by, reason } }, edge: 'rejected' },
            [sigEvent],
            at,
          );
        }
        return this.finish(run, 'failed', reason, [sigEvent], at);
      }
      case 'result': {
        const gate = run.gate;
        if (run.status !== 'waiting' || !gate || !RESUMED_BY_RESULT.has(gate.kind)) {
          throw new InvalidSignalError(`run ${run.id} is not waiting for an agent result`, { runId: run.id });
        }
        if (gate.correlation !== undefined && signal.correlation !== gate.correlation) {
          throw new InvalidSignalError(
            `result for ${signal.correlation} does not match ${gate.correlation}`,
            {
              runId: run.id,
            },
          );
        }
        if (!wf) throw new UnknownWorkflowError(`unknown workflow ${run.workflow}`);
        const ok = signal.ok !== false;
        const edge = signal.edge ?? (ok ? undefined : 'failed');
        if (!ok && !(edge && wf.hasEdge(gate.node, edge))) {
          const reason = `${gate.node} reported failure${typeof signal.payload.summary === 'string' ? `: ${signal.payload.summary}` : ''}`;
          return this.finish(run, 'failed', reason, [sigEvent], at, {
            name: 'AgentFailed',
            message: reason,
            node: gate.node,
          });
        }
        return this.advance(
          run,
          wf,
          gate.node,
          { output: { [`${gate.node}Result`]: signal.payload }, ...(edge !== undefined ? { edge } : {}) },
          [sigEvent],
          at,
        );
      }
      case 'replan': {
        const gate = run.gate;
        if (run.status !== 'waiting' || gate?.kind !== 'approval') {
          throw new InvalidSignalError(
            `run ${run.id} is not waiting for an approval (status ${run.status})`,
            {
              runId: run.id,
            },
          );
        }
        if (!wf) throw new UnknownWorkflowError(`unknown workflow ${run.workflow}`);
        if (!wf.nodes.has(signal.to))
          throw new InvalidSignalError(`workflow ${run.workflow} has no node ${signal.to}`, {
            runId: run.id,
          });
        const next: Run = {
          ...run,
          data: { ...run.data, ...signal.data },
          status: 'running',
          node: signal.to,
          updatedAt: at,
          version: run.version + 1,
          step: { node: signal.to, seq: (run.step?.seq ?? run.version) + 1, attempt: 1, notBefore: at },
        };
        delete next.gate;
        delete next.lease;
        const saved = await this.store.commit({
          run: next,
          expectedVersion: run.version,
          events: [
            sigEvent,
            {
              type: 'gate.withdrawn',
              node: gate.node,
              detail: { binding: gate.binding ?? null, reason: signal.reason },
            },
            { type: 'step.scheduled', node: signal.to, detail: { attempt: 1, reason: 'replan' } },
          ],
        });
        await this.enqueue(saved, [this.stepMessage(saved)]);
        return saved;
      }
      case 'note': {
        const event: NewEvent = {
          type: signal.event,
          ...(run.node ? { node: run.node } : {}),
          by: signal.by,
          detail: signal.detail,
        };
        if (isTerminal(run.status))
          throw new InvalidSignalError(`run ${run.id} is already ${run.status}`, { runId: run.id });
        // A running step holds a lease on this version: append only; its commit reports the note.
        if (run.status !== 'waiting') {
          await this.recordEvent(run.id, event);
          return run;
        }
        const saved = await this.store.commit({
          run: { ...run, data: { ...run.data, ...signal.data }, updatedAt: at, version: run.version + 1 },
          expectedVersion: run.version,
          events: [event],
        });
        // Reported even by an ingress engine without reporters: the note is there to be seen.
        await this.sendCommitted(saved, [
          { message: { kind: 'report', runId: saved.id, version: saved.version } },
        ]);
        return saved;
      }
    }
  }

  /** An audit-only event (a refusal, an outbound call in dry-run): no state change, never races a step. */
  async recordEvent(runId: string, event: NewEvent): Promise<void> {
    await this.store.appendEvent(runId, { ...event, at: event.at ?? this.now().toISOString() });
  }

  /**
   * Change what a waiting run's person gate shows (an edited plan) without leaving the gate: the run
   * data is merged and the gate binds to `binding`, so approvals of what was shown before are
   * refused. Only while the gate still shows `expected` (two editors: the second one is refused).
   */
  async rebindGate(
    runId: string,
    change: {
      expected: string;
      binding: string;
      data: Record<string, unknown>;
      prompt?: string;
      event: NewEvent;
    },
  ): Promise<Run> {
    for (let attempt = 0; ; attempt++) {
      const run = await this.store.getRun(runId);
      const gate = run?.gate;
      if (run?.status !== 'waiting' || !gate || RESUMED_BY_RESULT.has(gate.kind)) {
        throw new InvalidSignalError(`run ${runId} is not waiting at a gate for a person`, { runId });
      }
      if (gate.binding !== change.expected) {
        throw new StaleApprovalError(`the gate of run ${runId} now shows ${gate.binding ?? 'nothing'}`, {
          runId,
          node: gate.node,
        });
      }
      const at = this.now().toISOString();
      const next: Run = {
        ...run,
        data: { ...run.data, ...change.data },
        gate: { ...gate, binding: change.binding, ...(change.prompt ? { prompt: change.prompt } : {}) },
        updatedAt: at,
        version: run.version + 1,
      };
      try {
        const saved = await this.store.commit({
          run: next,
          expectedVersion: run.version,
          events: [{ ...change.event, node: gate.node, at }],
        });
        await this.enqueue(saved, []);
        return saved;
      } catch (err) {
        if (err instanceof ConcurrencyError && attempt < 10) continue;
        throw err;
      }
    }
  }

  /** Complete `node` with `result` and move to the next node (or finish). */
  private async advance(
    run: Run,
    wf: Workflow<S>,
    node: string,
    result: { output?: Record<string, unknown>; edge?: string },
    events: NewEvent[],
    at: string,
  ): Promise<Run> {
    const data = { ...run.data, ...result.output };
    const nextNode = wf.next(node, result.edge, data);
    const base: Run = { ...run, data, updatedAt: at, version: run.version + 1 };
    delete base.gate;
    delete base.lease;
    const all: NewEvent[] = [
      ...events,
      { type: 'node.completed', node, detail: { edge: result.edge ?? null } },
    ];
    if (nextNode === null)
      return this.finish(base, 'succeeded', `completed at ${node}`, all, at, undefined, true);
    const seq = (run.step?.seq ?? run.version) + 1;
    const next: Run = {
      ...base,
      status: 'running',
      node: nextNode,
      step: { node: nextNode, seq, attempt: 1, notBefore: at },
    };
    const saved = await this.store.commit({
      run: next,
      expectedVersion: run.version,
      events: [...all, { type: 'step.scheduled', node: nextNode, detail: { attempt: 1 } }],
    });
    await this.enqueue(saved, [this.stepMessage(saved)]);
    return saved;
  }

  /** Move a run to a terminal state, releasing its subject lock, and report it. */
  private async finish(
    run: Run,
    status: RunStatus,
    reason: string,
    events: NewEvent[],
    at: string,
    error?: Run['error'],
    alreadyBumped = false,
  ): Promise<Run> {
    const expectedVersion = alreadyBumped ? run.version - 1 : run.version;
    const next: Run = {
      ...run,
      status,
      reason,
      finishedAt: at,
      updatedAt: at,
      version: expectedVersion + 1,
      ...(error ? { error } : {}),
    };
    delete next.step;
    delete next.lease;
    delete next.gate;
    const saved = await this.store.commit({
      run: next,
      expectedVersion,
      events: [
        ...events,
        {
          type: `run.${status}`,
          ...(run.node ? { node: run.node } : {}),
          detail: { reason, ...(error ? { error } : {}) },
        },
      ],
      releaseLock: lockKeyOf(run),
    });
    await this.enqueue(saved, []);
    return saved;
  }

  // ----------------------------------------------------------------------------- the worker

  /** Handle one queue message. Never throws for stale or duplicate messages. */
  async handle(message: WorkMessage): Promise<StepOutcome | 'reported' | 'skipped'> {
    if (message.kind === 'route') {
      // No run exists yet: routing it needs GitHub and the config, which the worker app has.
      throw new NonRetryableError('route messages are handled by the worker app (lib/app/worker.ts)');
    }
    if (message.kind === 'report') return this.report(message.runId);
    return this.executeStep(message.runId, message.seq);
  }

  async executeStep(runId: string, seq: number): Promise<StepOutcome> {
    const run = await this.store.getRun(runId);
    if (!run) return 'missing';
    const step = run.step;
    if (isTerminal(run.status) || run.status === 'waiting' || !step || step.seq !== seq) return 'stale';
    const now = this.now();
    const wf = this.workflow(run.workflow);
    const node = wf.node(step.node);

    const dueIn = Date.parse(step.notBefore) - now.getTime();
    if (dueIn > 1_000) {
      // Arrived early (SQS caps delays at 15 min): put it back for the rest of the wait.
      await this.queue.send([
        {
          message: { kind: 'step', runId, seq },
          delaySeconds: Math.min(MAX_DELAY_SECONDS, Math.ceil(dueIn / 1000)),
        },
      ]);
      return 'deferred';
    }
    if (run.lease && run.lease.seq === seq && Date.parse(run.lease.until) > now.getTime()) return 'busy';

    // 1. Lease. Taking over an expired lease means the previous attempt crashed: count it.
    const takeover = run.lease?.seq === seq;
    const attempt = takeover ? step.attempt + 1 : step.attempt;
    const at = now.toISOString();
    if (takeover && attempt > node.retry.maxAttempts) {
      try {
        const commitError = run.lease?.error;
        await this.finish(
          run,
          'failed',
          commitError
            ? `${node.name} could not commit after ${step.attempt} attempts: ${commitError}`
            : `${node.name} did not finish after ${step.attempt} attempts (the worker stopped each time)`,
          [
            {
              type: 'step.failed',
              node: node.name,
              detail: { attempt: step.attempt, error: 'lease expired' },
            },
          ],
          at,
          { name: 'LeaseExpired', message: 'worker stopped mid-step', node: node.name, retryable: false },
        );
        return 'committed';
      } catch (err) {
        if (err instanceof ConcurrencyError) return 'lost';
        throw err;
      }
    }
    const leased: Run = {
      ...run,
      status: 'running',
      version: run.version + 1,
      updatedAt: at,
      step: { ...step, attempt },
      lease: {
        owner: this.owner,
        seq,
        until: new Date(now.getTime() + node.timeoutMs + this.leaseGraceMs).toISOString(),
      },
    };
    try {
      await this.store.update(leased, run.version);
    } catch (err) {
      if (err instanceof ConcurrencyError) return 'lost';
      throw err;
    }
    await this.faults?.('after-lease', leased);

    // 2. Run the node.
    const started = Date.now();
    let result: NodeResult | undefined;
    let failure: unknown;
    if (node.gateDisabled && !node.gateRequired?.(leased.data)) {
      result = {
        edge: 'approved',
        output: {},
        events: [{ type: 'gate.skipped', node: node.name, detail: { reason: 'disabled by config' } }],
      };
    } else {
      try {
        result = await this.runHandler(leased, node, attempt, now);
      } catch (err) {
        failure = err;
      }
    }
    await this.faults?.('after-effect', leased);
    const durationMs = Date.now() - started;

    // 3. Commit the outcome, conditional on our lease's version.
    let saved: Run;
    try {
      saved = await this.commitOutcome(leased, wf, node, attempt, result, failure, durationMs);
    } catch (err) {
      if (err instanceof ConcurrencyError) return 'lost'; // cancelled meanwhile, or another worker won
      // Too large or otherwise invalid: no retry can commit it, so the step fails with the reason.
      if (err instanceof StoreValidationError) return this.failUncommittable(leased, node, attempt, err);
      // Throttled or unavailable: give the lease back early rather than hold it until it lapses.
      return this.releaseLease(leased, node, attempt, err);
    }
    await this.faults?.('after-commit', saved);
    return 'committed';
  }

  /**
   * A step whose outcome DynamoDB refused as invalid (over the size budget, nested too deeply):
   * fail the run with that reason, from the leased state (the outcome is what could not be stored).
   */
  private async failUncommittable(
    leased: Run,
    node: ResolvedNode<S>,
    attempt: number,
    err: StoreValidationError,
  ): Promise<StepOutcome> {
    const at = this.now().toISOString();
    const error: RunError = {
      name: err.name,
      message: err.message.slice(0, 1000),
      node: node.name,
      retryable: false,
    };
    const reason = `${node.name} failed: ${error.message}`;
    const failed: Run = {
      ...leased,
      version: leased.version + 1,
      updatedAt: at,
      status: 'failed',
      reason,
      error,
      finishedAt: at,
    };
    delete failed.step;
    delete failed.lease;
    const events: NewEvent[] = [
      { type: 'step.failed', node: node.name, detail: { attempt, error } },
      { type: 'run.failed', node: node.name, detail: { reason, error } },
    ];
    const commit = (run: Run) =>
      this.store.commit({ run, expectedVersion: leased.version, events, releaseLock: lockKeyOf(leased) });
    let saved: Run;
    try {
      saved = await commit(failed);
    } catch (again) {
      if (again instanceof ConcurrencyError) return 'lost';
      if (!(again instanceof StoreValidationError)) throw again;
      // The state the step started from is itself over budget: end the run without its data.
      saved = await commit({ ...failed, data: { droppedData: 'over the size budget' } });
    }
    await this.enqueueAfterCommit(saved, []);
    return 'committed';
  }

  /**
   * The commit failed for a reason that may pass (a throttle past its retries, the store
   * unreachable). Shorten the lease to a backoff delay and send the step again after it: the next
   * try takes the lapsed lease over and counts an attempt, so a commit that keeps failing ends
   * the run once attempts are exhausted. If even this write fails, the lease lapses on its own.
   */
  private async releaseLease(
    leased: Run,
    node: ResolvedNode<S>,
    attempt: number,
    err: unknown,
  ): Promise<StepOutcome> {
    const now = this.now();
    const delayMs = backoffDelay(node.retry, attempt, this.random);
    const until = new Date(now.getTime() + delayMs).toISOString();
    const released: Run = {
      ...leased,
      version: leased.version + 1,
      updatedAt: now.toISOString(),
      step: { ...leased.step!, notBefore: until },
      lease: { ...leased.lease!, until, error: toRunError(err, node.name).message.slice(0, 300) },
    };
    try {
      await this.store.update(released, leased.version);
    } catch {
      throw err; // it committed after all (a crash after the commit), or the store is still down
    }
    logger.warn('step commit failed; lease released for a retry', {
      runId: leased.id,
      node: node.name,
      attempt,
      delayMs,
      error: (err as Error).message,
    });
    try {
      await this.queue.send([
        {
          message: { kind: 'step', runId: leased.id, seq: leased.step!.seq },
          delaySeconds: Math.min(MAX_DELAY_SECONDS, Math.ceil(delayMs / 1000)),
        },
      ]);
    } catch {
      // The sweeper re-sends a step whose lease lapsed.
    }
    return 'deferred';
  }

  private async runHandler(run: Run, node: ResolvedNode<S>, attempt: number, now: Date): Promise<NodeResult> {
    const controller = new AbortController();
    const stepKey = `${run.id}:${run.step!.seq}`;
    const emitted: NewEvent[] = [];
    const ctx: StepContext<S> = {
      emit: (event) => {
        emitted.push({ ...event, at: event.at ?? this.now().toISOString() });
      },
      run,
      node: node.name,
      attempt,
      stepKey,
      now,
      signal: controller.signal,
      services: this.services,
      // One effect primitive, fenced by this step's lease (lib/engine/effects.ts).
      effect: <T>(name: string, fn: EffectFn<T>, opts?: EffectOptions): Promise<T> =>
        runEffect(
          this.store,
          { run, node: node.name, owner: this.owner, signal: controller.signal, now: this.now },
          name,
          fn,
          opts,
        ),
    };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // Reject before aborting: a handler that returns as soon as it is aborted must not win the race.
        reject(
          new StepTimeoutError(`${node.name} timed out after ${node.timeoutMs} ms`, {
            runId: run.id,
            node: node.name,
          }),
        );
        controller.abort();
      }, node.timeoutMs);
    });
    try {
      // Every outbound call the handler makes reads the step's signal (lib/engine/abort.ts).
      const result = await Promise.race([
        withStepSignal(controller.signal, () => node.handler(ctx)),
        timeout,
      ]);
      return emitted.length > 0 ? { ...result, events: [...emitted, ...(result.events ?? [])] } : result;
    } catch (err) {
      if (emitted.length > 0 && err instanceof Error)
        (err as Error & { events?: NewEvent[] }).events = emitted;
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private async commitOutcome(
    leased: Run,
    wf: Workflow<S>,
    node: ResolvedNode<S>,
    attempt: number,
    result: NodeResult | undefined,
    failure: unknown,
    durationMs: number,
  ): Promise<Run> {
    const at = this.now().toISOString();
    const seq = leased.step!.seq;
    const base: Run = { ...leased, updatedAt: at, version: leased.version + 1 };
    delete base.lease;

    if (result) {
      const data = { ...leased.data, ...result.output };
      const events: NewEvent[] = [
        ...(result.events ?? []),
        { type: 'step.succeeded', node: node.name, detail: { attempt, durationMs } },
      ];
      if ('wait' in result) {
        const { expiresInMs, ...gate } = result.wait;
        const waiting: Run = {
          ...base,
          data,
          status: 'waiting',
          gate: { ...gate, node: node.name, expiresAt: new Date(Date.parse(at) + expiresInMs).toISOString() },
        };
        delete waiting.step;
        const saved = await this.store.commit({
          run: waiting,
          expectedVersion: leased.version,
          events: [...events, { type: 'gate.opened', node: node.name, detail: { ...waiting.gate } }],
        });
        await this.enqueueAfterCommit(saved, []);
        return saved;
      }
      const nextNode = wf.next(node.name, result.edge, data);
      if (nextNode === null) {
        const done: Run = {
          ...base,
          data,
          status: 'succeeded',
          reason: `completed at ${node.name}`,
          finishedAt: at,
        };
        delete done.step;
        const saved = await this.store.commit({
          run: done,
          expectedVersion: leased.version,
          events: [...events, { type: 'run.succeeded', node: node.name, detail: { reason: done.reason } }],
          releaseLock: lockKeyOf(leased),
        });
        await this.enqueueAfterCommit(saved, []);
        return saved;
      }
      const next: Run = {
        ...base,
        data,
        status: 'running',
        node: nextNode,
        step: { node: nextNode, seq: seq + 1, attempt: 1, notBefore: at },
      };
      const saved = await this.store.commit({
        run: next,
        expectedVersion: leased.version,
        events: [...events, { type: 'step.scheduled', node: nextNode, detail: { attempt: 1 } }],
      });
      await this.enqueueAfterCommit(saved, [this.stepMessage(saved)]);
      return saved;
    }

    const error = toRunError(failure, node.name);
    const emitted = (failure as { events?: NewEvent[] } | undefined)?.events ?? [];
    if (
      error.retryable &&
      attempt < node.retry.maxAttempts &&
      !node.retry.nonRetryable.includes(error.name)
    ) {
      const delayMs = backoffDelay(node.retry, attempt, this.random);
      const next: Run = {
        ...base,
        status: 'running',
        step: {
          node: node.name,
          seq: seq + 1,
          // The same step again: its effects are found under its first attempt's seq.
          firstSeq: leased.step!.firstSeq ?? seq,
          attempt: attempt + 1,
          notBefore: new Date(Date.parse(at) + delayMs).toISOString(),
        },
      };
      const saved = await this.store.commit({
        run: next,
        expectedVersion: leased.version,
        events: [...emitted, { type: 'step.retry', node: node.name, detail: { attempt, error, delayMs } }],
      });
      await this.enqueueAfterCommit(saved, [
        { ...this.stepMessage(saved), delaySeconds: Math.ceil(delayMs / 1000) },
      ]);
      return saved;
    }
    const reason =
      error.retryable && attempt >= node.retry.maxAttempts
        ? `${node.name} failed after ${attempt} attempts: ${error.message}`
        : `${node.name} failed: ${error.message}`;
    const failed: Run = { ...base, status: 'failed', reason, error, finishedAt: at };
    delete failed.step;
    const saved = await this.store.commit({
      run: failed,
      expectedVersion: leased.version,
      events: [
        ...emitted,
        { type: 'step.failed', node: node.name, detail: { attempt, error, durationMs } },
        { type: 'run.failed', node: node.name, detail: { reason, error } },
      ],
      releaseLock: lockKeyOf(leased),
    });
    await this.enqueueAfterCommit(saved, []);
    return saved;
  }

  private async enqueueAfterCommit(run: Run, steps: Outgoing[]): Promise<void> {
    await this.faults?.('before-enqueue', run);
    await this.enqueue(run, steps);
  }

  private stepMessage(run: Run): Outgoing {
    const step = run.step!;
    const delayMs = Date.parse(step.notBefore) - this.now().getTime();
    return {
      message: { kind: 'step', runId: run.id, seq: step.seq },
      ...(delayMs > 1000 ? { delaySeconds: Math.min(MAX_DELAY_SECONDS, Math.ceil(delayMs / 1000)) } : {}),
    };
  }

  /** Send the next step (if any) and a report of the new state, in one batch. */
  private async enqueue(run: Run, steps: Outgoing[]): Promise<void> {
    const batch = [...steps];
    // Without reporters only the final report matters: it retires the run from the active index.
    if (this.reporters.length > 0 || isTerminal(run.status)) {
      batch.push({ message: { kind: 'report', runId: run.id, version: run.version } });
    }
    if (batch.length > 0) await this.sendCommitted(run, batch);
  }

  /**
   * Send the messages that follow a commit. The commit is the truth and already happened: a send
   * that fails (SQS refusing a batch) must not fail the caller as if nothing had been done. A
   * webhook answered 5xx for a run it did start, or a step failed (and an attempt spent) because
   * waking another run could not send that run's message, were both wrong. The sweeper re-sends
   * what a lost message left behind: a never-picked-up step after the enqueue grace, an
   * unreported version after the report claim time.
   */
  private async sendCommitted(run: Run, batch: Outgoing[]): Promise<void> {
    try {
      await this.queue.send(batch);
    } catch (err) {
      logger.warn('queue send after a commit failed; the sweeper re-sends it', {
        runId: run.id,
        version: run.version,
        messages: batch.map((b) => b.message.kind),
        error: (err as Error).message,
      });
    }
  }

  // ------------------------------------------------------------------------------ reporting

  /**
   * Report the run's current state through every reporter, at most once per version: a claim
   * (conditional write) keeps two workers from reporting at once; a crash leaves the claim to
   * lapse and the sweeper sends the report again.
   */
  async report(runId: string): Promise<'reported' | 'skipped'> {
    const run = await this.store.getRun(runId);
    if (!run) return 'skipped';
    const state = await this.store.getReportState(runId);
    if (state.reported >= run.version) {
      if (isTerminal(run.status)) await this.store.retire(run);
      return 'skipped';
    }
    const now = this.now();
    const claimed = await this.store.claimReport(
      runId,
      run.version,
      this.owner,
      new Date(now.getTime() + this.reportClaimMs).toISOString(),
      now.toISOString(),
    );
    if (!claimed) return 'skipped';
    if (this.reporters.length > 0) {
      const events = await this.eventsFor(runId);
      const wf = this.workflows.get(run.workflow) as Workflow<unknown> | undefined;
      const current = async () => {
        const s = await this.store.getReportState(runId);
        return (
          s.claimOwner === this.owner &&
          s.reported < run.version &&
          s.claimUntil !== undefined &&
          Date.parse(s.claimUntil) > this.now().getTime()
        );
      };
      const failed = new Set(state.failedReporters ?? []);
      const failures: unknown[] = [];
      for (const r of this.reporters) {
        if (failed.has(r.name)) continue;
        try {
          await r.report(run, { events, workflow: wf, store: this.store, current });
        } catch (err) {
          if (!isPermanentReportFailure(err)) {
            failures.push(err);
            continue;
          }
          // Retrying cannot fix it: record why, stop calling this reporter for the run, go on.
          await this.store.markReporterFailed(runId, r.name);
          await this.recordEvent(runId, {
            type: 'report.failed',
            ...(run.node ? { node: run.node } : {}),
            by: r.name,
            detail: {
              reporter: r.name,
              version: run.version,
              status: (err as { status?: number }).status ?? null,
              error: (err as Error).message?.slice(0, 500) ?? String(err),
            },
          });
        }
      }
      // A failed report is retried by redelivery: leave the claim to lapse rather than marking it done.
      if (failures.length > 0) throw failures[0];
    }
    const completed = await this.store.completeReport(runId, run.version, this.owner);
    if (!completed) {
      // Our claim lapsed while we reported (a stall): a newer state may have been shown before
      // ours and overwritten by it. Mark it unreported and report the latest state again.
      await this.store.reopenReport(runId, run.version);
      const latest = await this.store.getRun(runId);
      if (latest) await this.queue.send([{ message: { kind: 'report', runId, version: latest.version } }]);
      return 'reported';
    }
    if (isTerminal(run.status)) {
      // Only retire if nothing moved on meanwhile (retire is conditional on the version).
      await this.store.retire(run);
      this.eventCache.delete(runId);
    }
    // A newer version's report was refused while we held the claim (e.g. the run parked at a gate):
    // nobody else will send it, so report the latest state now.
    const latest = await this.store.getRun(runId);
    if (latest && latest.version > run.version) await this.report(runId);
    return 'reported';
  }

  private readonly eventCache = new Map<string, RunEvent[]>();
  private readonly eventReads = new Map<string, Promise<RunEvent[]>>();

  /**
   * The run's history: what this worker read before, plus the events after it (not all again).
   * One read at a time per run: two reports of one run at once (a burst of versions) would both
   * miss the cache and both read the whole history; chained, the second reads only what the
   * first did not.
   */
  private eventsFor(runId: string): Promise<RunEvent[]> {
    const before = this.eventReads.get(runId);
    const read = (before ? before.catch(() => undefined) : Promise.resolve()).then(() =>
      this.readEvents(runId),
    );
    this.eventReads.set(runId, read);
    const done = () => {
      if (this.eventReads.get(runId) === read) this.eventReads.delete(runId);
    };
    read.then(done, done);
    return read;
  }

  private async readEvents(runId: string): Promise<RunEvent[]> {
    const known = this.eventCache.get(runId);
    const last = known?.[known.length - 1]?.seq;
    const fresh = await this.store.listEvents(runId, last !== undefined ? { after: last } : {});
    const events = known ? [...known, ...fresh] : fresh;
    this.eventCache.delete(runId); // re-insert: the map's order is least recently reported first
    this.eventCache.set(runId, events);
    if (this.eventCache.size > EVENT_CACHE_RUNS) {
      const oldest = this.eventCache.keys().next().value;
      if (oldest !== undefined) this.eventCache.delete(oldest);
    }
    return events;
  }

  // -------------------------------------------------------------------------------- sweeper

  /** Find runs that a crash, a lost message or the clock left behind, and move them on. */
  async sweep(): Promise<SweepReport> {
    const report: SweepReport = {
      examined: 0,
      reenqueued: 0,
      expired: 0,
      reported: 0,
      retired: 0,
      stuck: 0,
      failed: 0,
      backedOff: 0,
    };
    const now = this.now();
    const nowMs = now.getTime();
    // Every page of the active index, so new runs are never starved behind old ones.
    let cursor: string | undefined;
    do {
      const page = await this.store.listActivePage({
        limit: this.sweepPageSize,
        ...(cursor !== undefined ? { cursor } : {}),
      });
      for (const run of page.runs) {
        report.examined++;
        try {
          await this.sweepOne(run, nowMs, report);
        } catch (err) {
          if (err instanceof ConcurrencyError || err instanceof InvalidSignalError) continue;
          // One run that cannot be swept (a throttle, a bad item) does not end the sweep for the rest.
          report.failed++;
          logger.error('sweep of a run failed', { runId: run.id, error: (err as Error).message });
        }
      }
      cursor = page.cursor;
    } while (cursor !== undefined);
    return report;
  }

  /**
   * A step that was never picked up is sent again after the enqueue grace, then after twice as
   * long each time (up to 15 minutes): while the queue is behind, re-sends do not pile on.
   */
  private async resendDue(run: Run, step: PendingStep, nowMs: number): Promise<boolean> {
    const key = `${run.id}#${step.seq}`;
    const prior = await this.store.kvGet<{ count: number; at: string }>(RESEND_GROUP, key);
    const count = prior?.value.count ?? 0;
    if (prior) {
      const waitMs = Math.min(MAX_DELAY_SECONDS * 1000, this.enqueueGraceMs * 2 ** count);
      if (Date.parse(prior.value.at) + waitMs > nowMs) return false;
    }
    const saved = await this.store.kvPut(
      RESEND_GROUP,
      key,
      { count: count + 1, at: new Date(nowMs).toISOString() },
      { expectedVersion: prior?.version ?? 0, ttl: Math.floor(nowMs / 1000) + 86_400 },
    );
    return saved; // another sweeper re-sent it just now
  }

  private async sweepOne(run: Run, nowMs: number, report: SweepReport): Promise<void> {
    const at = new Date(nowMs).toISOString();
    if (isTerminal(run.status)) {
      const state = await this.store.getReportState(run.id);
      if (state.reported >= run.version) {
        await this.store.retire(run);
        report.retired++;
      } else if (!state.claimUntil || Date.parse(state.claimUntil) < nowMs) {
        await this.queue.send([{ message: { kind: 'report', runId: run.id, version: run.version } }]);
        report.reported++;
      }
      return;
    }
    // A report of a live run that never landed (its message lost, its reporter crashed after the
    // claim lapsed): send it again, so a parked run's "waiting for approval" is never missed.
    if (Date.parse(run.updatedAt) + this.reportClaimMs < nowMs) {
      const state = await this.store.getReportState(run.id);
      if (state.reported < run.version && (!state.claimUntil || Date.parse(state.claimUntil) < nowMs)) {
        await this.queue.send([{ message: { kind: 'report', runId: run.id, version: run.version } }]);
        report.reported++;
      }
    }
    const wf = this.workflows.get(run.workflow);
    // A run past its overall deadline ends, with a report, whatever it was doing.
    if (wf?.deadlineMs !== undefined && Date.parse(run.createdAt) + wf.deadlineMs < nowMs) {
      report.stuck++;
      report.expired++;
      await this.finish(
        run,
        'expired',
        `deadline of ${wf.deadlineMs} ms passed at ${run.node ?? 'start'}`,
        [
          {
            type: 'sweeper.deadline',
            ...(run.node ? { node: run.node } : {}),
            by: 'sweeper',
            detail: { deadlineMs: wf.deadlineMs },
          },
        ],
        at,
      );
      return;
    }
    if (run.status === 'waiting' && run.gate) {
      if (Date.parse(run.gate.expiresAt) > nowMs) return;
      report.expired++;
      const gate = run.gate;
      const ev: NewEvent = {
        type: 'gate.expired',
        node: gate.node,
        by: 'sweeper',
        detail: { expiresAt: gate.expiresAt, kind: gate.kind },
      };
      if (wf?.hasEdge(gate.node, 'expired')) {
        await this.advance(run, wf, gate.node, { edge: 'expired' }, [ev], at);
      } else {
        await this.finish(
          run,
          'expired',
          `${gate.node} expired at ${gate.expiresAt} without a ${gate.kind === 'agent' ? 'result' : 'decision'}`,
          [ev],
          at,
        );
      }
      return;
    }
    const step = run.step;
    if (!step) return;
    const leaseLapsed = run.lease && run.lease.seq === step.seq && Date.parse(run.lease.until) < nowMs;
    const neverPicked = !run.lease && Date.parse(step.notBefore) + this.enqueueGraceMs < nowMs;
    if (neverPicked && !(await this.resendDue(run, step, nowMs))) {
      report.backedOff++;
      return;
    }
    if (leaseLapsed || neverPicked) {
      report.reenqueued++;
      if (leaseLapsed) report.stuck++;
      await this.queue.send([{ message: { kind: 'step', runId: run.id, seq: step.seq } }]);
    }
  }

  // ---------------------------------------------------------------------------------- reads

  getRun(id: string): Promise<Run | null> {
    return this.store.getRun(id);
  }

  listRuns(query: ListRunsQuery): Promise<Run[]> {
    return this.store.listRuns(query);
  }

  listEvents(id: string, opts?: { limit?: number; after?: number }): Promise<RunEvent[]> {
    return this.store.listEvents(id, opts);
  }
}

function withoutFinish(run: Run): Run {
  const r: Run = { ...run };
  delete r.reason;
  delete r.error;
  delete r.finishedAt;
  delete r.ttl;
  delete r.gate;
  delete r.lease;
  return r;
}

function signalDetail(signal: Signal): Record<string, unknown> {
  switch (signal.type) {
    case 'approve':
      return {
        binding: signal.binding ?? null,
        ...(signal.comment ? { comment: signal.comment } : {}),
        ...(signal.budget !== undefined ? { budget: signal.budget } : {}),
      };
    case 'reject':
    case 'cancel':
      return { reason: signal.reason ?? null };
    case 'retry':
      return {};
    case 'result':
      return {
        correlation: signal.correlation ?? null,
        ok: signal.ok !== false,
        edge: signal.edge ?? null,
        payload: signal.payload,
      };
    case 'replan':
      return { to: signal.to, reason: signal.reason };
    case 'note':
      return { event: signal.event };
  }
}

export function toRunError(err: unknown, node: string): NonNullable<Run['error']> {
  if (err instanceof Error) {
    return { name: err.name, message: err.message.slice(0, 1000), node, retryable: isRetryable(err) };
  }
  return { name: 'Error', message: String(err).slice(0, 1000), node, retryable: true };
}

/** Exponential backoff with full jitter, capped. */
export function backoffDelay(
  policy: RetryPolicy,
  attempt: number,
  random: () => number = Math.random,
): number {
  const exp = policy.initialDelayMs * policy.backoffCoefficient ** (attempt - 1);
  const capped = Math.min(policy.maxDelayMs, exp);
  return Math.round(capped / 2 + (random() * capped) / 2);
}
