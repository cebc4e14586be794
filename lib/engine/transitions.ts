/**
 * The run state machine, as pure functions. Each turns a run and what happened to it (a step's
 * outcome, a signal, a sweep finding) into a `Plan`: the new run, the events that record why, the
 * change to the subject lock, and the messages to send once the change is committed. Nothing here
 * reads a clock, a store or a queue: the instant and the engine's settings come in as arguments,
 * so every transition is tested without DynamoDB (test/engine/transitions.test.ts).
 *
 * The modules that do I/O apply plans: lib/engine/core.ts commits one and sends its messages;
 * steps.ts, signals.ts, sweeping.ts and start.ts decide with these functions and apply the result.
 */
import type { SwitchyardError } from '../common/errors.ts';
import { MAX_DELAY_SECONDS, type Outgoing } from '../queue/port.ts';
import { InvalidSignalError, isRetryable, StaleApprovalError, UnknownWorkflowError } from './errors.ts';
import { type EventType, runEndEvent } from './events.ts';
import {
  isTerminal,
  type Lease,
  type NewEvent,
  type PendingStep,
  type ReportingClaim,
  type Run,
  type RunError,
  type RunStatus,
  resultKey,
  type Subject,
  type Trigger,
} from './types.ts';
import type { NodeResult, ResolvedNode, RetryPolicy, Workflow } from './workflow.ts';

// ------------------------------------------------------------------------------------ plans

/** A change to a run, decided and not yet applied. */
export interface Plan {
  /** The run after the change; its version is `expectedVersion + 1` (more for a fused plan: `fused`). */
  run: Run;
  /** The commit is conditional on the run still being at this version (as read, or as leased). */
  expectedVersion: number;
  /** History events, written in the same commit as the run. */
  events: NewEvent[];
  /** The subject lock: released when a run ends, taken again when a finished run is retried. */
  lock?: LockChange;
  /** What to send once the commit is in: the run's next step (if any), then a report of it. */
  messages: Outgoing[];
}

export type LockChange = { acquire: string } | { release: string };

/** What every transition is given besides the run: when it happens, and how the engine reports. */
export interface Moment {
  /** The instant of the change (ISO): the run's `updatedAt`, and `finishedAt` or `notBefore`. */
  at: string;
  /** The engine has reporters, so every new state is reported (the final one is reported anyway). */
  reporting: boolean;
}

/** A subject lock key: one active run of a workflow per subject. */
export const lockKeyOf = (run: Pick<Run, 'subject' | 'workflow'>): string =>
  `${run.subject.key}#${run.workflow}`;

/**
 * `run` as committed by a worker that goes on to report it itself (steps.ts `claimedHere`): the
 * report claim is taken in that commit (`Run.reporting`), where a claim of the report item would be
 * a write of its own. Not over another worker's claim that may still hold: that worker goes on to
 * the newest version when it is done (reporting.ts `report`), so the claim is carried forward.
 */
export function withReportClaim(run: Run, owner: string, now: Date, claimMs: number): Run {
  const held = run.reporting;
  if (held && held.owner !== owner && Date.parse(held.until) > now.getTime()) return run;
  return {
    ...run,
    reporting: { owner, until: new Date(now.getTime() + claimMs).toISOString(), version: run.version },
  };
}

/** The report claim taken in a commit of `run` (withReportClaim), if it still holds. */
export function reportClaimHeld(run: Run, reported: number, now: Date): ReportingClaim | undefined {
  const held = run.reporting;
  return held && Date.parse(held.until) > now.getTime() && reported < held.version ? held : undefined;
}

/** A report of `run`'s version, after `delayMs` if given. */
export function reportMessage(run: Pick<Run, 'id' | 'version'>, delayMs?: number): Outgoing {
  return { message: { kind: 'report', runId: run.id, version: run.version }, ...delay(delayMs) };
}

/** A message's delay (SQS caps a delay at 15 minutes). */
function delay(delayMs: number | undefined): Pick<Outgoing, 'delaySeconds'> {
  return delayMs !== undefined
    ? { delaySeconds: Math.min(MAX_DELAY_SECONDS, Math.ceil(delayMs / 1000)) }
    : {};
}

/**
 * Whether a step due at `dueMs` may run at `nowMs`: within a second of it counts (SQS delays are
 * whole seconds). Later, its message goes back to the queue for the rest of the wait.
 */
export function isDue(dueMs: number, nowMs: number): boolean {
  return dueMs - nowMs <= 1_000;
}

/** The message that runs the run's pending step, delayed until its `notBefore` (seen at `nowMs`). */
export function stepMessage(run: Run, nowMs: number): Outgoing {
  const due = Date.parse(run.step!.notBefore);
  return sendStep(run, isDue(due, nowMs) ? undefined : due - nowMs);
}

