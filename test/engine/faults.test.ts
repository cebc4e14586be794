/**
 * Fault tests of the durable run engine (issue 2): every test runs the real engine over a real
 * DynamoRunStore on DynamoDB Local and proves no run is lost or doubled, each step commits once
 * and no history event is lost or doubled. Time moves through the injected clock, not sleeps.
 */
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { Engine, type FaultPoint, type StepOutcome } from '../../lib/engine/engine.ts';
import { InvalidSignalError, NonRetryableError, RunConflictError } from '../../lib/engine/errors.ts';
import { ThrottledError } from '../../lib/engine/store-errors.ts';
import {
  type NodeDefinition,
  type RetryPolicy,
  Workflow,
  type WorkflowDefinition,
  WorkflowRegistry,
} from '../../lib/engine/workflow.ts';
import { InMemoryQueue } from '../../lib/queue/memory.ts';
import type { Outgoing } from '../../lib/queue/port.ts';
import { createTestStore } from '../support/dynamo.ts';
import { harness } from '../support/harness.ts';
import {
  countingStore,
  deferred,
  drive,
  expectContiguous,
  linearHistory,
  recordingReporter,
  type ThrottleName,
  testClock,
  throttlingClient,
  typesAndNodes,
} from './kit.ts';

const trigger = { source: 'test' as const };
const NODES = ['a', 'b', 'c'];

/** What a worker dying looks like to the engine: an exception out of the middle of a step. */
class WorkerCrash extends Error {
  override name = 'WorkerCrash';
}

/**
 * A linear workflow whose nodes each do one side effect through ctx.effect, counting handler
 * runs, side effects and the attempt numbers they were given.
 */
function countedWorkflow(nodes: string[] = NODES, node: Partial<NodeDefinition> = {}) {
  const handled: Record<string, number> = {};
  const effects: Record<string, number> = {};
  const attempts: Record<string, number[]> = {};
  const def: WorkflowDefinition = {
    name: 'linear',
    version: 1,
    start: nodes[0]!,
    nodes: Object.fromEntries(
      nodes.map((n) => [
        n,
        {
          ...node,
          handler: async (ctx) => {
            handled[n] = (handled[n] ?? 0) + 1;
            attempts[n] = [...(attempts[n] ?? []), ctx.attempt];
            const sent = await ctx.effect('send', async () => {
              effects[n] = (effects[n] ?? 0) + 1;
              return `${n}-sent`;
            });
            return { output: { [n]: sent } };
          },
        },
      ]),
    ),
    edges: nodes.slice(1).map((to, i) => ({ from: nodes[i]!, to })),
  };
  return { def, handled, effects, attempts, once: Object.fromEntries(nodes.map((n) => [n, 1])) };
}

describe('a worker that dies mid-step', () => {
  const points: FaultPoint[] = ['after-lease', 'after-effect', 'before-enqueue', 'after-commit'];
  // `chained`: each step runs the next in the same invocation (leased by its commit, no message
  // of its own), so a crash leaves the next step to the sweeper once its lease lapses.
  const cases = points.flatMap((point) =>
    [0, 8].flatMap((chainSteps) => [
      {
        point,
        message: 'redelivered',
        maxReceives: 5,
        chainSteps,
        how: chainSteps ? 'chained' : 'one per message',
      },
      { point, message: 'lost', maxReceives: 1, chainSteps, how: chainSteps ? 'chained' : 'one per message' },
    ]),
  );

  it.each(cases)(
    'at $point of every step ($how), its message $message, is resumed by the sweeper with every step and effect done once',
    async ({ point, maxReceives, chainSteps }) => {
      const clock = testClock();
      const counting = await countingStore();
      const queue = new InMemoryQueue({ timeScale: 0.001, redeliveryMs: 5, maxReceives });
      const wf = countedWorkflow();
      const crashed = new Set<string>();
      const h = await harness([wf.def], {
        store: counting.store,
        queue,
        now: clock.now,
        chainSteps,
        // Crash once per step at this point (a lease takeover keeps eventSeq, so it does not crash again).
        faults: (p, run) => {
          const key = `${run.eventSeq}`;
          if (p !== point || crashed.has(key)) return;
          crashed.add(key);
          throw new WorkerCrash(`worker died ${p}`);
        },
      });

      const { run } = await h.engine.startRun({ workflow: 'linear', subject: 'o/r#1', trigger });
      const done = await drive(h, clock, run.id);

      expect(crashed.size).toBe(NODES.length);
      expect(done.status).toBe('succeeded');
      expect(wf.effects).toEqual(wf.once);
      expect(counting.count('createRun')).toBe(1);
      expect(counting.count('commit')).toBe(NODES.length);
      const events = await h.store.listEvents(run.id);
      expect(typesAndNodes(events)).toEqual(linearHistory(NODES));
      expectContiguous(events);
      expect((await h.store.listRuns({ subject: 'o/r#1' })).map((r) => r.id)).toEqual([run.id]);
    },
  );

  it.each(['after-lease', 'after-effect'] as const)(
    'at %s of a chained step held by the uncommitted commit of the steps before it: those re-run, their effect once',
    async (point) => {
      const clock = testClock();
      const counting = await countingStore();
      const queue = new InMemoryQueue({ timeScale: 0.001, redeliveryMs: 5, maxReceives: 5 });
      // a and d have an effect, b and c none: a's commit waits for b's, b's for c's (fused), and
      // c dies before any is written; d's effect writes the steps before it first.
      const wf = countedWorkflow(['a', 'b', 'c', 'd']);
      for (const n of ['b', 'c']) {
        wf.def.nodes[n] = {
          handler: async () => {
            wf.handled[n] = (wf.handled[n] ?? 0) + 1;
            return { output: { [n]: 1 } };
          },
        };
      }
      let crashed = 0;
      const h = await harness([wf.def], {
        store: counting.store,
        queue,
        now: clock.now,
        chainSteps: 8,
        faults: (p, run) => {
          if (p !== point || run.step?.node !== 'c' || crashed++ > 0) return;
          throw new WorkerCrash(`worker died ${p}`);
        },
      });

      const { run } = await h.engine.startRun({ workflow: 'linear', subject: 'o/r#9', trigger });
      const done = await drive(h, clock, run.id);

      expect(crashed).toBeGreaterThan(0);
      expect(done.status).toBe('succeeded');
      // a's effect once (its claim outlived the crash); a and b ran again, and c if it ran before.
      expect(wf.effects).toEqual({ a: 1, d: 1 });
      expect(wf.handled).toEqual({ a: 2, b: 2, c: point === 'after-lease' ? 1 : 2, d: 1 });
      const events = await h.store.listEvents(run.id);
      expect(typesAndNodes(events)).toEqual(linearHistory(['a', 'b', 'c', 'd']));
      expectContiguous(events);
      // The crashed chain wrote nothing; the second one: a, b and c before d's effect, then d.
      expect(counting.count('commit')).toBe(2);
    },
  );

  it('that never sent the start message leaves the run to the sweeper, which starts it once', async () => {
    /** The worker that created the run died before its message left: the first batch is lost. */
    class LosesFirstBatch extends InMemoryQueue {
      private lost = false;
      override async send(batch: Outgoing[]): Promise<void> {
        if (!this.lost) {
          this.lost = true;
          return;
        }
        await super.send(batch);
      }
    }
    const clock = testClock();
    const counting = await countingStore();
    const wf = countedWorkflow();
    const h = await harness([wf.def], {
      store: counting.store,
      queue: new LosesFirstBatch({ timeScale: 0.001, redeliveryMs: 5 }),
      now: clock.now,
    });

    const { run } = await h.engine.startRun({ workflow: 'linear', subject: 'o/r#26', trigger });
    await h.settle();
    const stranded = await h.store.getRun(run.id);
    const done = await drive(h, clock, run.id);

    expect(stranded?.status).toBe('queued');
    expect(done.status).toBe('succeeded');
    expect(wf.handled).toEqual(wf.once);
    expect(counting.count('commit')).toBe(NODES.length);
    expect(typesAndNodes(await h.store.listEvents(run.id))).toEqual(linearHistory(NODES));
  });

  it('counts a lease takeover as an attempt and fails the run once a step has crashed the worker every time', async () => {
    const clock = testClock();
    const counting = await countingStore();
    const wf = countedWorkflow(['a', 'flaky', 'c'], { retry: { maxAttempts: 3 } });
    const h = await harness([wf.def], {
      store: counting.store,
      now: clock.now,
      faults: (p, run) => {
        if (p === 'after-effect' && run.step?.node === 'flaky') throw new WorkerCrash('worker died in flaky');
      },
    });

    const { run } = await h.engine.startRun({ workflow: 'linear', subject: 'o/r#2', trigger });
    const done = await drive(h, clock, run.id);

    expect(done).toMatchObject({
      status: 'failed',
      reason: 'flaky did not finish after 3 attempts (the worker stopped each time)',
      error: { name: 'LeaseExpired', node: 'flaky', retryable: false },
    });
    expect(wf.attempts.flaky).toEqual([1, 2, 3]);
    expect(wf.effects).toEqual({ a: 1, flaky: 1 });
    expect(wf.handled.c).toBeUndefined();
    expect(counting.count('commit')).toBe(2);
    const events = await h.store.listEvents(run.id);
    expect(typesAndNodes(events).slice(-2)).toEqual([
      ['step.failed', 'flaky'],
      ['run.failed', 'flaky'],
    ]);
    expectContiguous(events);
  });
});

