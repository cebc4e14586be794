/**
 * The run state machine without I/O: each transition is a pure function of the run and what
 * happened, so these tests need no DynamoDB, no queue and no clock (the instant is an argument).
 */
import { describe, expect, it } from 'vitest';
import { NonRetryableError } from '../../lib/common/errors.ts';
import { InvalidSignalError, StaleApprovalError, UnknownWorkflowError } from '../../lib/engine/errors.ts';
import {
  type Attempt,
  backoffDelay,
  chainNext,
  created,
  type Decision,
  finish,
  fused,
  isPending,
  type Moment,
  messagesAfter,
  onArrival,
  onAttempt,
  onGateChange,
  onSignal,
  onSweep,
  onUncommittable,
  type Plan,
  proceed,
  releasedLease,
  stepMessage,
  toRunError,
  unwrittenLease,
  withoutData,
} from '../../lib/engine/transitions.ts';
import type { Gate, NewEvent, Run } from '../../lib/engine/types.ts';
import { type NodeResult, Workflow, type WorkflowDefinition } from '../../lib/engine/workflow.ts';

const T0 = '2026-01-01T00:00:00.000Z';
const ms = (iso: string) => Date.parse(iso);

/** A step message of run r1 of workflow w, as `sendStep` writes it. */
const stepTo = (seq: number, node: string, version: number, due: number, more: { report?: number } = {}) => ({
  kind: 'step',
  runId: 'r1',
  seq,
  ...more,
  workflow: 'w',
  node,
  version,
  due,
});
const plus = (iso: string, delta: number) => new Date(ms(iso) + delta).toISOString();
const AT = plus(T0, 60_000);
const quiet: Moment = { at: AT, reporting: false };
const loud: Moment = { at: AT, reporting: true };

const handler = async (): Promise<NodeResult> => ({});
const def: WorkflowDefinition = {
  name: 'w',
  version: 3,
  start: 'a',
  nodes: {
    a: { handler },
    b: {
      handler,
      retry: { maxAttempts: 3, initialDelayMs: 1_000, maxDelayMs: 60_000, nonRetryable: ['Fatal'] },
    },
    gate: { handler },
    c: { handler },
    fix: { handler },
    agent: { handler },
  },
  edges: [
    { from: 'a', to: 'b' },
    { from: 'b', to: 'gate' },
    { from: 'gate', to: 'c', on: 'approved' },
    { from: 'gate', to: 'fix', on: 'rejected' },
    { from: 'agent', to: 'c' },
    { from: 'agent', to: 'fix', on: 'failed' },
  ],
};
const wf = new Workflow(def);
/** No `rejected`, `failed` or `expired` edges: those end the run. */
const bare = new Workflow({
  ...def,
  name: 'bare',
  edges: [
    { from: 'a', to: 'b' },
    { from: 'gate', to: 'c', on: 'approved' },
  ],
});
const withDeadline = new Workflow(def, { deadlineMs: 3_600_000 });
const expiring = new Workflow({ ...def, edges: [...def.edges, { from: 'gate', to: 'fix', on: 'expired' }] });

function aRun(over: Partial<Run> = {}): Run {
  return {
    id: 'r1',
    workflow: 'w',
    status: 'running',
    node: 'a',
    subject: { repo: 'o/r', issue: 1, key: 'o/r#1' },
    trigger: { source: 'test' },
    createdAt: T0,
    updatedAt: T0,
    version: 4,
    data: { seen: true },
    step: { node: 'a', seq: 2, attempt: 1, notBefore: T0 },
    eventSeq: 7,
    ...over,
  };
}

function waitingAt(gate: Partial<Gate> = {}, over: Partial<Run> = {}): Run {
  const run = aRun({
    status: 'waiting',
    node: gate.node ?? 'gate',
    gate: { node: 'gate', kind: 'approval', expiresAt: plus(AT, 60_000), binding: 'v1', ...gate },
    ...over,
  });
  delete run.step;
  return run;
}

const failedRun = (over: Partial<Run> = {}): Run => {
  const run = aRun({
    status: 'failed',
    node: 'b',
    reason: 'b failed: boom',
    error: { name: 'Error', message: 'boom', node: 'b' },
    finishedAt: T0,
    ttl: 123,
    ...over,
  });
  delete run.step;
  return run;
};

function planOf(d: Decision): Plan {
  if (d.kind !== 'commit') throw new Error(`expected a commit, got ${d.kind}`);
  return d.plan;
}
function refusalOf(d: Decision) {
  if (d.kind !== 'refuse') throw new Error(`expected a refusal, got ${d.kind}`);
  return d;
}
const types = (plan: Plan) => plan.events.map((e) => [e.type, e.node]);
const kinds = (plan: Plan) => plan.messages.map((m) => m.message.kind);