/** A message for the run's pending step, after `delayMs` if given. */
function sendStep(run: Run, delayMs?: number): Outgoing {
  const step = run.step!;
  return {
    message: {
      kind: 'step',
      runId: run.id,
      seq: step.seq,
      workflow: run.workflow,
      node: step.node,
      version: run.version,
      due: Date.parse(step.notBefore),
    },
    ...delay(delayMs),
  };
}

/**
 * The messages after a commit of `run`: its next step, and a report of the new state. A step due
 * now carries the report (`report: version`: the worker reports, then runs the step), so a
 * transition costs one message and one invocation, not two; a delayed step, a gate or an end
 * gets a report message of its own. Without reporters only the final report matters: it retires
 * the run from the active index.
 */
export function messagesAfter(run: Run, moment: Moment, step?: Outgoing): Outgoing[] {
  const report = moment.reporting || isTerminal(run.status);
  if (step && report && step.delaySeconds === undefined && step.message.kind === 'step')
    return [{ ...step, message: { ...step.message, report: run.version } }];
  const batch = step ? [step] : [];
  if (report) batch.push(reportMessage(run));
  return batch;
}

/** The run one version on, changed at `at`. */
function bumped(run: Run, at: string): Run {
  return { ...run, version: run.version + 1, updatedAt: at };
}

/**
 * Make `step` the run's next step: the one place a step is scheduled (a new run aside). `base` is
 * the new state without it (already a version on); a step message follows the commit.
 */
function schedule(
  base: Run,
  expectedVersion: number,
  step: PendingStep,
  events: NewEvent[],
  moment: Moment,
  opts: { delaySeconds?: number; lock?: LockChange } = {},
): Plan {
  const run: Run = { ...base, status: 'running', node: step.node, step };
  const message =
    opts.delaySeconds !== undefined
      ? { ...stepMessage(run, Date.parse(moment.at)), delaySeconds: opts.delaySeconds }
      : stepMessage(run, Date.parse(moment.at));
  return {
    run,
    expectedVersion,
    events,
    ...(opts.lock ? { lock: opts.lock } : {}),
    messages: messagesAfter(run, moment, message),
  };
}

/** The first attempt of `node`, next in line after the run's current step slot. */
function firstAttempt(run: Run, node: string, at: string): PendingStep {
  return { node, seq: (run.step?.seq ?? run.version) + 1, attempt: 1, notBefore: at };
}

export interface Ending {
  status: RunStatus;
  reason: string;
  /** Events before the `run.<status>` one. */
  events: NewEvent[];
  error?: RunError;
  /** The run data to end with (the node's output merged in); absent: the run's own. */
  data?: Record<string, unknown>;
  /** The node the `run.<status>` event names; absent: the run's node. */
  node?: string;
}

/**
 * End the run: the one place a terminal state is written. Its step, lease and gate go, its subject
 * lock is released, and the final state is reported.
 */
export function finish(run: Run, end: Ending, moment: Moment): Plan {
  const { at } = moment;
  const next: Run = {
    ...bumped(run, at),
    ...(end.data ? { data: end.data } : {}),
    status: end.status,
    reason: end.reason,
    finishedAt: at,
    ...(end.error ? { error: end.error } : {}),
  };
  delete next.step;
  delete next.lease;
  delete next.gate;
  const node = end.node ?? run.node;
  return {
    run: next,
    expectedVersion: run.version,
    events: [
      ...end.events,
      {
        type: runEndEvent(end.status),
        ...(node ? { node } : {}),
        detail: { reason: end.reason, ...(end.error ? { error: end.error } : {}) },
      },
    ],
    lock: { release: lockKeyOf(run) },
    messages: messagesAfter(next, moment),
  };
}

/**
 * `node` is done with `output` and `edge`: follow the graph to the next node, or end the run
 * successfully when there is none. `events` record why (the step's success, a gate's decision).
 */
export function proceed<S>(
  run: Run,
  wf: Workflow<S>,
  done: { node: string; output?: Record<string, unknown>; edge?: string; events: NewEvent[] },
  moment: Moment,
): Plan {
  const data = { ...run.data, ...done.output };
  const nextNode = wf.next(done.node, done.edge, data);
  if (nextNode === null) {
    return finish(
      run,
      {
        status: 'succeeded',
        reason: `completed at ${done.node}`,
        events: done.events,
        data,
        node: done.node,
      },
      moment,
    );
  }
  const base: Run = { ...bumped(run, moment.at), data };
  delete base.gate;
  delete base.lease;
  return schedule(
    base,
    run.version,
    firstAttempt(run, nextNode, moment.at),
    [...done.events, { type: 'step.scheduled', node: nextNode, detail: { attempt: 1 } }],
    moment,
  );
}

// ----------------------------------------------------------------------------------- start

export interface NewRun {
  run: Run;
  events: NewEvent[];
  lockKey: string;
  /** Sent once the run is created: its first step (and a report, when the engine reports). */
  messages: Outgoing[];
}