/**
 * A step's lease, written before its node runs (the default), or, for a node marked `lazyLease`,
 * by a first try only when it needs one (steps.ts, hold.ts): before its first effect. Copies of a
 * message that arrive together then each run the handler up to its first effect (at least once,
 * as a takeover always did); one of them leases and acts, the others lose. Effects and commits
 * stay exactly once. `lazyLeaseMs: 0` turns lazy leases off in the engine.
 */
const LEASES = [
  { lease: 'written first', lazyLease: false, lazyLeaseMs: undefined },
  { lease: 'written when needed (lazyLease)', lazyLease: true, lazyLeaseMs: undefined },
  { lease: 'written first, lazy leases off (lazyLeaseMs 0)', lazyLease: true, lazyLeaseMs: 0 },
] as const;

/** What a step's handler ran: exactly once under a lease written first, else at least once. */
function expectHandled(
  handled: Record<string, number>,
  once: Record<string, number>,
  lease: { lazyLease: boolean; lazyLeaseMs: number | undefined },
) {
  if (!lease.lazyLease || lease.lazyLeaseMs === 0) {
    expect(handled).toEqual(once);
    return;
  }
  expect(Object.keys(handled).sort()).toEqual(Object.keys(once).sort());
  for (const n of Object.values(handled)) expect(n).toBeGreaterThanOrEqual(1);
}

describe('duplicate queue messages', () => {
  /** At-least-once taken literally: every message is delivered five times. */
  class FiveTimesQueue extends InMemoryQueue {
    override async send(batch: Outgoing[]): Promise<void> {
      await super.send(batch.flatMap((o) => [o, o, o, o, o]));
    }
  }

  it.each(
    [
      { how: 'one per message', chainSteps: 0 },
      { how: 'chained', chainSteps: 8 },
    ].flatMap((c) => LEASES.map((l) => ({ ...c, ...l }))),
  )(
    'run every step and every side effect once when each message arrives five times ($how, lease $lease)',
    async ({ chainSteps, lazyLeaseMs, lazyLease }) => {
      const counting = await countingStore();
      const wf = countedWorkflow(NODES, { lazyLease });
      const reporter = recordingReporter();
      const h = await harness([wf.def], {
        store: counting.store,
        queue: new FiveTimesQueue({ timeScale: 0.001, redeliveryMs: 5 }),
        reporters: [reporter],
        chainSteps,
        ...(lazyLeaseMs !== undefined ? { lazyLeaseMs } : {}),
      });

      const { run } = await h.engine.startRun({ workflow: 'linear', subject: 'o/r#3', trigger });
      await h.settle();

      expect((await h.store.getRun(run.id))?.status).toBe('succeeded');
      expectHandled(wf.handled, wf.once, { lazyLease, lazyLeaseMs });
      expect(wf.effects).toEqual(wf.once);
      expect(counting.count('commit')).toBe(NODES.length);
      const events = await h.store.listEvents(run.id);
      expect(typesAndNodes(events)).toEqual(linearHistory(NODES));
      expectContiguous(events);
      const versions = reporter.seen.map((s) => s.version);
      expect(new Set(versions).size).toBe(versions.length);
      expect(reporter.seen.at(-1)?.status).toBe('succeeded');
    },
  );

  it.each(LEASES)(
    'commit a step once when the same step message is handled five times at once (lease $lease)',
    async ({ lazyLeaseMs, lazyLease }) => {
      const counting = await countingStore();
      const wf = countedWorkflow(['a'], { lazyLease });
      const h = await harness([wf.def], {
        store: counting.store,
        autoConsume: false,
        ...(lazyLeaseMs !== undefined ? { lazyLeaseMs } : {}),
      });
      const { run } = await h.engine.startRun({ workflow: 'linear', subject: 'o/r#4', trigger });

      const outcomes = await Promise.all(
        Array.from({ length: 5 }, () => h.engine.handle({ kind: 'step', runId: run.id, seq: 1 })),
      );

      expect(outcomes.filter((o) => o === 'committed')).toHaveLength(1);
      expect(
        outcomes.filter((o) => o !== 'committed').every((o) => ['busy', 'lost', 'stale'].includes(o)),
      ).toBe(true);
      expectHandled(wf.handled, { a: 1 }, { lazyLease, lazyLeaseMs });
      expect(wf.effects).toEqual({ a: 1 });
      expect(counting.count('commit')).toBe(1);
    },
  );
});