describe('finish', () => {
  const plan = finish(
    aRun({ lease: { owner: 'w', seq: 2, until: AT } }),
    {
      status: 'failed',
      reason: 'why',
      events: [{ type: 'console.action', detail: {} }],
      error: { name: 'E', message: 'm' },
    },
    quiet,
  );

  it('ends the run one version on, conditional on the version it read', () => {
    expect(plan.expectedVersion).toBe(4);
    expect(plan.run).toMatchObject({
      status: 'failed',
      reason: 'why',
      finishedAt: AT,
      updatedAt: AT,
      version: 5,
    });
    expect(plan.run.error).toEqual({ name: 'E', message: 'm' });
  });

  it('drops the step, the lease and the gate', () => {
    expect(plan.run.step).toBeUndefined();
    expect(plan.run.lease).toBeUndefined();
    expect(
      finish(waitingAt(), { status: 'cancelled', reason: 'r', events: [] }, quiet).run.gate,
    ).toBeUndefined();
  });

  it('records the run.<status> event last, at the run node, with the reason and error', () => {
    expect(plan.events).toEqual([
      { type: 'console.action', detail: {} },
      { type: 'run.failed', node: 'a', detail: { reason: 'why', error: { name: 'E', message: 'm' } } },
    ]);
  });

  it('releases the subject lock of the run’s workflow', () => {
    expect(plan.lock).toEqual({ release: 'o/r#1#w' });
  });

  it('reports the final state even when the engine has no reporters', () => {
    expect(plan.messages).toEqual([{ message: { kind: 'report', runId: 'r1', version: 5 } }]);
  });

  it('ends with the data and event node it is given', () => {
    const p = finish(
      aRun(),
      { status: 'succeeded', reason: 'ok', events: [], data: { d: 1 }, node: 'z' },
      quiet,
    );
    expect(p.run.data).toEqual({ d: 1 });
    expect(p.events.at(-1)).toEqual({ type: 'run.succeeded', node: 'z', detail: { reason: 'ok' } });
  });
});

describe('proceed', () => {
  it('schedules the next node as a new step slot, with its message and a report', () => {
    const plan = proceed(aRun(), wf, { node: 'a', output: { a: 1 }, events: [] }, loud);
    expect(plan.run).toMatchObject({
      status: 'running',
      node: 'b',
      version: 5,
      data: { seen: true, a: 1 },
      step: { node: 'b', seq: 3, attempt: 1, notBefore: AT },
    });
    expect(types(plan)).toEqual([['step.scheduled', 'b']]);
    expect(plan.messages).toEqual([
      // The report of the new version rides on the step's own message.
      {
        message: stepTo(3, 'b', 5, ms(AT), { report: 5 }),
      },
    ]);
    expect(plan.lock).toBeUndefined();
  });

  it('sends only the step when the engine does not report', () => {
    expect(kinds(proceed(aRun(), wf, { node: 'a', events: [] }, quiet))).toEqual(['step']);
  });

  it('follows the edge the result names', () => {
    const plan = proceed(waitingAt(), wf, { node: 'gate', edge: 'rejected', events: [] }, quiet);
    expect(plan.run.node).toBe('fix');
    expect(plan.run.gate).toBeUndefined();
  });

  it('succeeds at a node without a way on, releasing the lock', () => {
    const plan = proceed(aRun({ node: 'c' }), wf, { node: 'c', output: { c: 1 }, events: [] }, quiet);
    expect(plan.run).toMatchObject({
      status: 'succeeded',
      reason: 'completed at c',
      data: { seen: true, c: 1 },
    });
    expect(plan.events).toEqual([{ type: 'run.succeeded', node: 'c', detail: { reason: 'completed at c' } }]);
    expect(plan.lock).toEqual({ release: 'o/r#1#w' });
    expect(kinds(plan)).toEqual(['report']);
  });

  it('numbers the first step after a version when the run has no step', () => {
    expect(
      proceed(waitingAt(), wf, { node: 'gate', edge: 'approved', events: [] }, quiet).run.step?.seq,
    ).toBe(5);
  });
});

describe('created', () => {
  const input = {
    id: 'r9',
    subject: { repo: 'o/r', issue: 2, key: 'o/r#2' },
    trigger: { source: 'test' as const, actor: 'ann' },
    input: { x: 1 },
    idempotencyKey: 'd-1',
    concurrency: 'attach',
  };

  it('is queued at the start node, version 1, step 1', () => {
    const { run } = created(wf, input, quiet);
    expect(run).toMatchObject({
      id: 'r9',
      status: 'queued',
      node: 'a',
      version: 1,
      eventSeq: 0,
      data: { x: 1 },
      step: { node: 'a', seq: 1, attempt: 1, notBefore: AT },
      createdAt: AT,
      updatedAt: AT,
    });
  });

  it('records who started it, how, and under which key', () => {
    const { events } = created(wf, input, quiet);
    expect(events).toEqual([
      {
        type: 'run.created',
        node: 'a',
        by: 'ann',
        detail: {
          workflow: 'w',
          workflowVersion: 3,
          subject: input.subject,
          trigger: input.trigger,
          idempotencyKey: 'd-1',
          concurrency: 'attach',
        },
      },
    ]);
  });

  it('locks its subject and workflow and sends its first step (and a report when reporting)', () => {
    expect(created(wf, input, quiet)).toMatchObject({
      lockKey: 'o/r#2#w',
      messages: [{ message: { kind: 'step', seq: 1 } }],
    });
    expect(created(wf, input, loud).messages.map((m) => m.message)).toEqual([
      expect.objectContaining({ kind: 'step', report: 1 }),
    ]);
  });
});

describe('onSignal: cancel', () => {
  it('cancels a live run, saying who and why', () => {
    const plan = planOf(onSignal(aRun(), { type: 'cancel', by: 'ann', reason: 'dup' }, wf, quiet));
    expect(plan.run).toMatchObject({ status: 'cancelled', reason: 'cancelled by ann: dup' });
    expect(plan.events).toEqual([
      { type: 'signal.cancel', node: 'a', by: 'ann', detail: { reason: 'dup' } },
      { type: 'run.cancelled', node: 'a', detail: { reason: 'cancelled by ann: dup' } },
    ]);
    expect(plan.lock).toEqual({ release: 'o/r#1#w' });
  });

  it('cancels a run whose workflow is gone', () => {
    expect(planOf(onSignal(aRun(), { type: 'cancel', by: 'ann' }, undefined, quiet)).run.status).toBe(
      'cancelled',
    );
  });

  it.each(['succeeded', 'failed', 'cancelled', 'expired'] as const)('refuses a %s run', (status) => {
    const d = refusalOf(onSignal(aRun({ status }), { type: 'cancel', by: 'ann' }, wf, quiet));
    expect(d.error).toBeInstanceOf(InvalidSignalError);
    expect(d.audit).toBeUndefined();
  });
});