/** A new run of `wf` on `subject`, queued at its start node. */
export function created(
  wf: Pick<Workflow<unknown>, 'name' | 'version' | 'start'>,
  input: {
    id: string;
    subject: Subject;
    trigger: Trigger;
    input?: Record<string, unknown>;
    idempotencyKey?: string;
    concurrency: string;
  },
  moment: Moment,
): NewRun {
  const { at } = moment;
  const run: Run = {
    id: input.id,
    workflow: wf.name,
    status: 'queued',
    node: wf.start,
    subject: input.subject,
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
        subject: input.subject,
        trigger: input.trigger,
        ...(input.idempotencyKey ? { idempotencyKey: input.idempotencyKey } : {}),
        concurrency: input.concurrency,
      },
    },
  ];
  return {
    run,
    events,
    lockKey: lockKeyOf(run),
    messages: messagesAfter(run, moment, stepMessage(run, Date.parse(at))),
  };
}

// --------------------------------------------------------------------------------- signals

/** Gates a `result` signal (with the gate's correlation) resumes: agents, green CI, a lifted hold. */
export const RESUMED_BY_RESULT: ReadonlySet<string> = new Set(['agent', 'ci', 'hold']);

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
  | {
      type: 'replan';
      by: string;
      to: string;
      reason: string;
      data?: Record<string, unknown>;
      /** Only while the gate still binds to this (what the caller judged the edit against). */
      binding?: string;
    }
  /** Record `event` on an active run and report it, without moving the run (a waiting run's version is bumped so reporters show it). */
  | {
      type: 'note';
      by: string;
      event: EventType;
      detail: Record<string, unknown>;
      data?: Record<string, unknown>;
    };

/** What a signal (or a gate edit) does to a run. */
export type Decision =
  /** Commit the plan. */
  | { kind: 'commit'; plan: Plan }
  /** Only record `event` (audit), without moving the run: a running step's commit reports it. */
  | { kind: 'append'; event: NewEvent }
  /** Refuse with `error`; record `audit` first when given (a refused approval is audited). */
  | { kind: 'refuse'; error: SwitchyardError; audit?: NewEvent };

const refuse = (error: SwitchyardError, audit?: NewEvent): Extract<Decision, { kind: 'refuse' }> => ({
  kind: 'refuse',
  error,
  ...(audit ? { audit } : {}),
});
const commit = (plan: Plan): Extract<Decision, { kind: 'commit' }> => ({ kind: 'commit', plan });
const unknownWorkflow = (run: Run) => refuse(new UnknownWorkflowError(`unknown workflow ${run.workflow}`));

/** Refuse a signal that does not fit the run's state. */
const invalid = (run: Run, message: string, node?: string) =>
  refuse(new InvalidSignalError(message, { runId: run.id, ...(node ? { node } : {}) }));

/** Gates a person decides (approve or reject). */
const DECIDED_BY_PEOPLE: ReadonlySet<string> = new Set(['approval', 'escalation', 'budget']);

/** Decide what `signal` does to `run` (of workflow `wf`, when it still exists). */
export function onSignal<S>(run: Run, signal: Signal, wf: Workflow<S> | undefined, moment: Moment): Decision {
  const why: NewEvent = {
    type: `signal.${signal.type}`,
    ...(run.node ? { node: run.node } : {}),
    by: signal.by,
    detail: signalDetail(signal),
  };
  switch (signal.type) {
    case 'cancel':
      return onCancel(run, signal, why, moment);
    case 'retry':
      return onRetry(run, wf, why, moment);
    case 'approve':
    case 'reject':
      return onDecision(run, signal, wf, why, moment);
    case 'result':
      return onResult(run, signal, wf, why, moment);
    case 'replan':
      return onReplan(run, signal, wf, why, moment);
    case 'note':
      return onNote(run, signal, moment);
  }
}

type SignalOf<T extends Signal['type']> = Extract<Signal, { type: T }>;

function onCancel(run: Run, signal: SignalOf<'cancel'>, why: NewEvent, moment: Moment): Decision {
  if (isTerminal(run.status)) return invalid(run, `run ${run.id} is already ${run.status}`);
  const reason = `cancelled by ${signal.by}${signal.reason ? `: ${signal.reason}` : ''}`;
  return commit(finish(run, { status: 'cancelled', reason, events: [why] }, moment));
}

/** A failed or expired run runs again from its node, and takes its subject's lock again. */
function onRetry<S>(run: Run, wf: Workflow<S> | undefined, why: NewEvent, moment: Moment): Decision {
  if (run.status !== 'failed' && run.status !== 'expired') {
    return invalid(run, `run ${run.id} is ${run.status}; only failed or expired runs can be retried`);
  }
  if (!wf) return unknownWorkflow(run);
  const node = run.node && wf.nodes.has(run.node) ? run.node : wf.start;
  return commit(
    schedule(
      bumped(withoutFinish(run), moment.at),
      run.version,
      firstAttempt(run, node, moment.at),
      [why, { type: 'step.scheduled', node, detail: { attempt: 1, reason: 'retry' } }],
      moment,
      { lock: { acquire: lockKeyOf(run) } },
    ),
  );
}