describe('one worker handling the same step message twice in one millisecond', () => {
  // Both take their lease at the same instant: leases that differed only by their time would be
  // the same item, and the write refused for its version would take the other's for its own.
  it.each([
    { how: 'leased from the message', hinted: true, lazyLease: false },
    { how: 'leased after a read', hinted: false, lazyLease: false },
    { how: 'leased before its effect', hinted: true, lazyLease: true },
  ])('runs the step and its effect once ($how)', async ({ hinted, lazyLease }) => {
    const counting = await countingStore();
    const wf = countedWorkflow(['a'], { lazyLease });
    const frozen = new Date();
    const h = await harness([wf.def], { store: counting.store, autoConsume: false, now: () => frozen });
    await h.engine.startRun({ workflow: 'linear', subject: 'o/r#40', trigger });
    const [sent] = h.queue.pending.splice(0);
    const message = hinted ? sent! : { kind: 'step' as const, runId: sent!.runId!, seq: 1 };

    const outcomes = await Promise.all([h.engine.handle(message), h.engine.handle(message)]);

    expect(outcomes.filter((o) => o === 'committed')).toHaveLength(1);
    expectHandled(wf.handled, { a: 1 }, { lazyLease, lazyLeaseMs: undefined });
    expect(wf.effects).toEqual({ a: 1 });
    // One lease written: the other copy's write is refused (before its node runs, or its effect).
    expect(counting.count('update')).toBe(1);
  });
});

describe('20 concurrent workers on one run', () => {
  it.each(LEASES)('commit each step exactly once (lease $lease)', async ({ lazyLeaseMs, lazyLease }) => {
    const counting = await countingStore();
    const wf = countedWorkflow(['a', 'b', 'c', 'd'], { lazyLease });
    const workflows = new WorkflowRegistry([new Workflow(wf.def)]);
    const queue = new InMemoryQueue(); // no consumer: the test delivers every step to all workers
    const workers = Array.from(
      { length: 20 },
      (_, i) =>
        new Engine({
          store: counting.store,
          queue,
          workflows,
          services: {},
          owner: `worker-${i}`,
          ...(lazyLeaseMs !== undefined ? { lazyLeaseMs } : {}),
        }),
    );
    const { run } = await workers[0]!.startRun({ workflow: 'linear', subject: 'o/r#6', trigger });

    const perStep: StepOutcome[][] = [];
    for (let current = run; current.step; current = (await counting.store.getRun(run.id))!) {
      const seq = current.step.seq;
      perStep.push(await Promise.all(workers.map((w) => w.executeStep(run.id, seq))));
    }

    expect(perStep).toHaveLength(4);
    for (const outcomes of perStep) expect(outcomes.filter((o) => o === 'committed')).toHaveLength(1);
    expectHandled(wf.handled, { a: 1, b: 1, c: 1, d: 1 }, { lazyLease, lazyLeaseMs });
    expect(wf.effects).toEqual({ a: 1, b: 1, c: 1, d: 1 });
    expect(counting.count('commit')).toBe(4);
    const events = await counting.store.listEvents(run.id);
    expect(typesAndNodes(events)).toEqual(linearHistory(['a', 'b', 'c', 'd']));
    expectContiguous(events);
  });
});