describe('onSignal: retry', () => {
  it('runs a failed run again at its node, taking its subject lock again', () => {
    const plan = planOf(onSignal(failedRun(), { type: 'retry', by: 'ann' }, wf, loud));
    expect(plan.run).toMatchObject({
      status: 'running',
      node: 'b',
      version: 5,
      step: { node: 'b', seq: 5, attempt: 1, notBefore: AT },
    });
    for (const gone of ['reason', 'error', 'finishedAt', 'ttl'] as const)
      expect(plan.run[gone]).toBeUndefined();
    expect(plan.lock).toEqual({ acquire: 'o/r#1#w' });
    expect(types(plan)).toEqual([
      ['signal.retry', 'b'],
      ['step.scheduled', 'b'],
    ]);
    expect(plan.events[1]?.detail).toEqual({ attempt: 1, reason: 'retry' });
    expect(kinds(plan)).toEqual(['step']);
    expect(plan.messages[0]!.message).toMatchObject({ report: plan.run.version });
  });

  it('starts over at the start node when the run’s node is no longer in the workflow', () => {
    expect(
      planOf(onSignal(failedRun({ node: 'gone' }), { type: 'retry', by: 'x' }, wf, quiet)).run.node,
    ).toBe('a');
  });

  it('retries an expired run', () => {
    expect(
      planOf(onSignal(failedRun({ status: 'expired' }), { type: 'retry', by: 'x' }, wf, quiet)).run.status,
    ).toBe('running');
  });

  it.each(['queued', 'running', 'waiting', 'succeeded', 'cancelled'] as const)(
    'refuses a %s run',
    (status) => {
      expect(
        refusalOf(onSignal(aRun({ status }), { type: 'retry', by: 'x' }, wf, quiet)).error,
      ).toBeInstanceOf(InvalidSignalError);
    },
  );

  it('refuses when the workflow is gone', () => {
    expect(
      refusalOf(onSignal(failedRun(), { type: 'retry', by: 'x' }, undefined, quiet)).error,
    ).toBeInstanceOf(UnknownWorkflowError);
  });
});

describe('onSignal: approve and reject', () => {
  it('approves the gate: records the approval and goes on to the approved edge', () => {
    const plan = planOf(
      onSignal(waitingAt(), { type: 'approve', by: 'ann', binding: 'v1', comment: 'ok' }, wf, quiet),
    );
    expect(plan.run).toMatchObject({ status: 'running', node: 'c', version: 5 });
    expect(plan.run.gate).toBeUndefined();
    expect(plan.run.data.approval).toEqual({ by: 'ann', at: AT, binding: 'v1', bound: true });
    expect(plan.events).toEqual([
      { type: 'signal.approve', node: 'gate', by: 'ann', detail: { binding: 'v1', comment: 'ok' } },
      { type: 'node.completed', node: 'gate', detail: { edge: 'approved' } },
      { type: 'step.scheduled', node: 'c', detail: { attempt: 1 } },
    ]);
  });

  it('records a budget gate’s new cap with the approval', () => {
    const run = waitingAt({ kind: 'budget' });
    const plan = planOf(onSignal(run, { type: 'approve', by: 'ann', budget: 20 }, wf, quiet));
    expect(plan.run.data.approval).toMatchObject({ budget: 20, bound: false });
  });

  it('refuses a stale approval and has the refusal audited', () => {
    const d = refusalOf(onSignal(waitingAt(), { type: 'approve', by: 'ann', binding: 'v0' }, wf, quiet));
    expect(d.error).toBeInstanceOf(StaleApprovalError);
    expect(d.audit).toEqual({
      type: 'signal.approve.refused',
      node: 'gate',
      by: 'ann',
      detail: { reason: 'stale', approved: 'v0', current: 'v1' },
    });
  });

  it('refuses a decision that came after the gate expired', () => {
    const late = waitingAt({ expiresAt: plus(AT, -1) });
    const d = refusalOf(onSignal(late, { type: 'approve', by: 'ann' }, wf, quiet));
    expect(d.error).toBeInstanceOf(InvalidSignalError);
    expect(d.error.message).toContain('expired');
  });

  it.each([
    ['a running run', aRun()],
    ['an agent gate', waitingAt({ kind: 'agent' })],
  ])('refuses an approval of %s', (_name, run) => {
    expect(refusalOf(onSignal(run, { type: 'approve', by: 'ann' }, wf, quiet)).error).toBeInstanceOf(
      InvalidSignalError,
    );
  });

  it('refuses when the workflow is gone', () => {
    expect(
      refusalOf(onSignal(waitingAt(), { type: 'reject', by: 'ann' }, undefined, quiet)).error,
    ).toBeInstanceOf(UnknownWorkflowError);
  });

  it('follows the rejected edge when the gate has one', () => {
    const plan = planOf(onSignal(waitingAt(), { type: 'reject', by: 'bob', reason: 'no' }, wf, quiet));
    expect(plan.run.node).toBe('fix');
    expect(plan.run.data.rejection).toEqual({ by: 'bob', reason: 'rejected by bob: no' });
  });

  it('fails the run when the gate has no rejected edge', () => {
    const plan = planOf(
      onSignal(waitingAt({}, { workflow: 'bare' }), { type: 'reject', by: 'bob' }, bare, quiet),
    );
    expect(plan.run).toMatchObject({ status: 'failed', reason: 'rejected by bob' });
    expect(plan.lock).toEqual({ release: 'o/r#1#bare' });
  });
});