/** A person approves or rejects the gate the run waits at (only what the gate shows, only in time). */
function onDecision<S>(
  run: Run,
  signal: SignalOf<'approve' | 'reject'>,
  wf: Workflow<S> | undefined,
  why: NewEvent,
  moment: Moment,
): Decision {
  const { at } = moment;
  const gate = run.gate;
  if (run.status !== 'waiting' || !gate || !DECIDED_BY_PEOPLE.has(gate.kind)) {
    return invalid(run, `run ${run.id} is not waiting for an approval (status ${run.status})`);
  }
  if (!wf) return unknownWorkflow(run);
  if (Date.parse(gate.expiresAt) < Date.parse(at)) {
    // The sweeper has not reached it yet, but the decision came too late all the same.
    return invalid(run, `the ${gate.node} gate of run ${run.id} expired at ${gate.expiresAt}`, gate.node);
  }
  if (signal.type === 'approve') {
    if (signal.binding !== undefined && gate.binding !== undefined && signal.binding !== gate.binding) {
      // Bound to what was approved: the plan changed since the approver saw it.
      return refuse(
        new StaleApprovalError(
          `approval for ${signal.binding} is stale: the gate now shows ${gate.binding}`,
          {
            runId: run.id,
            node: gate.node,
          },
        ),
        {
          type: 'signal.approve.refused',
          node: gate.node,
          by: signal.by,
          detail: { reason: 'stale', approved: signal.binding, current: gate.binding },
        },
      );
    }
    const approval = {
      by: signal.by,
      at,
      binding: gate.binding ?? null,
      bound: signal.binding !== undefined,
      ...(signal.budget !== undefined ? { budget: signal.budget } : {}),
    };
    return commit(decided(run, wf, gate.node, { output: { approval }, edge: 'approved' }, why, moment));
  }
  const reason = `rejected by ${signal.by}${signal.reason ? `: ${signal.reason}` : ''}`;
  if (!wf.hasEdge(gate.node, 'rejected')) {
    return commit(finish(run, { status: 'failed', reason, events: [why] }, moment));
  }
  const rejection = { by: signal.by, reason };
  return commit(decided(run, wf, gate.node, { output: { rejection }, edge: 'rejected' }, why, moment));
}

/**
 * An agent's (or CI's, or a lifted hold's) result resumes the gate that waits for it, under
 * `<node>Result`. A failure follows its edge, or fails the run when the gate has none.
 */
function onResult<S>(
  run: Run,
  signal: SignalOf<'result'>,
  wf: Workflow<S> | undefined,
  why: NewEvent,
  moment: Moment,
): Decision {
  const gate = run.gate;
  if (run.status !== 'waiting' || !gate || !RESUMED_BY_RESULT.has(gate.kind)) {
    return invalid(run, `run ${run.id} is not waiting for an agent result`);
  }
  if (gate.correlation !== undefined && signal.correlation !== gate.correlation) {
    return invalid(run, `result for ${signal.correlation} does not match ${gate.correlation}`);
  }
  if (!wf) return unknownWorkflow(run);
  const ok = signal.ok !== false;
  const edge = signal.edge ?? (ok ? undefined : 'failed');
  if (!ok && !(edge && wf.hasEdge(gate.node, edge))) {
    const summary = signal.payload.summary;
    const reason = `${gate.node} reported failure${typeof summary === 'string' ? `: ${summary}` : ''}`;
    const error = { name: 'AgentFailed', message: reason, node: gate.node };
    return commit(finish(run, { status: 'failed', reason, events: [why], error }, moment));
  }
  const output = { [resultKey(gate.node)]: signal.payload };
  return commit(
    decided(run, wf, gate.node, { output, ...(edge !== undefined ? { edge } : {}) }, why, moment),
  );
}

/** The plan changed under an approval gate: withdraw the gate and run again from `to`. */
function onReplan<S>(
  run: Run,
  signal: SignalOf<'replan'>,
  wf: Workflow<S> | undefined,
  why: NewEvent,
  moment: Moment,
): Decision {
  const gate = run.gate;
  if (run.status !== 'waiting' || gate?.kind !== 'approval') {
    return invalid(run, `run ${run.id} is not waiting for an approval (status ${run.status})`);
  }
  if (signal.binding !== undefined && gate.binding !== signal.binding) {
    return invalid(
      run,
      `run ${run.id} now waits for ${gate.binding ?? 'another gate'}, not ${signal.binding}`,
    );
  }
  if (!wf) return unknownWorkflow(run);
  if (!wf.nodes.has(signal.to)) return invalid(run, `workflow ${run.workflow} has no node ${signal.to}`);
  const base: Run = { ...bumped(run, moment.at), data: { ...run.data, ...signal.data } };
  delete base.gate;
  delete base.lease;
  const withdrawn: NewEvent = {
    type: 'gate.withdrawn',
    node: gate.node,
    detail: { binding: gate.binding ?? null, reason: signal.reason },
  };
  return commit(
    schedule(
      base,
      run.version,
      firstAttempt(run, signal.to, moment.at),
      [why, withdrawn, { type: 'step.scheduled', node: signal.to, detail: { attempt: 1, reason: 'replan' } }],
      moment,
    ),
  );
}