describe('conditional-check failures', () => {
  it.each(['after-lease', 'after-effect'] as const)(
    "a cancel landing %s makes the step's commit lose, and the run stays cancelled",
    async (point) => {
      const counting = await countingStore();
      const wf = countedWorkflow(['a', 'b']);
      let engine: Engine | undefined;
      const h = await harness([wf.def], {
        store: counting.store,
        autoConsume: false,
        faults: async (p, run) => {
          if (p === point) await engine!.signal(run.id, { type: 'cancel', by: 'ops', reason: 'stop' });
        },
      });
      engine = h.engine as Engine;
      const { run } = await h.engine.startRun({ workflow: 'linear', subject: 'o/r#7', trigger });

      const outcome = await h.engine.executeStep(run.id, 1);

      expect(outcome).toBe('lost');
      expect(await h.store.getRun(run.id)).toMatchObject({
        status: 'cancelled',
        reason: 'cancelled by ops: stop',
      });
      expect(counting.count('commit')).toBe(1);
      const events = await h.store.listEvents(run.id);
      expect(events.map((e) => e.type)).toEqual(['run.created', 'signal.cancel', 'run.cancelled']);
      expectContiguous(events);
    },
  );

  it("a lease taken over by another worker makes the slow worker's commit lose, and the side effect runs once", async () => {
    const clock = testClock();
    const counting = await countingStore();
    const entered = deferred();
    const release = deferred();
    let effects = 0;
    const def: WorkflowDefinition = {
      name: 'slow',
      version: 1,
      start: 'a',
      nodes: {
        a: {
          handler: async (ctx) => {
            if (ctx.attempt === 1) {
              entered.resolve();
              await release.promise;
            }
            await ctx.effect('send', async () => ++effects);
            return { output: { attempt: ctx.attempt } };
          },
        },
      },
      edges: [],
    };
    const h = await harness([def], { store: counting.store, autoConsume: false, now: clock.now });
    const takeover = new Engine({
      store: counting.store,
      queue: h.queue,
      workflows: h.engine.workflows,
      services: {},
      now: clock.now,
    });
    const { run } = await h.engine.startRun({ workflow: 'slow', subject: 'o/r#8', trigger });

    const slow = h.engine.executeStep(run.id, 1);
    await entered.promise;
    clock.advance(10 * 60_000);
    const fast = await takeover.executeStep(run.id, 1);
    release.resolve();

    expect([await slow, fast]).toEqual(['lost', 'committed']);
    expect(effects).toBe(1);
    expect(await h.store.getRun(run.id)).toMatchObject({ status: 'succeeded', data: { attempt: 2 } });
    expect(counting.count('commit')).toBe(1);
    const events = await h.store.listEvents(run.id);
    expect(typesAndNodes(events)).toEqual(linearHistory(['a']));
  });

  it('two approvals given at once move the run once and refuse the other', async () => {
    const counting = await countingStore();
    const def: WorkflowDefinition = {
      name: 'approve',
      version: 1,
      start: 'ask',
      nodes: {
        ask: { handler: async () => ({ wait: { kind: 'approval', expiresInMs: 3_600_000 } }) },
        ship: { handler: async () => ({ output: { shipped: true } }) },
      },
      edges: [{ from: 'ask', to: 'ship', on: 'approved' }],
    };
    const h = await harness([def], { store: counting.store });
    const { run } = await h.engine.startRun({ workflow: 'approve', subject: 'o/r#27', trigger });
    await h.settle();
    const commitsBefore = counting.count('commit');

    const results = await Promise.allSettled([
      h.engine.signal(run.id, { type: 'approve', by: 'alice' }),
      h.engine.signal(run.id, { type: 'approve', by: 'bob' }),
    ]);
    await h.settle();

    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toBeInstanceOf(InvalidSignalError);
    expect((await h.store.getRun(run.id))?.status).toBe('succeeded');
    // The approval's advance, then the ship step.
    expect(counting.count('commit') - commitsBefore).toBe(2);
    const events = await h.store.listEvents(run.id);
    expect(events.filter((e) => e.type === 'signal.approve')).toHaveLength(1);
    expectContiguous(events);
  });

  it('an audit event written between lease and commit does not make the commit lose', async () => {
    const wf = countedWorkflow(['a']);
    let engine: Engine | undefined;
    const h = await harness([wf.def], {
      autoConsume: false,
      faults: async (p, run) => {
        if (p === 'after-lease')
          await engine!.recordEvent(run.id, { type: 'console.action', by: 'bob', detail: {} });
      },
    });
    engine = h.engine as Engine;
    const { run } = await h.engine.startRun({ workflow: 'linear', subject: 'o/r#9', trigger });

    const outcome = await h.engine.executeStep(run.id, 1);

    expect(outcome).toBe('committed');
    const events = await h.store.listEvents(run.id);
    expect(events.map((e) => e.type)).toEqual([
      'run.created',
      'console.action',
      'step.succeeded',
      'run.succeeded',
    ]);
  });
});