describe('onSignal: result', () => {
  const agentGate = () => waitingAt({ node: 'agent', kind: 'agent', correlation: 'c-1' });

  it('resumes the gate with the agent’s result under <node>Result', () => {
    const plan = planOf(
      onSignal(agentGate(), { type: 'result', by: 'bot', correlation: 'c-1', payload: { n: 1 } }, wf, quiet),
    );
    expect(plan.run).toMatchObject({ node: 'c', data: { agentResult: { n: 1 } } });
  });

  it.each(['ci', 'hold'] as const)('resumes a %s gate the same way', (kind) => {
    const run = waitingAt({ node: 'agent', kind, correlation: 'c-1' });
    expect(
      planOf(onSignal(run, { type: 'result', by: 'x', correlation: 'c-1', payload: {} }, wf, quiet)).run.node,
    ).toBe('c');
  });

  it('refuses a result for another correlation', () => {
    const d = refusalOf(
      onSignal(agentGate(), { type: 'result', by: 'bot', correlation: 'c-2', payload: {} }, wf, quiet),
    );
    expect(d.error).toBeInstanceOf(InvalidSignalError);
  });

  it('refuses a result at an approval gate', () => {
    expect(
      refusalOf(onSignal(waitingAt(), { type: 'result', by: 'x', payload: {} }, wf, quiet)).error,
    ).toBeInstanceOf(InvalidSignalError);
  });

  it('follows the failed edge of a failure when the gate has one', () => {
    const plan = planOf(
      onSignal(
        agentGate(),
        { type: 'result', by: 'bot', correlation: 'c-1', ok: false, payload: {} },
        wf,
        quiet,
      ),
    );
    expect(plan.run.node).toBe('fix');
  });

  it('fails the run on a failure without a failed edge, with the agent’s summary', () => {
    const run = waitingAt({ node: 'agent', kind: 'agent' }, { workflow: 'bare' });
    const plan = planOf(
      onSignal(run, { type: 'result', by: 'bot', ok: false, payload: { summary: 'tests red' } }, bare, quiet),
    );
    expect(plan.run).toMatchObject({
      status: 'failed',
      reason: 'agent reported failure: tests red',
      error: { name: 'AgentFailed', message: 'agent reported failure: tests red', node: 'agent' },
    });
  });
});

describe('onSignal: replan', () => {
  it('withdraws the gate and runs again from the node named, with the new data', () => {
    const signal = { type: 'replan' as const, by: 'ann', to: 'b', reason: 'edited', data: { plan: 2 } };
    const plan = planOf(onSignal(waitingAt(), signal, wf, loud));
    expect(plan.run).toMatchObject({
      status: 'running',
      node: 'b',
      data: { seen: true, plan: 2 },
      step: { node: 'b', seq: 5 },
    });
    expect(plan.run.gate).toBeUndefined();
    expect(plan.events.map((e) => e.type)).toEqual(['signal.replan', 'gate.withdrawn', 'step.scheduled']);
    expect(plan.events[1]?.detail).toEqual({ binding: 'v1', reason: 'edited' });
    expect(kinds(plan)).toEqual(['step']);
    expect(plan.messages[0]!.message).toMatchObject({ report: plan.run.version });
  });

  it('refuses a node the workflow does not have', () => {
    const d = onSignal(waitingAt(), { type: 'replan', by: 'ann', to: 'nope', reason: 'r' }, wf, quiet);
    expect(refusalOf(d).error.message).toContain('no node nope');
  });

  it('refuses when bound to a gate the run no longer shows', () => {
    const stale = onSignal(
      waitingAt(),
      { type: 'replan', by: 'a', to: 'b', reason: 'r', binding: 'v0' },
      wf,
      quiet,
    );
    expect(refusalOf(stale).error).toBeInstanceOf(InvalidSignalError);
    expect(refusalOf(stale).error.message).toContain('now waits for v1, not v0');
    const bound = onSignal(
      waitingAt(),
      { type: 'replan', by: 'a', to: 'b', reason: 'r', binding: 'v1' },
      wf,
      quiet,
    );
    expect(planOf(bound).run).toMatchObject({ status: 'running', node: 'b' });
  });

  it('refuses unless parked at an approval gate', () => {
    const d = onSignal(
      waitingAt({ kind: 'budget' }),
      { type: 'replan', by: 'a', to: 'b', reason: 'r' },
      wf,
      quiet,
    );
    expect(refusalOf(d).error).toBeInstanceOf(InvalidSignalError);
  });
});

describe('onSignal: note', () => {
  const note = {
    type: 'note' as const,
    by: 'ann',
    event: 'plan.edited' as const,
    detail: { v: 2 },
    data: { v: 2 },
  };

  it('only appends to a running run (its step’s commit reports it)', () => {
    expect(onSignal(aRun(), note, wf, quiet)).toEqual({
      kind: 'append',
      event: { type: 'plan.edited', node: 'a', by: 'ann', detail: { v: 2 } },
    });
  });

  it('bumps a waiting run and reports it, even without reporters', () => {
    const plan = planOf(onSignal(waitingAt(), note, wf, quiet));
    expect(plan.run).toMatchObject({ status: 'waiting', version: 5, data: { seen: true, v: 2 } });
    expect(plan.events).toEqual([{ type: 'plan.edited', node: 'gate', by: 'ann', detail: { v: 2 } }]);
    expect(plan.messages).toEqual([{ message: { kind: 'report', runId: 'r1', version: 5 } }]);
  });

  it('refuses a finished run', () => {
    expect(refusalOf(onSignal(aRun({ status: 'succeeded' }), note, wf, quiet)).error).toBeInstanceOf(
      InvalidSignalError,
    );
  });
});