/** Record an event on an active run and have it reported, without moving the run. */
function onNote(run: Run, signal: SignalOf<'note'>, moment: Moment): Decision {
  const event: NewEvent = {
    type: signal.event,
    ...(run.node ? { node: run.node } : {}),
    by: signal.by,
    detail: signal.detail,
  };
  if (isTerminal(run.status)) return invalid(run, `run ${run.id} is already ${run.status}`);
  // A running step holds a lease on this version: append only; its commit reports the note.
  if (run.status !== 'waiting') return { kind: 'append', event };
  const next: Run = { ...bumped(run, moment.at), data: { ...run.data, ...signal.data } };
  // Reported even by an engine without reporters (ingress): the note is there to be seen.
  return commit({
    run: next,
    expectedVersion: run.version,
    events: [event],
    messages: [reportMessage(next)],
  });
}

/** A gate decided (approved, rejected, a result, expired): the gate's node is done. */
function decided<S>(
  run: Run,
  wf: Workflow<S>,
  node: string,
  result: { output?: Record<string, unknown>; edge?: string },
  why: NewEvent,
  moment: Moment,
): Plan {
  return proceed(
    run,
    wf,
    {
      node,
      ...result,
      events: [why, { type: 'node.completed', node, detail: { edge: result.edge ?? null } }],
    },
    moment,
  );
}

/** A change to what a waiting run's person gate shows (an edited plan), staying at the gate. */
export interface GateChange {
  expected: string;
  binding: string;
  data: Record<string, unknown>;
  prompt?: string;
  event: NewEvent;
}