describe('a throttled DynamoDB call', () => {
  const names: ThrottleName[] = ['ThrottlingException', 'ProvisionedThroughputExceededException'];

  /** One store operation per row, with the DynamoDB command it sends first. */
  const operations = [
    // A creation is single conditional puts (the listing item first here, then the run's).
    { op: 'createRun', command: 'PutItemCommand' },
    // A commit is one conditional PutItem of the run (its events carried in it); a transaction
    // only with a subject lock or events too large to carry.
    { op: 'commit', command: 'PutItemCommand' },
    { op: 'update', command: 'PutItemCommand' },
    // A step message's lease: one UpdateItem, no read first.
    { op: 'leaseStep', command: 'UpdateItemCommand' },
    { op: 'getRun', command: 'GetItemCommand' },
    { op: 'listEvents', command: 'GetItemCommand' },
    { op: 'listRuns', command: 'QueryCommand' },
    { op: 'listActive', command: 'QueryCommand' },
    { op: 'appendEvent', command: 'GetItemCommand' },
    { op: 'getReportState', command: 'QueryCommand' },
    { op: 'claimReport', command: 'UpdateItemCommand' },
    { op: 'getEffect', command: 'GetItemCommand' },
    { op: 'claimEffect', command: 'PutItemCommand' },
    { op: 'recordEffect', command: 'UpdateItemCommand' },
    { op: 'kvGet', command: 'GetItemCommand' },
    { op: 'kvPut', command: 'PutItemCommand' },
    { op: 'kvList', command: 'QueryCommand' },
  ] as const;
  type Op = (typeof operations)[number]['op'];

  async function prepared(maxAttempts = 3) {
    const t = throttlingClient(maxAttempts);
    const store = await createTestStore({ client: t.client });
    const h = await harness([countedWorkflow(['a']).def], { store, autoConsume: false });
    const { run } = await h.engine.startRun({ workflow: 'linear', subject: 'o/r#10', trigger });
    const fence = { version: run.version, owner: 'w', now: new Date().toISOString() };
    const FX = { scope: 'run', name: 'fx' } as const;
    const act: Record<Op, () => Promise<unknown>> = {
      createRun: () => store.createRun({ run: { ...run, id: `${run.id}x` }, events: [] }),
      commit: () =>
        store.commit({ run: { ...run, version: run.version + 1 }, expectedVersion: run.version, events: [] }),
      update: () => store.update({ ...run, version: run.version + 1 }, run.version),
      leaseStep: () =>
        store.leaseStep(run.id, {
          seq: 1,
          version: run.version,
          lease: { owner: 'w.1', seq: 1, until: new Date(Date.now() + 60_000).toISOString() },
          at: new Date().toISOString(),
        }),
      getRun: () => store.getRun(run.id),
      listEvents: () => store.listEvents(run.id),
      listRuns: () => store.listRuns({ subject: 'o/r#10' }),
      listActive: () => store.listActive(),
      appendEvent: () => store.appendEvent(run.id, { type: 'console.action', detail: {} }),
      getReportState: () => store.getReportState(run.id),
      claimReport: () =>
        store.claimReport(
          run.id,
          1,
          'w',
          new Date(Date.now() + 1000).toISOString(),
          new Date().toISOString(),
        ),
      getEffect: () => store.getEffect(run.id, FX),
      claimEffect: () => store.claimEffect(run.id, FX, fence, 'c'),
      recordEffect: () => store.recordEffect(run.id, FX, 'c', 1),
      kvGet: () => store.kvGet('g', 'k'),
      kvPut: () => store.kvPut('g', 'k', 1),
      kvList: () => store.kvList('g'),
    };
    return { t, store, run, act };
  }

  const retried = names.flatMap((name) =>
    operations
      .filter((o) => ['createRun', 'commit', 'update', 'leaseStep', 'getRun', 'listActive'].includes(o.op))
      .map((o) => ({ ...o, name })),
  );

  it.each(retried)('succeeds on the third try after $op gets two $name', async ({ op, command, name }) => {
    const { t, act } = await prepared(3);
    t.throttle(command, 2, name);

    await expect(act[op]()).resolves.not.toThrow();

    // createRun's listing put is tried three times, then the run's put once.
    expect(t.attempts(command)).toBe(op === 'createRun' ? 4 : 3);
  });

  it.each(operations)(
    'makes $op throw a retryable ThrottledError once the SDK retries are exhausted',
    async ({ op, command }) => {
      const { t, act } = await prepared(3);
      t.throttle(command, 3);

      const error = await act[op]().then(
        () => undefined,
        (err: unknown) => err,
      );

      expect(error).toBeInstanceOf(ThrottledError);
      expect(error).toMatchObject({ retryable: true });
      expect(t.attempts(command)).toBe(3);
    },
  );

  it('fails a lease write past its retries, and the redelivered message finishes the run', async () => {
    const t = throttlingClient(3);
    const counting = await countingStore({ client: t.client });
    const wf = countedWorkflow(['a', 'b']);
    const h = await harness([wf.def], { store: counting.store, autoConsume: false });
    const errors: unknown[] = [];
    const { run } = await h.engine.startRun({ workflow: 'linear', subject: 'o/r#11', trigger });
    // A step message leases its step in one UpdateItem (leaseStep).
    t.throttle('UpdateItemCommand', 3);

    h.queue.consume(async (m) => {
      await h.engine.handle(m).catch((err: unknown) => {
        errors.push(err);
        throw err;
      });
    });
    await h.settle();

    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(ThrottledError);
    expect((await h.store.getRun(run.id))?.status).toBe('succeeded');
    expect(wf.effects).toEqual({ a: 1, b: 1 });
    expect(counting.count('commit')).toBe(2);
    expect(typesAndNodes(await h.store.listEvents(run.id))).toEqual(linearHistory(['a', 'b']));
  });

  it('fails the attempt whose lease, written before its effect, is throttled past its retries, and retries it', async () => {
    const t = throttlingClient(3);
    const counting = await countingStore({ client: t.client });
    const wf = countedWorkflow(['a', 'b'], { lazyLease: true });
    const h = await harness([wf.def], { store: counting.store, autoConsume: false });
    const errors: unknown[] = [];
    const { run } = await h.engine.startRun({ workflow: 'linear', subject: 'o/r#12', trigger });
    // The first step is read, not leased; its effect leases it first, in one UpdateItem.
    t.throttle('UpdateItemCommand', 3);

    h.queue.consume(async (m, delivery) => {
      await h.engine.handle(m, undefined, delivery).catch((err: unknown) => {
        errors.push(err);
        throw err;
      });
    });
    await h.settle();

    expect(errors).toEqual([]);
    expect((await h.store.getRun(run.id))?.status).toBe('succeeded');
    expect(wf.attempts.a).toEqual([1, 2]);
    expect(wf.effects).toEqual({ a: 1, b: 1 });
    expect(counting.count('commit')).toBe(3);
    const events = typesAndNodes(await h.store.listEvents(run.id));
    expect(events.slice(0, 2)).toEqual([
      ['run.created', 'a'],
      ['step.retry', 'a'],
    ]);
    expect(events.slice(2)).toEqual(linearHistory(['a', 'b']).slice(1));
  });

  it('fails a step commit past its retries, and the sweeper resumes the step once its lease lapses', async () => {
    const t = throttlingClient(3);
    const clock = testClock();
    const counting = await countingStore({ client: t.client });
    const wf = countedWorkflow(['a', 'b']);
    // Armed once the first step's handler is done, so that the commit is what is throttled.
    let armed = false;
    const h = await harness([wf.def], {
      store: counting.store,
      autoConsume: false,
      now: clock.now,
      faults: (point) => {
        if (point !== 'after-effect' || armed) return;
        armed = true;
        t.throttle('PutItemCommand', 3);
      },
    });
    const { run } = await h.engine.startRun({ workflow: 'linear', subject: 'o/r#12', trigger });

    h.queue.consume(async (m) => void (await h.engine.handle(m)));
    const done = await drive(h, clock, run.id);

    expect(done.status).toBe('succeeded');
    expect(wf.handled).toEqual({ a: 2, b: 1 });
    expect(wf.effects).toEqual({ a: 1, b: 1 });
    expect(counting.count('commit')).toBe(2);
    expect(typesAndNodes(await h.store.listEvents(run.id))).toEqual(linearHistory(['a', 'b']));
  });
});