describe('onGateChange', () => {
  const change = {
    expected: 'v1',
    binding: 'v2',
    data: { plan: 2 },
    prompt: 'new plan',
    event: { type: 'plan.edited' as const, detail: {} },
  };

  it('rebinds the gate to what it now shows, staying at it', () => {
    const d = onGateChange('r1', waitingAt(), change, loud);
    const plan = planOf(d);
    expect(plan.run).toMatchObject({
      status: 'waiting',
      version: 5,
      data: { plan: 2 },
      gate: { binding: 'v2', prompt: 'new plan' },
    });
    expect(plan.events).toEqual([{ type: 'plan.edited', node: 'gate', at: AT, detail: {} }]);
    expect(kinds(plan)).toEqual(['report']);
  });

  it('refuses a second editor (the gate shows something else now)', () => {
    expect(refusalOf(onGateChange('r1', waitingAt({ binding: 'v3' }), change, quiet)).error).toBeInstanceOf(
      StaleApprovalError,
    );
  });

  it.each([
    ['a missing run', null],
    ['a running run', aRun()],
    ['an agent gate', waitingAt({ kind: 'agent' })],
  ])('refuses %s', (_name, run) => {
    const d = refusalOf(onGateChange('r1', run, change, quiet));
    expect(d.error).toBeInstanceOf(InvalidSignalError);
    expect(d.error).not.toBeInstanceOf(StaleApprovalError);
  });
});

describe('isPending', () => {
  it.each([
    ['the pending step', aRun(), 2, true],
    ['an older step', aRun(), 1, false],
    ['a waiting run', waitingAt(), 2, false],
    ['a finished run', aRun({ status: 'succeeded' }), 2, false],
  ])('%s: %s', (_name, run, seq, pending) => {
    expect(isPending(run, seq)).toBe(pending);
  });
});

describe('onArrival', () => {
  const node = wf.node('b');
  const at = (iso: string) => ({ now: new Date(iso), owner: 'me', leaseGraceMs: 5_000, reporting: false });
  const atB = (over: Partial<Run> = {}) =>
    aRun({ node: 'b', step: { node: 'b', seq: 2, attempt: 1, notBefore: T0 }, ...over });

  it('leases a due step for the node’s timeout plus the grace', () => {
    const arrival = onArrival(atB({ status: 'queued' }), node, at(AT));
    expect(arrival).toEqual({
      kind: 'lease',
      attempt: 1,
      takeover: false,
      leased: {
        ...atB(),
        status: 'running',
        version: 5,
        updatedAt: AT,
        lease: { owner: 'me', seq: 2, until: plus(AT, node.timeoutMs + 5_000) },
      },
    });
  });

  it('holds a first try unwritten: the version read, with the lease it would write', () => {
    const run = atB({ status: 'queued' });
    expect(unwrittenLease(run, node, at(AT))).toEqual({
      ...run,
      status: 'running',
      lease: { owner: 'me', seq: 2, until: plus(AT, node.timeoutMs + 5_000) },
    });
  });

  it('sends an early message back for the rest of the wait, at most 15 minutes', () => {
    const soon = onArrival(
      atB({ step: { node: 'b', seq: 2, attempt: 1, notBefore: plus(AT, 2_500) } }),
      node,
      at(AT),
    );
    expect(soon).toEqual({
      kind: 'early',
      message: {
        message: stepTo(2, 'b', 4, ms(AT) + 2_500),
        delaySeconds: 3,
      },
    });
    const later = onArrival(
      atB({ step: { node: 'b', seq: 2, attempt: 1, notBefore: plus(AT, 3_600_000) } }),
      node,
      at(AT),
    );
    expect(later).toMatchObject({ kind: 'early', message: { delaySeconds: 900 } });
  });

  it('leaves a step alone while another worker’s lease is live', () => {
    const run = atB({ lease: { owner: 'other', seq: 2, until: plus(AT, 1) } });
    expect(onArrival(run, node, at(AT))).toEqual({ kind: 'busy' });
  });

  it('takes a lapsed lease over and counts the stopped worker’s attempt', () => {
    const run = atB({ lease: { owner: 'other', seq: 2, until: plus(AT, -1) } });
    const arrival = onArrival(run, node, at(AT));
    expect(arrival).toMatchObject({
      kind: 'lease',
      attempt: 2,
      takeover: true,
      leased: { step: { attempt: 2 }, lease: { owner: 'me' } },
    });
  });

  it('fails the run once workers stopped on every attempt', () => {
    const run = atB({
      step: { node: 'b', seq: 2, attempt: 3, notBefore: T0 },
      lease: { owner: 'o', seq: 2, until: T0 },
    });
    const arrival = onArrival(run, node, at(AT));
    if (arrival.kind !== 'exhausted') throw new Error(arrival.kind);
    expect(arrival.plan.run).toMatchObject({
      status: 'failed',
      reason: 'b did not finish after 3 attempts (the worker stopped each time)',
      error: { name: 'LeaseExpired', node: 'b', retryable: false },
    });
    expect(types(arrival.plan)).toEqual([
      ['step.failed', 'b'],
      ['run.failed', 'b'],
    ]);
  });

  it('names the commit error when the lease was given back after failed commits', () => {
    const lease = { owner: 'o', seq: 2, until: T0, error: 'throttled' };
    const run = atB({ step: { node: 'b', seq: 2, attempt: 3, notBefore: T0 }, lease });
    const arrival = onArrival(run, node, at(AT));
    expect(arrival.kind === 'exhausted' && arrival.plan.run.reason).toBe(
      'b could not commit after 3 attempts: throttled',
    );
  });
});