/** Rebind a person gate to `change.binding`, only while it still shows `change.expected`. */
export function onGateChange(
  runId: string,
  run: Run | null,
  change: GateChange,
  moment: Moment,
): Extract<Decision, { kind: 'commit' | 'refuse' }> {
  const gate = run?.gate;
  if (run?.status !== 'waiting' || !gate || RESUMED_BY_RESULT.has(gate.kind)) {
    return refuse(new InvalidSignalError(`run ${runId} is not waiting at a gate for a person`, { runId }));
  }
  if (gate.binding !== change.expected) {
    return refuse(
      new StaleApprovalError(`the gate of run ${runId} now shows ${gate.binding ?? 'nothing'}`, {
        runId,
        node: gate.node,
      }),
    );
  }
  const { at } = moment;
  const next: Run = {
    ...bumped(run, at),
    data: { ...run.data, ...change.data },
    gate: { ...gate, binding: change.binding, ...(change.prompt ? { prompt: change.prompt } : {}) },
  };
  return commit({
    run: next,
    expectedVersion: run.version,
    events: [{ ...change.event, node: gate.node, at }],
    messages: messagesAfter(next, moment),
  });
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

// ----------------------------------------------------------------------------------- steps

/** What a step message finds when it arrives, before anything is written. */
export type Arrival =
  /** Too early (SQS caps delays at 15 min): send it again for the rest of the wait. */
  | { kind: 'early'; message: Outgoing }
  /** Another worker holds a live lease on this step. */
  | { kind: 'busy' }
  /** Every attempt was spent by workers that stopped mid-step: the run fails. */
  | { kind: 'exhausted'; plan: Plan }
  /**
   * Take the step: write `leased` (conditional on the run's version), then run attempt `attempt`.
   * `takeover`: a lease of this step lapsed (its worker stopped), and this attempt counts anew.
   */
  | { kind: 'lease'; leased: Run; attempt: number; takeover: boolean };

/** Whether a step message for `seq` still names the run's pending step. */
export function isPending(run: Run, seq: number): boolean {
  return (
    !isTerminal(run.status) && run.status !== 'waiting' && run.step !== undefined && run.step.seq === seq
  );
}

/**
 * Whether a worker holds a live lease on the run's pending step: the step is under way, and its
 * commit (or, if the worker stops, a takeover's) comes next. A message for it finds it busy; a
 * reporter need not chase its version, since that commit is reported in turn.
 */
export function stepUnderWay(run: Run, now: Date): boolean {
  const { lease, step } = run;
  return (
    step !== undefined &&
    isPending(run, step.seq) &&
    lease !== undefined &&
    lease.seq === step.seq &&
    Date.parse(lease.until) > now.getTime()
  );
}

/**
 * Whether the run's pending step comes next by itself: under way (`stepUnderWay`), or due with
 * no lease, its message on its way (a step message due now carries a report of the version that
 * sent it, `messagesAfter`). A reporter need not chase such a version: the step's commit, or the
 * report its message carries, shows what comes of it.
 */
export function stepAhead(run: Run, now: Date): boolean {
  if (stepUnderWay(run, now)) return true;
  const { step, lease } = run;
  return (
    step !== undefined &&
    lease === undefined &&
    isPending(run, step.seq) &&
    isDue(Date.parse(step.notBefore), now.getTime())
  );
}

/**
 * A message for the run's pending step (see `isPending`) arrived at `now`. Taking over a lease
 * that lapsed means the previous attempt's worker stopped: it counts as an attempt.
 */
export function onArrival<S>(
  run: Run,
  node: ResolvedNode<S>,
  opts: { now: Date; owner: string; leaseGraceMs: number; reporting: boolean },
): Arrival {
  const step = run.step!;
  const nowMs = opts.now.getTime();
  const due = Date.parse(step.notBefore);
  if (!isDue(due, nowMs)) return { kind: 'early', message: sendStep(run, due - nowMs) };
  if (stepUnderWay(run, opts.now)) return { kind: 'busy' };
  const lease = run.lease;

  const takeover = lease?.seq === step.seq;
  const attempt = takeover ? step.attempt + 1 : step.attempt;
  const at = opts.now.toISOString();
  if (takeover && attempt > node.retry.maxAttempts) {
    const commitError = lease?.error;
    const reason = commitError
      ? `${node.name} could not commit after ${step.attempt} attempts: ${commitError}`
      : `${node.name} did not finish after ${step.attempt} attempts (the worker stopped each time)`;
    return {
      kind: 'exhausted',
      plan: finish(
        run,
        {
          status: 'failed',
          reason,
          events: [
            {
              type: 'step.failed',
              node: node.name,
              detail: { attempt: step.attempt, error: 'lease expired' },
            },
          ],
          error: {
            name: 'LeaseExpired',
            message: 'worker stopped mid-step',
            node: node.name,
            retryable: false,
          },
        },
        { at, reporting: opts.reporting },
      ),
    };
  }
  return { kind: 'lease', attempt, takeover, leased: withLease(bumped(run, at), node, attempt, opts) };
}

/**
 * The step as a first try holds it before its lease is written (steps.ts `StepHold`): the run at
 * the version read, with the lease it would write. The lease is written only when the step needs
 * it (before its first effect, or once it has run a while); until then its commit is conditional
 * on the version read, as a leased step's is on its lease's.
 */
export function unwrittenLease<S>(
  run: Run,
  node: ResolvedNode<S>,
  opts: { now: Date; owner: string; leaseGraceMs: number },
): Run {
  return withLease(run, node, run.step!.attempt, opts);
}

/** The run with its pending step leased by `owner` for attempt `attempt`, from `now` on. */
function withLease<S>(
  run: Run,
  node: ResolvedNode<S>,
  attempt: number,
  opts: { now: Date; owner: string; leaseGraceMs: number },
): Run {
  const step = run.step!;
  return { ...run, status: 'running', step: { ...step, attempt }, lease: leaseOf(step.seq, node, opts) };
}

/** A lease of step `seq` of `node` to `owner`, from `now` until its timeout and the grace have passed. */
export function leaseOf<S>(
  seq: number,
  node: ResolvedNode<S>,
  opts: { now: Date; owner: string; leaseGraceMs: number },
): Lease {
  return {
    owner: opts.owner,
    seq,
    until: new Date(opts.now.getTime() + node.timeoutMs + opts.leaseGraceMs).toISOString(),
  };
}

/** A plan whose next step runs in the same invocation: leased in the plan's own commit. */
export interface Chained {
  plan: Plan;
  /** The run version the step's message would have carried a report of. */
  report?: number;
}

/**
 * Run the step that `plan` schedules right away, in this invocation, instead of sending its
 * message: the commit that schedules it also leases it to `owner` (as `onArrival` would have, one
 * message later), and the message is dropped with the report it carried, which the caller makes
 * instead. Only a step due now, of the same run. Undefined when there is no such step.
 *
 * What it saves per step: the message (a send, a receive, a delete), the invocation, the read of
 * the run and the lease write. What it changes on a crash: no message is in the queue, so the
 * step is found by the sweeper once its lease lapses (a stopped worker, as for any lease), and the
 * takeover counts an attempt.
 */
export function chainNext<S>(
  plan: Plan,
  node: ResolvedNode<S>,
  opts: { now: Date; owner: string; leaseGraceMs: number },
): Chained | undefined {
  const { run } = plan;
  const step = run.step;
  if (!step || isTerminal(run.status) || run.status === 'waiting' || run.lease) return undefined;
  if (!isDue(Date.parse(step.notBefore), opts.now.getTime())) return undefined;
  const index = plan.messages.findIndex(
    (o) =>
      o.message.kind === 'step' &&
      o.message.runId === run.id &&
      o.message.seq === step.seq &&
      o.delaySeconds === undefined,
  );
  if (index < 0) return undefined;
  const message = plan.messages[index]!.message;
  return {
    plan: {
      ...plan,
      run: withLease(run, node, step.attempt, opts),
      messages: plan.messages.filter((_, i) => i !== index),
    },
    ...(message.kind === 'step' && message.report !== undefined ? { report: message.report } : {}),
  };
}

/**
 * The plans of chained steps as ONE commit (steps.ts `deferring`): `first` left uncommitted, its
 * next step run on the run as it would have written it, and `then` that step's plan over it. The
 * run as `then` leaves it, conditional on the version `first` was conditional on (its version
 * thus goes up by more than one: each step still counts one), with the events of both in order.
 * `first`'s reports are dropped: its state is never stored, and `then`'s report shows the newer
 * one. Its other messages are kept; a lock change is `then`'s, else `first`'s. `then` was planned
 * over `first`'s run as its commit would store it (its events counted in `eventSeq`).
 */
export function fused(first: Plan, then: Plan): Plan {
  const lock = then.lock ?? first.lock;
  return {
    // Its events numbered on from `first`'s run (a plan's run has the seq its events start at).
    run: { ...then.run, eventSeq: first.run.eventSeq },
    expectedVersion: first.expectedVersion,
    events: [...first.events, ...then.events],
    ...(lock ? { lock } : {}),
    messages: [...first.messages.filter((o) => o.message.kind !== 'report'), ...then.messages],
  };
}

/** How one attempt of a node ended: its result, or what it threw (with the events it emitted). */
export type Attempt =
  | { ok: true; result: NodeResult; durationMs: number }
  | { ok: false; failure: unknown; events: NewEvent[]; durationMs: number };

/**
 * The commit after attempt `attempt` of `node` on the `leased` run: park at a gate, go on to the
 * next node (or succeed), retry after a backoff, or fail the run.
 */
export function onAttempt<S>(
  leased: Run,
  wf: Workflow<S>,
  node: ResolvedNode<S>,
  attempt: number,
  outcome: Attempt,
  moment: Moment & { random: () => number },
): Plan {
  const { at } = moment;
  const step = leased.step!;
  if (outcome.ok) {
    const { result } = outcome;
    const events: NewEvent[] = [
      ...(result.events ?? []),
      { type: 'step.succeeded', node: node.name, detail: { attempt, durationMs: outcome.durationMs } },
    ];
    if ('wait' in result) {
      const { expiresInMs, ...gate } = result.wait;
      const waiting: Run = {
        ...bumped(leased, at),
        data: { ...leased.data, ...result.output },
        status: 'waiting',
        gate: { ...gate, node: node.name, expiresAt: new Date(Date.parse(at) + expiresInMs).toISOString() },
      };
      delete waiting.lease;
      delete waiting.step;
      return {
        run: waiting,
        expectedVersion: leased.version,
        events: [...events, { type: 'gate.opened', node: node.name, detail: { ...waiting.gate } }],
        messages: messagesAfter(waiting, moment),
      };
    }
    return proceed(
      leased,
      wf,
      { node: node.name, ...(result.output ? { output: result.output } : {}), ...edgeOf(result), events },
      moment,
    );
  }

  const error = toRunError(outcome.failure, node.name);
  if (error.retryable && attempt < node.retry.maxAttempts && !node.retry.nonRetryable.includes(error.name)) {
    const delayMs = backoffDelay(node.retry, attempt, moment.random);
    const base = bumped(leased, at);
    delete base.lease;
    return schedule(
      base,
      leased.version,
      {
        node: node.name,
        seq: step.seq + 1,
        // The same step again: its effects are found under its first attempt's seq.
        firstSeq: step.firstSeq ?? step.seq,
        attempt: attempt + 1,
        notBefore: new Date(Date.parse(at) + delayMs).toISOString(),
      },
      [...outcome.events, { type: 'step.retry', node: node.name, detail: { attempt, error, delayMs } }],
      moment,
      { delaySeconds: Math.ceil(delayMs / 1000) },
    );
  }
  const reason =
    error.retryable && attempt >= node.retry.maxAttempts
      ? `${node.name} failed after ${attempt} attempts: ${error.message}`
      : `${node.name} failed: ${error.message}`;
  return finish(
    leased,
    {
      status: 'failed',
      reason,
      error,
      node: node.name,
      events: [
        ...outcome.events,
        { type: 'step.failed', node: node.name, detail: { attempt, error, durationMs: outcome.durationMs } },
      ],
    },
    moment,
  );
}

const edgeOf = (result: NodeResult): { edge?: string } =>
  'edge' in result && result.edge !== undefined ? { edge: result.edge } : {};

/**
 * The store refused the step's commit as invalid (over the size budget, nested too deeply): no
 * retry can commit it, so the run fails with the reason, from the leased state.
 */
export function onUncommittable<S>(
  leased: Run,
  node: ResolvedNode<S>,
  attempt: number,
  err: Error,
  moment: Moment,
): Plan {
  const error: RunError = {
    name: err.name,
    message: err.message.slice(0, 1000),
    node: node.name,
    retryable: false,
  };
  return finish(
    leased,
    {
      status: 'failed',
      reason: `${node.name} failed: ${error.message}`,
      error,
      node: node.name,
      events: [{ type: 'step.failed', node: node.name, detail: { attempt, error } }],
    },
    moment,
  );
}

/** The same plan without the run's data (the state a step started from is itself over budget). */
export function withoutData(plan: Plan): Plan {
  return { ...plan, run: { ...plan.run, data: { droppedData: 'over the size budget' } } };
}

/**
 * The commit failed for a reason that may pass (a throttle, the store unreachable): the lease is
 * shortened to a backoff delay, after which the step is sent again and takes the lapsed lease
 * over (counting an attempt). The lease remembers why, for the run's reason if attempts run out.
 */
export function releasedLease<S>(
  leased: Run,
  node: ResolvedNode<S>,
  attempt: number,
  err: unknown,
  opts: { now: Date; random: () => number },
): { run: Run; delayMs: number; message: Outgoing } {
  const delayMs = backoffDelay(node.retry, attempt, opts.random);
  const until = new Date(opts.now.getTime() + delayMs).toISOString();
  const run: Run = {
    ...bumped(leased, opts.now.toISOString()),
    step: { ...leased.step!, notBefore: until },
    lease: { ...leased.lease!, until, error: toRunError(err, node.name).message.slice(0, 300) },
  };
  return { delayMs, run, message: sendStep(run, delayMs) };
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

// ----------------------------------------------------------------------------------- sweep

/** What the sweeper finds on a live run (its report aside). */
export type Finding =
  /** Nothing to do (a gate not yet expired, a step in progress or not yet due). */
  | { kind: 'none' }
  /** Past the workflow's deadline: the run expires, whatever it was doing. */
  | { kind: 'deadline'; plan: Plan }
  /** Its gate expired: follow the gate's `expired` edge, or the run expires. */
  | { kind: 'gate-expired'; plan: Plan }
  /** Its step's lease lapsed (the worker stopped), or its message was never picked up: send it again. */
  | { kind: 'resend'; step: PendingStep; leaseLapsed: boolean; message: Outgoing };

/** Decide what the sweeper does with a live (not terminal) run, at `moment.at`. */
export function onSweep<S>(
  run: Run,
  wf: Workflow<S> | undefined,
  opts: Moment & { enqueueGraceMs: number },
): Finding {
  const { at } = opts;
  const nowMs = Date.parse(at);
  if (wf?.deadlineMs !== undefined && Date.parse(run.createdAt) + wf.deadlineMs < nowMs) {
    const plan = finish(
      run,
      {
        status: 'expired',
        reason: `deadline of ${wf.deadlineMs} ms passed at ${run.node ?? 'start'}`,
        events: [
          {
            type: 'sweeper.deadline',
            ...(run.node ? { node: run.node } : {}),
            by: 'sweeper',
            detail: { deadlineMs: wf.deadlineMs },
          },
        ],
      },
      opts,
    );
    return { kind: 'deadline', plan };
  }
  if (run.status === 'waiting' && run.gate) {
    const gate = run.gate;
    if (Date.parse(gate.expiresAt) > nowMs) return { kind: 'none' };
    const why: NewEvent = {
      type: 'gate.expired',
      node: gate.node,
      by: 'sweeper',
      detail: { expiresAt: gate.expiresAt, kind: gate.kind },
    };
    const plan = wf?.hasEdge(gate.node, 'expired')
      ? decided(run, wf, gate.node, { edge: 'expired' }, why, opts)
      : finish(
          run,
          {
            status: 'expired',
            reason: `${gate.node} expired at ${gate.expiresAt} without a ${gate.kind === 'agent' ? 'result' : 'decision'}`,
            events: [why],
          },
          opts,
        );
    return { kind: 'gate-expired', plan };
  }
  const step = run.step;
  if (!step) return { kind: 'none' };
  const leaseLapsed = Boolean(run.lease && run.lease.seq === step.seq && Date.parse(run.lease.until) < nowMs);
  const neverPicked = !run.lease && Date.parse(step.notBefore) + opts.enqueueGraceMs < nowMs;
  if (!leaseLapsed && !neverPicked) return { kind: 'none' };
  return {
    kind: 'resend',
    step,
    leaseLapsed,
    message: sendStep(run),
  };
}