describe('a gate', () => {
  function gated(opts: { kind?: 'approval' | 'agent'; expiredEdge?: boolean } = {}) {
    const def: WorkflowDefinition = {
      name: 'gated',
      version: 1,
      start: 'ask',
      nodes: {
        ask: { handler: async () => ({ wait: { kind: opts.kind ?? 'approval', expiresInMs: 60_000 } }) },
        ship: { handler: async () => ({ output: { shipped: true } }) },
        escalate: { handler: async () => ({ output: { escalated: true } }) },
      },
      edges: [
        { from: 'ask', to: 'ship', on: opts.kind === 'agent' ? 'done' : 'approved' },
        ...(opts.expiredEdge ? [{ from: 'ask', to: 'escalate', on: 'expired' }] : []),
      ],
    };
    return def;
  }

  it.each([
    { kind: 'approval', missing: 'decision' },
    { kind: 'agent', missing: 'result' },
  ] as const)('expires with a reason once the sweeper runs past an $kind gate', async ({ kind, missing }) => {
    const clock = testClock();
    const reporter = recordingReporter();
    const h = await harness([gated({ kind })], { now: clock.now, reporters: [reporter] });
    const { run } = await h.engine.startRun({ workflow: 'gated', subject: 'o/r#13', trigger });
    await h.settle();
    const parked = await h.store.getRun(run.id);

    clock.advance(61_000);
    const swept = await h.engine.sweep();
    await h.settle();

    const done = await h.store.getRun(run.id);
    expect(swept.expired).toBe(1);
    expect(done).toMatchObject({
      status: 'expired',
      reason: `ask expired at ${parked?.gate?.expiresAt} without a ${missing}`,
    });
    expect((await h.store.listEvents(run.id)).map((e) => e.type).slice(-2)).toEqual([
      'gate.expired',
      'run.expired',
    ]);
    expect(reporter.seen.at(-1)).toMatchObject({ status: 'expired', reason: done?.reason });
  });

  it('follows its expired edge when the workflow has one', async () => {
    const clock = testClock();
    const h = await harness([gated({ expiredEdge: true })], { now: clock.now });
    const { run } = await h.engine.startRun({ workflow: 'gated', subject: 'o/r#14', trigger });
    await h.settle();

    clock.advance(61_000);
    await h.engine.sweep();
    await h.settle();

    expect(await h.store.getRun(run.id)).toMatchObject({
      status: 'succeeded',
      node: 'escalate',
      data: { escalated: true },
    });
  });

  it('keeps waiting while the sweeper runs before it expires', async () => {
    const clock = testClock();
    const h = await harness([gated()], { now: clock.now });
    const { run } = await h.engine.startRun({ workflow: 'gated', subject: 'o/r#15', trigger });
    await h.settle();

    clock.advance(59_000);
    const swept = await h.engine.sweep();

    expect(swept.expired).toBe(0);
    expect((await h.store.getRun(run.id))?.status).toBe('waiting');
  });

  it('is reported once parked, even while an earlier report of the run is still in flight', async () => {
    const entered = deferred();
    const release = deferred();
    const seen: string[] = [];
    const reporter = {
      name: 'slow-first',
      report: async (r: { status: string }) => {
        seen.push(r.status);
        if (seen.length === 1) {
          entered.resolve();
          await release.promise;
        }
      },
    };
    const h = await harness([gated()], { reporters: [reporter], autoConsume: false });
    const { run } = await h.engine.startRun({ workflow: 'gated', subject: 'o/r#16', trigger });
    const firstReport = h.engine.handle({ kind: 'report', runId: run.id, version: run.version });
    await entered.promise;
    h.queue.consume(async (m) => void (await h.engine.handle(m)));
    await h.settle();
    expect((await h.store.getRun(run.id))?.status).toBe('waiting');

    release.resolve();
    await firstReport;

    expect(seen).toEqual(['queued', 'waiting']);
  });
});

describe('a cancel during a running step', () => {
  async function cancelMidStep(subject: string) {
    const entered = deferred();
    const release = deferred();
    const def: WorkflowDefinition = {
      name: 'slow',
      version: 1,
      start: 'work',
      nodes: {
        work: {
          handler: async () => {
            entered.resolve();
            await release.promise;
            return { output: { worked: true } };
          },
        },
        after: { handler: async () => ({}) },
      },
      edges: [{ from: 'work', to: 'after' }],
    };
    const h = await harness([def], { autoConsume: false });
    const outcomes: string[] = [];
    h.queue.consume(async (m) => {
      outcomes.push(await h.engine.handle(m));
    });
    const { run } = await h.engine.startRun({ workflow: 'slow', subject, trigger });
    await entered.promise;
    await h.engine.signal(run.id, { type: 'cancel', by: 'alice', reason: 'wrong issue' });
    release.resolve();
    await h.settle();
    return { h, run, outcomes };
  }

  it('loses the step commit and leaves the run cancelled with the reason', async () => {
    const { h, run, outcomes } = await cancelMidStep('o/r#17');

    expect(outcomes).toContain('lost');
    expect(await h.store.getRun(run.id)).toMatchObject({
      status: 'cancelled',
      reason: 'cancelled by alice: wrong issue',
    });
    const events = await h.store.listEvents(run.id);
    expect(events.map((e) => e.type)).toEqual(['run.created', 'signal.cancel', 'run.cancelled']);
  });

  it('releases the subject so a new run can start on it', async () => {
    const { h } = await cancelMidStep('o/r#18');

    const next = await h.engine.startRun({
      workflow: 'slow',
      subject: 'o/r#18',
      trigger,
      concurrency: 'reject',
    });
    await h.settle();

    expect(next.outcome).toBe('created');
  });
});