describe('onAttempt', () => {
  const leased = (node = 'b', over: Partial<Run> = {}) =>
    aRun({
      node,
      version: 5,
      step: { node, seq: 2, attempt: 1, notBefore: T0 },
      lease: { owner: 'me', seq: 2, until: plus(AT, 60_000) },
      ...over,
    });
  const ok = (result: NodeResult): Attempt => ({ ok: true, result, durationMs: 12 });
  const threw = (failure: unknown, events: NewEvent[] = []): Attempt => ({
    ok: false,
    failure,
    events,
    durationMs: 12,
  });
  const at = { ...quiet, random: () => 0.5 };

  it('commits a success and schedules the next node, after the node’s own events', () => {
    const plan = onAttempt(
      leased(),
      wf,
      wf.node('b'),
      1,
      ok({ output: { b: 1 }, events: [{ type: 'github.dry-run', detail: {} }] }),
      at,
    );
    expect(plan.expectedVersion).toBe(5);
    expect(plan.run).toMatchObject({
      version: 6,
      node: 'gate',
      data: { seen: true, b: 1 },
      step: { node: 'gate', seq: 3 },
    });
    expect(plan.run.lease).toBeUndefined();
    expect(plan.events).toEqual([
      { type: 'github.dry-run', detail: {} },
      { type: 'step.succeeded', node: 'b', detail: { attempt: 1, durationMs: 12 } },
      { type: 'step.scheduled', node: 'gate', detail: { attempt: 1 } },
    ]);
  });

  it('parks the run at a gate that expires after the wait asked for', () => {
    const plan = onAttempt(
      leased('gate'),
      wf,
      wf.node('gate'),
      1,
      ok({ wait: { kind: 'approval', binding: 'v1', expiresInMs: 1_000 } }),
      at,
    );
    expect(plan.run).toMatchObject({
      status: 'waiting',
      gate: { node: 'gate', kind: 'approval', binding: 'v1', expiresAt: plus(AT, 1_000) },
    });
    expect(plan.run.step).toBeUndefined();
    expect(plan.run.lease).toBeUndefined();
    expect(plan.events.map((e) => e.type)).toEqual(['step.succeeded', 'gate.opened']);
    expect(plan.messages).toEqual([]);
    expect(plan.lock).toBeUndefined();
  });

  it('succeeds the run at its last node', () => {
    const plan = onAttempt(leased('c'), wf, wf.node('c'), 1, ok({}), at);
    expect(plan.run).toMatchObject({ status: 'succeeded', reason: 'completed at c' });
    expect(types(plan)).toEqual([
      ['step.succeeded', 'c'],
      ['run.succeeded', 'c'],
    ]);
  });

  it('retries a retryable failure after a jittered backoff, as a new slot of the same step', () => {
    const emitted: NewEvent[] = [{ type: 'github.dry-run', detail: {} }];
    const plan = onAttempt(leased(), wf, wf.node('b'), 1, threw(new Error('flaky'), emitted), at);
    expect(plan.run).toMatchObject({
      status: 'running',
      node: 'b',
      step: { node: 'b', seq: 3, firstSeq: 2, attempt: 2, notBefore: plus(AT, 750) },
    });
    expect(plan.events).toEqual([
      { type: 'github.dry-run', detail: {} },
      {
        type: 'step.retry',
        node: 'b',
        detail: {
          attempt: 1,
          delayMs: 750,
          error: { name: 'Error', message: 'flaky', node: 'b', retryable: true },
        },
      },
    ]);
    expect(plan.messages).toEqual([
      {
        message: stepTo(3, 'b', 6, ms(AT) + 750),
        delaySeconds: 1,
      },
    ]);
  });

  it('keeps the first attempt’s seq across retries (its effects are found under it)', () => {
    const run = leased('b', { step: { node: 'b', seq: 3, firstSeq: 2, attempt: 2, notBefore: T0 } });
    expect(onAttempt(run, wf, wf.node('b'), 2, threw(new Error('x')), at).run.step).toMatchObject({
      seq: 4,
      firstSeq: 2,
    });
  });

  it('fails the run once the attempts are spent', () => {
    const plan = onAttempt(leased(), wf, wf.node('b'), 3, threw(new Error('flaky')), at);
    expect(plan.run).toMatchObject({ status: 'failed', reason: 'b failed after 3 attempts: flaky' });
    expect(types(plan)).toEqual([
      ['step.failed', 'b'],
      ['run.failed', 'b'],
    ]);
    expect(plan.lock).toEqual({ release: 'o/r#1#w' });
  });

  it.each([
    ['a non-retryable error', new NonRetryableError('bad input')],
    ['an error the node lists as non-retryable', Object.assign(new Error('x'), { name: 'Fatal' })],
  ])('fails the run at once on %s', (_name, err) => {
    const plan = onAttempt(leased(), wf, wf.node('b'), 1, threw(err), at);
    expect(plan.run.status).toBe('failed');
    expect(plan.run.reason).toBe(`b failed: ${err.message}`);
  });

  it('treats a thrown non-Error as a transient failure', () => {
    expect(toRunError('oops', 'b')).toEqual({ name: 'Error', message: 'oops', node: 'b', retryable: true });
    expect(onAttempt(leased(), wf, wf.node('b'), 1, threw('oops'), at).run.status).toBe('running');
  });
});

describe('chainNext', () => {
  const leased = aRun({
    node: 'a',
    version: 5,
    step: { node: 'a', seq: 2, attempt: 1, notBefore: T0 },
    lease: { owner: 'me', seq: 2, until: plus(AT, 60_000) },
  });
  const ok: Attempt = { ok: true, result: { output: { a: 1 } }, durationMs: 3 };
  const now = new Date(AT);
  const opts = { now, owner: 'me', leaseGraceMs: 5_000 };

  it('leases the step the plan schedules for now in the same commit, and drops its message and carried report', () => {
    const plan = onAttempt(leased, wf, wf.node('a'), 1, ok, { ...loud, random: () => 0.5 });
    expect(plan.messages).toHaveLength(1);

    const chained = chainNext(plan, wf.node('b'), opts);

    expect(chained?.report).toBe(plan.run.version);
    expect(chained?.plan.messages).toEqual([]);
    expect(chained?.plan.expectedVersion).toBe(plan.expectedVersion);
    expect(chained?.plan.events).toEqual(plan.events);
    expect(chained?.plan.run).toEqual({
      ...plan.run,
      status: 'running',
      step: { ...plan.run.step, attempt: 1 },
      // The node's timeout (30 s by default) and the grace, from now: as a lease write would.
      lease: { owner: 'me', seq: plan.run.step!.seq, until: plus(AT, 35_000) },
    });
  });

  it('chains nothing when no step is due now: a delayed retry, a gate, the end, another run', () => {
    const retry = onAttempt(
      aRun({ ...leased, node: 'b', step: { node: 'b', seq: 2, attempt: 1, notBefore: T0 } }),
      wf,
      wf.node('b'),
      1,
      { ok: false, failure: new Error('flaky'), events: [], durationMs: 3 },
      { ...quiet, random: () => 0.5 },
    );
    expect(retry.run.step?.node).toBe('b');
    expect(chainNext(retry, wf.node('b'), opts)).toBeUndefined();

    const ended = finish(leased, { status: 'succeeded', reason: 'done', events: [] }, quiet);
    expect(chainNext(ended, wf.node('a'), opts)).toBeUndefined();

    const elsewhere = onAttempt(leased, wf, wf.node('a'), 1, ok, { ...quiet, random: () => 0.5 });
    const moved: Plan = { ...elsewhere, run: { ...elsewhere.run, id: 'r2' } };
    expect(chainNext(moved, wf.node('b'), opts)).toBeUndefined();
  });
});

describe('fused', () => {
  const leased = aRun({
    node: 'a',
    version: 5,
    eventSeq: 10,
    step: { node: 'a', seq: 2, attempt: 1, notBefore: T0 },
    lease: { owner: 'me', seq: 2, until: plus(AT, 60_000) },
  });
  const ok = (output: Record<string, number>): Attempt => ({ ok: true, result: { output }, durationMs: 3 });
  const opts = { now: new Date(AT), owner: 'me', leaseGraceMs: 5_000 };

  it('commits two chained steps as one: the later run, the earlier expected version, both steps events, the later report', () => {
    const first = chainNext(
      onAttempt(leased, wf, wf.node('a'), 1, ok({ a: 1 }), { ...loud, random: () => 0.5 }),
      wf.node('b'),
      opts,
    )!.plan;
    // The next step runs on the run as the first commit would store it (its events counted).
    const stored = { ...first.run, eventSeq: first.run.eventSeq + first.events.length };
    const then = onAttempt(stored, wf, wf.node('b'), 1, ok({ b: 1 }), { ...loud, random: () => 0.5 });

    const both = fused(first, then);

    expect(both.expectedVersion).toBe(5);
    expect(both.run).toEqual({ ...then.run, eventSeq: 10 });
    expect(both.run.version).toBe(7);
    expect(both.run.data).toMatchObject({ a: 1, b: 1 });
    expect(both.events).toEqual([...first.events, ...then.events]);
    expect(both.messages).toEqual(then.messages);
    expect(both.lock).toBeUndefined();
  });

  it("keeps the earlier plan's messages but its report, and a lock change of either", () => {
    const base = onAttempt(leased, wf, wf.node('a'), 1, ok({ a: 1 }), { ...loud, random: () => 0.5 });
    const wake = { message: { kind: 'step' as const, runId: 'r2', seq: 1 } };
    const report = { message: { kind: 'report' as const, runId: 'r1', version: 6 } };
    const first: Plan = { ...base, messages: [wake, report], lock: { release: 'k' } };
    const then: Plan = { ...base, expectedVersion: 6, messages: [] };

    expect(fused(first, then)).toMatchObject({ messages: [wake], lock: { release: 'k' } });
    expect(fused(first, { ...then, lock: { acquire: 'k' } }).lock).toEqual({ acquire: 'k' });
  });
});

describe('onUncommittable', () => {
  const leased = aRun({ version: 5, lease: { owner: 'me', seq: 2, until: AT } });
  const err = Object.assign(new Error('Item size has exceeded the maximum allowed size'), {
    name: 'StoreValidationError',
  });

  it('fails the run from the leased state with the store’s reason', () => {
    const plan = onUncommittable(leased, wf.node('a'), 2, err, quiet);
    expect(plan.expectedVersion).toBe(5);
    expect(plan.run).toMatchObject({
      status: 'failed',
      reason: `a failed: ${err.message}`,
      error: { name: 'StoreValidationError', retryable: false, node: 'a' },
      data: { seen: true },
    });
    expect(plan.events.map((e) => e.type)).toEqual(['step.failed', 'run.failed']);
  });

  it('can end without the run data when that is what is over budget', () => {
    const plan = withoutData(onUncommittable(leased, wf.node('a'), 2, err, quiet));
    expect(plan.run.data).toEqual({ droppedData: 'over the size budget' });
    expect(plan.run.status).toBe('failed');
  });
});