describe('step failures', () => {
  const fast: Partial<RetryPolicy> = {
    maxAttempts: 3,
    initialDelayMs: 10,
    backoffCoefficient: 2,
    maxDelayMs: 1_000,
  };

  it('retry a timed-out step with backoff, then fail the run with a report once attempts are exhausted', async () => {
    const reporter = recordingReporter();
    let calls = 0;
    const def: WorkflowDefinition = {
      name: 'stuck',
      version: 1,
      start: 'slow',
      nodes: {
        slow: {
          timeoutMs: 20,
          retry: fast,
          handler: (ctx) => {
            calls++;
            return new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve({})));
          },
        },
      },
      edges: [],
    };
    // random() = 1 takes the top of the jitter range, so the backoff is exactly 10 then 20 ms.
    const h = await harness([def], { reporters: [reporter], random: () => 1 });

    const { run } = await h.engine.startRun({ workflow: 'stuck', subject: 'o/r#19', trigger });
    await h.settle();

    const reason = 'slow failed after 3 attempts: slow timed out after 20 ms';
    expect(await h.store.getRun(run.id)).toMatchObject({
      status: 'failed',
      reason,
      error: { name: 'StepTimeoutError', node: 'slow', retryable: true },
    });
    expect(calls).toBe(3);
    const events = await h.store.listEvents(run.id);
    const retries = events
      .filter((e) => e.type === 'step.retry')
      .map((e) => [e.detail.attempt, e.detail.delayMs]);
    expect(retries).toEqual([
      [1, 10],
      [2, 20],
    ]);
    expect(events.map((e) => e.type).slice(-2)).toEqual(['step.failed', 'run.failed']);
    expect(reporter.seen.at(-1)).toMatchObject({ status: 'failed', reason });
  });

  it('count a step whose handler returns as soon as it is aborted as timed out, not succeeded', async () => {
    const def: WorkflowDefinition = {
      name: 'polite',
      version: 1,
      start: 'slow',
      nodes: {
        slow: {
          timeoutMs: 20,
          retry: { maxAttempts: 1 },
          handler: (ctx) =>
            new Promise((resolve) =>
              ctx.signal.addEventListener('abort', () => resolve({ output: { partial: true } })),
            ),
        },
      },
      edges: [],
    };
    const h = await harness([def]);

    const { run } = await h.engine.startRun({ workflow: 'polite', subject: 'o/r#23', trigger });
    await h.settle();

    const done = await h.store.getRun(run.id);
    expect(done).toMatchObject({ status: 'failed', error: { name: 'StepTimeoutError' } });
    expect(done?.data).not.toHaveProperty('partial');
  });

  class ValidationError extends Error {
    override name = 'ValidationError';
  }

  it.each([
    { label: 'a NonRetryableError', error: () => new NonRetryableError('bad input'), nonRetryable: [] },
    {
      label: 'an error marked retryable: false',
      error: () => Object.assign(new Error('bad input'), { retryable: false }),
      nonRetryable: [],
    },
    {
      label: 'an error the policy names',
      error: () => new ValidationError('bad input'),
      nonRetryable: ['ValidationError'],
    },
  ])('fail the run at once on $label', async ({ error, nonRetryable }) => {
    let calls = 0;
    const def: WorkflowDefinition = {
      name: 'broken',
      version: 1,
      start: 'check',
      nodes: {
        check: {
          retry: { ...fast, nonRetryable },
          handler: async () => {
            calls++;
            throw error();
          },
        },
      },
      edges: [],
    };
    const h = await harness([def]);

    const { run } = await h.engine.startRun({ workflow: 'broken', subject: 'o/r#20', trigger });
    await h.settle();

    expect(await h.store.getRun(run.id)).toMatchObject({
      status: 'failed',
      reason: 'check failed: bad input',
      error: { message: 'bad input', retryable: expect.any(Boolean) },
    });
    expect(calls).toBe(1);
    expect((await h.store.listEvents(run.id)).some((e) => e.type === 'step.retry')).toBe(false);
  });

  it('re-run a failed run from its failed node on a retry signal', async () => {
    const calls: Record<string, number> = {};
    const node = (name: string, failFirst = false): NodeDefinition => ({
      handler: async () => {
        calls[name] = (calls[name] ?? 0) + 1;
        if (failFirst && calls[name] === 1) throw new NonRetryableError('upstream said no');
        return { output: { [name]: true } };
      },
    });
    const def: WorkflowDefinition = {
      name: 'retryable',
      version: 1,
      start: 'a',
      nodes: { a: node('a'), b: node('b', true), c: node('c') },
      edges: [
        { from: 'a', to: 'b' },
        { from: 'b', to: 'c' },
      ],
    };
    const h = await harness([def]);
    const { run } = await h.engine.startRun({ workflow: 'retryable', subject: 'o/r#21', trigger });
    await h.settle();
    expect((await h.store.getRun(run.id))?.status).toBe('failed');

    await h.engine.signal(run.id, { type: 'retry', by: 'alice' });
    await h.settle();

    expect(await h.store.getRun(run.id)).toMatchObject({
      status: 'succeeded',
      data: { a: true, b: true, c: true },
    });
    expect(calls).toEqual({ a: 1, b: 2, c: 1 });
    const events = await h.store.listEvents(run.id);
    const fromRetry = typesAndNodes(events.slice(events.findIndex((e) => e.type === 'signal.retry')));
    expect(fromRetry).toEqual([
      ['signal.retry', 'b'],
      ['step.scheduled', 'b'],
      ['step.succeeded', 'b'],
      ['step.scheduled', 'c'],
      ['step.succeeded', 'c'],
      ['run.succeeded', 'c'],
    ]);
    expectContiguous(events);
  });

  it('refuse a retry while another run holds the subject, leaving the failed run as it was', async () => {
    let fail = true;
    const def: WorkflowDefinition = {
      name: 'flip',
      version: 1,
      start: 'a',
      nodes: {
        a: {
          handler: async () => {
            if (fail) throw new NonRetryableError('no');
            return { wait: { kind: 'approval', expiresInMs: 3_600_000 } };
          },
        },
      },
      edges: [],
    };
    const h = await harness([def]);
    const { run: failed } = await h.engine.startRun({ workflow: 'flip', subject: 'o/r#25', trigger });
    await h.settle();
    fail = false;
    const { run: other } = await h.engine.startRun({ workflow: 'flip', subject: 'o/r#25', trigger });
    await h.settle();
    const before = await h.store.getRun(failed.id);

    const retry = h.engine.signal(failed.id, { type: 'retry', by: 'alice' });

    await expect(retry).rejects.toThrow(new RegExp(`another active run ${other.id}`));
    expect(await h.store.getRun(failed.id)).toEqual(before);
  });

  it('refuse a retry of a run that is still running', async () => {
    const h = await harness([countedWorkflow(['a']).def], { autoConsume: false });
    const { run } = await h.engine.startRun({ workflow: 'linear', subject: 'o/r#22', trigger });

    await expect(h.engine.signal(run.id, { type: 'retry', by: 'alice' })).rejects.toBeInstanceOf(
      InvalidSignalError,
    );
  });
});

describe('a run past its workflow deadline', () => {
  it('expires with a reason when the sweeper finds it, whatever it was waiting for', async () => {
    const clock = testClock();
    const def: WorkflowDefinition = {
      name: 'deadline',
      version: 1,
      start: 'ask',
      deadlineMs: 60_000,
      nodes: { ask: { handler: async () => ({ wait: { kind: 'approval', expiresInMs: 3_600_000 } }) } },
      edges: [],
    };
    const h = await harness([def], { now: clock.now });
    const { run } = await h.engine.startRun({ workflow: 'deadline', subject: 'o/r#24', trigger });
    await h.settle();

    clock.advance(61_000);
    await h.engine.sweep();
    await h.settle();

    expect(await h.store.getRun(run.id)).toMatchObject({
      status: 'expired',
      reason: 'deadline of 60000 ms passed at ask',
    });
    expect(await h.store.listActive()).toEqual([]);
  });
});