describe('releasedLease', () => {
  it('shortens the lease to a backoff, remembers why, and sends the step after it', () => {
    const leased = aRun({ version: 5, lease: { owner: 'me', seq: 2, until: plus(AT, 60_000) } });
    const released = releasedLease(leased, wf.node('b'), 1, new Error('throttled'), {
      now: new Date(AT),
      random: () => 1,
    });
    expect(released.delayMs).toBe(1_000);
    expect(released.run).toMatchObject({
      version: 6,
      step: { seq: 2, notBefore: plus(AT, 1_000) },
      lease: { owner: 'me', seq: 2, until: plus(AT, 1_000), error: 'throttled' },
    });
    expect(released.message).toEqual({
      message: stepTo(2, 'a', 6, ms(AT) + 1_000),
      delaySeconds: 1,
    });
  });
});

describe('backoffDelay', () => {
  const policy = {
    maxAttempts: 9,
    initialDelayMs: 1_000,
    backoffCoefficient: 2,
    maxDelayMs: 5_000,
    nonRetryable: [],
  };
  it.each([
    [1, 0, 500],
    [1, 1, 1_000],
    [3, 1, 4_000],
    [5, 1, 5_000],
    [5, 0, 2_500],
  ])('attempt %i with random %d waits %i ms', (attempt, random, delay) => {
    expect(backoffDelay(policy, attempt, () => random)).toBe(delay);
  });
});

describe('messages', () => {
  it('delays a step message until its notBefore, capped at 15 minutes', () => {
    const run = aRun({ step: { node: 'a', seq: 2, attempt: 1, notBefore: plus(AT, 10_200) } });
    expect(stepMessage(run, ms(AT))).toEqual({
      message: stepTo(2, 'a', 4, ms(AT) + 10_200),
      delaySeconds: 11,
    });
    expect(stepMessage(run, ms(AT) - 3_600_000).delaySeconds).toBe(900);
    expect(stepMessage(run, ms(AT) + 10_000).delaySeconds).toBeUndefined();
  });

  it('reports a live state only when the engine reports, a final one always', () => {
    expect(messagesAfter(aRun(), quiet)).toEqual([]);
    expect(messagesAfter(aRun(), loud)).toEqual([{ message: { kind: 'report', runId: 'r1', version: 4 } }]);
    expect(messagesAfter(aRun({ status: 'failed' }), quiet)).toHaveLength(1);
  });

  it('carries the report on a step due now, and sends it apart from a delayed step', () => {
    const now = { message: { kind: 'step' as const, runId: 'r1', seq: 3 } };
    expect(messagesAfter(aRun(), loud, now)).toEqual([{ message: { ...now.message, report: 4 } }]);
    expect(messagesAfter(aRun(), quiet, now)).toEqual([now]);
    const later = { ...now, delaySeconds: 30 };
    expect(messagesAfter(aRun(), loud, later)).toEqual([
      later,
      { message: { kind: 'report', runId: 'r1', version: 4 } },
    ]);
  });
});

describe('onSweep', () => {
  const sweepAt = (at: string) => ({ at, reporting: false, enqueueGraceMs: 60_000 });

  it('expires a run past its workflow’s deadline, whatever it was doing', () => {
    const finding = onSweep(aRun(), withDeadline, sweepAt(plus(T0, 3_600_001)));
    if (finding.kind !== 'deadline') throw new Error(finding.kind);
    expect(finding.plan.run).toMatchObject({
      status: 'expired',
      reason: 'deadline of 3600000 ms passed at a',
    });
    expect(types(finding.plan)).toEqual([
      ['sweeper.deadline', 'a'],
      ['run.expired', 'a'],
    ]);
    expect(finding.plan.events[0]?.by).toBe('sweeper');
  });

  it('leaves a gate alone until it expires', () => {
    expect(onSweep(waitingAt(), wf, sweepAt(AT))).toEqual({ kind: 'none' });
  });

  it('expires the run at an expired gate without an expired edge', () => {
    const finding = onSweep(waitingAt({ kind: 'agent' }), wf, sweepAt(plus(AT, 60_001)));
    if (finding.kind !== 'gate-expired') throw new Error(finding.kind);
    expect(finding.plan.run.status).toBe('expired');
    expect(finding.plan.run.reason).toContain('without a result');
    expect(finding.plan.events[0]).toMatchObject({
      type: 'gate.expired',
      by: 'sweeper',
      detail: { kind: 'agent' },
    });
  });

  it('follows an expired gate’s expired edge when it has one', () => {
    const finding = onSweep(waitingAt(), expiring, sweepAt(plus(AT, 60_001)));
    expect(finding.kind === 'gate-expired' && finding.plan.run.node).toBe('fix');
  });

  it('re-sends a step whose lease lapsed', () => {
    const run = aRun({ lease: { owner: 'o', seq: 2, until: AT } });
    expect(onSweep(run, wf, sweepAt(plus(AT, 1)))).toEqual({
      kind: 'resend',
      step: run.step,
      leaseLapsed: true,
      message: {
        message: stepTo(2, 'a', 4, ms(T0)),
      },
    });
  });

  it('re-sends a step never picked up once the enqueue grace passed, not before', () => {
    expect(onSweep(aRun(), wf, sweepAt(plus(T0, 60_001)))).toMatchObject({
      kind: 'resend',
      leaseLapsed: false,
    });
    expect(onSweep(aRun(), wf, sweepAt(plus(T0, 59_999)))).toEqual({ kind: 'none' });
  });

  it('leaves a step under a live lease alone', () => {
    expect(onSweep(aRun({ lease: { owner: 'o', seq: 2, until: plus(AT, 1) } }), wf, sweepAt(AT))).toEqual({
      kind: 'none',
    });
  });
});