describe('concurrency policies on one subject', () => {
  const parked: WorkflowDefinition = {
    name: 'parked',
    version: 1,
    start: 'ask',
    nodes: {
      ask: { handler: async () => ({ wait: { kind: 'approval', expiresInMs: 3_600_000 } }) },
      done: { handler: async () => ({}) },
    },
    edges: [{ from: 'ask', to: 'done', on: 'approved' }],
  };
  const start = (
    subject: string,
    extra: { concurrency?: 'reject' | 'attach' | 'supersede'; idempotencyKey?: string } = {},
  ) => ({
    workflow: 'parked',
    subject,
    trigger: { source: 'test' as const, actor: 'bob' },
    ...extra,
  });

  it('reject refuses a second start, naming the active run', async () => {
    const h = await harness([parked]);
    const { run: first } = await h.engine.startRun(start('o/r#30'));

    const second = h.engine.startRun(start('o/r#30', { concurrency: 'reject' }));

    await expect(second).rejects.toBeInstanceOf(RunConflictError);
    await expect(second).rejects.toMatchObject({ activeRunId: first.id });
    expect(await h.store.listRuns({ subject: 'o/r#30' })).toHaveLength(1);
  });

  it('attach (the default) returns the active run instead of starting another', async () => {
    const h = await harness([parked]);
    const { run: first } = await h.engine.startRun(start('o/r#31'));

    const second = await h.engine.startRun(start('o/r#31'));

    expect(second).toMatchObject({ outcome: 'attached', run: { id: first.id } });
    expect(await h.store.listRuns({ subject: 'o/r#31' })).toHaveLength(1);
  });

  it('attach remembers the idempotency key, so the same key later returns the same run, even once it finished', async () => {
    const h = await harness([parked]);
    const { run: first } = await h.engine.startRun(start('o/r#32'));
    await h.engine.startRun(start('o/r#32', { idempotencyKey: 'delivery-9' }));
    await h.settle();
    await h.engine.signal(first.id, { type: 'approve', by: 'alice' });
    await h.settle();

    const again = await h.engine.startRun(start('o/r#32', { idempotencyKey: 'delivery-9' }));

    expect(again).toMatchObject({ outcome: 'duplicate', run: { id: first.id, status: 'succeeded' } });
    expect(await h.store.listRuns({ subject: 'o/r#32' })).toHaveLength(1);
  });

  it('ten concurrent starts with one idempotency key make one run and all return it', async () => {
    const h = await harness([parked]);

    const results = await Promise.all(
      Array.from({ length: 10 }, () => h.engine.startRun(start('o/r#34', { idempotencyKey: 'delivery-34' }))),
    );
    await h.settle();

    expect(results.filter((r) => r.outcome === 'created')).toHaveLength(1);
    expect(new Set(results.map((r) => r.run.id)).size).toBe(1);
    expect(await h.store.listRuns({ subject: 'o/r#34' })).toHaveLength(1);
  });

  it('ten concurrent starts under reject make one run and refuse nine', async () => {
    const h = await harness([parked]);

    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () => h.engine.startRun(start('o/r#35', { concurrency: 'reject' }))),
    );
    await h.settle();

    const created = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r) => r.status === 'rejected');
    expect(created).toHaveLength(1);
    expect(refused.map((r) => (r as PromiseRejectedResult).reason)).toEqual(
      Array(9).fill(expect.any(RunConflictError)),
    );
    expect(await h.store.listRuns({ subject: 'o/r#35' })).toHaveLength(1);
  });

  it.each(['LOCK', 'LIST', 'RUN'] as const)(
    "a start that dies before its run is written (at the %s put) is made by its delivery's next try, once, under the id it reserved",
    async (sk) => {
      const store = await createTestStore();
      let dies = true;
      store.doc.middlewareStack.add(
        (next) => async (args) => {
          if (dies && (args.input as { Item?: { sk?: unknown } }).Item?.sk === sk) {
            dies = false;
            throw new WorkerCrash(`died at the ${sk} put`);
          }
          return next(args);
        },
        { step: 'initialize', name: 'die-once' },
      );
      const h = await harness([parked], { store });
      await expect(h.engine.startRun(start('o/r#37', { idempotencyKey: 'delivery-37' }))).rejects.toThrow(
        WorkerCrash,
      );
      const reservedFor = (
        await store.doc.send(
          new GetCommand({ TableName: store.tableName, Key: { pk: 'IDEM#delivery-37', sk: 'IDEM' } }),
        )
      ).Item?.runId;

      const again = await h.engine.startRun(start('o/r#37', { idempotencyKey: 'delivery-37' }));
      await h.settle();

      expect(again).toMatchObject({ outcome: 'created', run: { id: reservedFor } });
      expect((await h.store.getRun(again.run.id))?.status).toBe('waiting');
      expect((await h.store.listRuns({ subject: 'o/r#37' })).map((r) => r.id)).toEqual([again.run.id]);
      const third = await h.engine.startRun(start('o/r#37', { idempotencyKey: 'delivery-37' }));
      expect(third).toMatchObject({ outcome: 'duplicate', run: { id: again.run.id } });
    },
  );

  it('ten concurrent starts on one subject, each its own delivery, make one run; the others attach to it', async () => {
    const h = await harness([parked]);

    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        h.engine.startRun(start('o/r#38', { idempotencyKey: `delivery-38-${i}` })),
      ),
    );
    await h.settle();

    expect(results.filter((r) => r.outcome === 'created')).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'attached')).toHaveLength(9);
    expect(new Set(results.map((r) => r.run.id)).size).toBe(1);
    expect(await h.store.listRuns({ subject: 'o/r#38' })).toHaveLength(1);
  });

  it('supersede that loses the subject on every try gives up without cancelling the run it found last', async () => {
    /** Each time a run is cancelled, a competing start takes the freed subject first (four times). */
    class CompetingQueue extends InMemoryQueue {
      competitors = 0;
      compete: (() => Promise<unknown>) | undefined;
      override async send(batch: Outgoing[]): Promise<void> {
        await super.send(batch);
        if (this.compete && this.competitors < 4 && batch.some((o) => o.message.kind === 'report')) {
          this.competitors++;
          await this.compete();
        }
      }
    }
    const queue = new CompetingQueue();
    const h = await harness([parked], { queue, autoConsume: false });
    await h.engine.startRun(start('o/r#36'));
    queue.compete = () => h.engine.startRun(start('o/r#36'));

    const superseding = h.engine.startRun(start('o/r#36', { concurrency: 'supersede' }));

    await expect(superseding).rejects.toBeInstanceOf(RunConflictError);
    const runs = await h.store.listRuns({ subject: 'o/r#36' });
    expect(runs.map((r) => r.status)).toEqual(['queued', 'cancelled', 'cancelled', 'cancelled', 'cancelled']);
  });

  it('supersede cancels the active run with a reason and starts a new one', async () => {
    const h = await harness([parked]);
    const { run: first } = await h.engine.startRun(start('o/r#33'));
    await h.settle();

    const second = await h.engine.startRun(start('o/r#33', { concurrency: 'supersede' }));
    await h.settle();

    expect(second.outcome).toBe('superseded');
    expect(second.run.id).not.toBe(first.id);
    expect(await h.store.getRun(first.id)).toMatchObject({
      status: 'cancelled',
      reason: 'cancelled by bob: superseded by a newer start',
    });
    expect((await h.store.getRun(second.run.id))?.status).toBe('waiting');
    expect(await h.store.listRuns({ subject: 'o/r#33' })).toHaveLength(2);
  });
});
