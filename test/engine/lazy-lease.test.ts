/**
 * A node marked `lazyLease` runs its first try, on its message's first delivery, from a read of
 * the run, and writes its lease only when it needs one (steps.ts, hold.ts): before its first
 * effect, or once it has run `lazyLeaseMs`. A step without effects is then a read and a commit.
 * Anything that says the first try may have gone wrong (a redelivery, a lapsed lease, the
 * sweeper's re-send) leases first, so crashes still count as attempts.
 */
import { describe, expect, it, vi } from 'vitest';
import type { Engine } from '../../lib/engine/engine.ts';
import type { StepContext, WorkflowDefinition } from '../../lib/engine/workflow.ts';
import type { WorkMessage } from '../../lib/queue/port.ts';
import { harness } from '../support/harness.ts';
import {
  countingStore,
  deferred,
  drive,
  expectContiguous,
  testClock,
  throttlingClient,
  typesAndNodes,
} from './kit.ts';

const trigger = { source: 'test' as const };

class WorkerCrash extends Error {}

function twoNodes(a: (ctx: StepContext) => Promise<unknown>, lazyLease = true): WorkflowDefinition {
  return {
    name: 'lazy',
    version: 1,
    start: 'a',
    nodes: {
      a: {
        handler: async (ctx) => ({ output: { a: (await a(ctx)) ?? true } }),
        retry: { maxAttempts: 3, initialDelayMs: 1 },
        lazyLease,
      },
      b: { handler: async () => ({ output: { b: true } }), lazyLease },
    },
    edges: [{ from: 'a', to: 'b' }],
  };
}

/** The store calls a step makes, in order. */
function callOrder(h: Awaited<ReturnType<typeof harness>>) {
  const names = ['getRun', 'leaseStep', 'update', 'claimEffect', 'commit'] as const;
  const spies = names.map((name) => vi.spyOn(h.store, name));
  return () =>
    spies
      .flatMap((spy, i) => spy.mock.invocationCallOrder.map((at) => ({ at, name: names[i]! })))
      .sort((x, y) => x.at - y.at)
      .map((c) => c.name);
}

/** The message as a sender that carries no run item sends it (the sweeper, a large run). */
function withoutItem(message: Extract<WorkMessage, { kind: 'step' }>): WorkMessage {
  const { item: _, ...rest } = message;
  return rest;
}

async function firstMessage(h: Awaited<ReturnType<typeof harness>>, subject: string) {
  const { run } = await h.engine.startRun({ workflow: 'lazy', subject, trigger });
  const [message] = h.queue.pending.splice(0);
  return { run, message: message as Extract<WorkMessage, { kind: 'step' }> };
}

/**
 * A lazyLease step that waits until its lease is written (`leased`), then until `release`: its
 * lease is written by time (`lazyLeaseMs` 5), and `tries` counts the writes.
 */
async function slowStep(subject: string, opts: Parameters<typeof harness>[1] = {}) {
  const leased = deferred();
  const release = deferred();
  const h = await harness(
    [
      twoNodes(async () => {
        await leased.promise;
        await release.promise;
        return 'slow';
      }),
    ],
    { autoConsume: false, lazyLeaseMs: 5, ...opts },
  );
  const { run, message } = await firstMessage(h, subject);
  const leaseStep = h.store.leaseStep.bind(h.store);
  const tries = vi.spyOn(h.store, 'leaseStep').mockImplementation(async (...args) => {
    const got = await leaseStep(...args);
    leased.resolve();
    return got;
  });
  return { h, run, message, leased, release, tries };
}

describe('a lazyLease node', () => {
  it('without effects is its commit alone: no read (its message carries the run item), no lease', async () => {
    const h = await harness([twoNodes(async () => 'read only')], { autoConsume: false });
    const { run, message } = await firstMessage(h, 'o/r#1');
    expect(message.item).toEqual(expect.any(String));
    const order = callOrder(h);

    expect(await h.engine.handle(message)).toBe('committed');

    expect(order()).toEqual(['commit']);
    const after = (await h.store.getRun(run.id))!;
    expect(after).toMatchObject({ version: run.version + 1, node: 'b', data: { a: 'read only' } });
    expect(after.lease).toBeUndefined();
  });

  it('reads the run when its message carries no run item, and a stale item only loses', async () => {
    const h = await harness([twoNodes(async () => 'x')], { autoConsume: false });
    const { run, message } = await firstMessage(h, 'o/r#10');
    let order = callOrder(h);
    expect(await h.engine.handle(withoutItem(message))).toBe('committed');
    expect(order()).toEqual(['getRun', 'commit']);
    vi.restoreAllMocks();

    // The same message again, carrying the item of a version the run has left: the step runs
    // from it, and its commit, conditional on that version, is refused.
    order = callOrder(h);
    expect(await h.engine.handle(message)).toBe('lost');
    expect(order()).toEqual(['commit']);
    const events = await h.store.listEvents(run.id);
    expect(events.filter((e) => e.type === 'step.succeeded')).toHaveLength(1);
    expectContiguous(events);
  });

  it('writes its lease right before its first effect, and the effect is fenced by it', async () => {
    const h = await harness([twoNodes((ctx) => ctx.effect('send', async () => 'sent'))], {
      autoConsume: false,
    });
    const { run, message } = await firstMessage(h, 'o/r#2');
    const order = callOrder(h);

    expect(await h.engine.handle(message)).toBe('committed');

    expect(order()).toEqual(['leaseStep', 'claimEffect', 'commit']);
    // The lease's version, then the commit's.
    expect(await h.store.getRun(run.id)).toMatchObject({ version: run.version + 2, data: { a: 'sent' } });
  });

  it('leases first when the message is redelivered, or re-sent by the sweeper', async () => {
    const clock = testClock();
    const h = await harness([twoNodes(async () => 'x')], { autoConsume: false, now: clock.now });
    const redelivered = await firstMessage(h, 'o/r#3');
    let order = callOrder(h);
    expect(await h.engine.handle(redelivered.message, undefined, { receiveCount: 2 })).toBe('committed');
    expect(order()).toEqual(['leaseStep', 'commit']);
    vi.restoreAllMocks();

    // A first delivery that comes after the enqueue grace is the sweeper's: the first try may
    // have stopped before writing anything, so this one leases and a crash of its counts.
    const resent = await firstMessage(h, 'o/r#4');
    clock.advance(61_000);
    order = callOrder(h);
    expect(await h.engine.handle(resent.message)).toBe('committed');
    expect(order()).toEqual(['leaseStep', 'commit']);
  });

  it('is leased before it runs when unmarked, as every step was', async () => {
    const h = await harness([twoNodes(async () => 'x', false)], { autoConsume: false });
    const { message } = await firstMessage(h, 'o/r#5');
    const order = callOrder(h);

    expect(await h.engine.handle(message)).toBe('committed');

    expect(order()).toEqual(['leaseStep', 'commit']);
  });

  it('writes its lease once it has run lazyLeaseMs, so that another copy of its message finds it taken', async () => {
    const { h, run, message, leased, release } = await slowStep('o/r#6');

    const slow = h.engine.handle(message);
    await leased.promise;
    expect(await h.store.getRun(run.id)).toMatchObject({ version: run.version + 1, status: 'running' });
    // A copy that reads the run finds it busy; one that runs from the item it carries finds out
    // when its own lease is refused.
    expect(await h.engine.handle(withoutItem(message))).toBe('busy');
    expect(await h.engine.handle(message)).toBe('lost');
    release.resolve();

    expect(await slow).toBe('committed');
    expect(await h.store.getRun(run.id)).toMatchObject({ version: run.version + 2, data: { a: 'slow' } });
  });

  it('tries its lease again when the write is throttled past its retries, while it still runs', async () => {
    const t = throttlingClient(3);
    const counting = await countingStore({ client: t.client });
    const { h, run, message, leased, release, tries } = await slowStep('o/r#9', { store: counting.store });
    // The first lease write fails after the SDK's three tries; the next one is written.
    t.throttle('UpdateItemCommand', 3);

    const slow = h.engine.handle(message);
    await leased.promise;
    expect(tries).toHaveBeenCalledTimes(2);
    expect(await h.engine.handle(withoutItem(message))).toBe('busy');
    release.resolve();

    expect(await slow).toBe('committed');
    expect(await h.store.getRun(run.id)).toMatchObject({ version: run.version + 2, data: { a: 'slow' } });
  });

  it('is aborted, with nothing committed, when its lease cannot be written because the run was cancelled', async () => {
    let aborted = false;
    let engine: Engine | undefined;
    const h = await harness(
      [
        twoNodes(
          (ctx) =>
            new Promise((resolve) => {
              ctx.signal.addEventListener('abort', () => {
                aborted = true;
                resolve('too late');
              });
            }),
        ),
      ],
      {
        autoConsume: false,
        lazyLeaseMs: 5,
        // The cancel lands after the run was read and before the node runs, unleased.
        faults: async (point, run) => {
          if (point === 'after-lease') await engine!.signal(run.id, { type: 'cancel', by: 'ops' });
        },
      },
    );
    engine = h.engine as Engine;
    const { run, message } = await firstMessage(h, 'o/r#7');

    expect(await h.engine.handle(message)).toBe('lost');

    expect(aborted).toBe(true);
    const events = await h.store.listEvents(run.id);
    expect(events.map((e) => e.type)).toEqual(['run.created', 'signal.cancel', 'run.cancelled']);
    expectContiguous(events);
  });

  it('whose worker dies before writing anything, every time, still fails the run once its attempts are spent', async () => {
    const clock = testClock();
    let handled = 0;
    const h = await harness(
      [
        twoNodes(async () => {
          handled++;
        }),
      ],
      {
        now: clock.now,
        // Dies after taking the step (read, or leased) and before the node runs: the first try
        // leaves no trace; its redelivery leases, and the leases' lapses count as attempts.
        faults: (point, run) => {
          if (point === 'after-lease' && run.step?.node === 'a') throw new WorkerCrash('worker died');
        },
      },
    );

    const { run } = await h.engine.startRun({ workflow: 'lazy', subject: 'o/r#8', trigger });
    const done = await drive(h, clock, run.id);

    expect(handled).toBe(0);
    expect(done).toMatchObject({
      status: 'failed',
      reason: 'a did not finish after 3 attempts (the worker stopped each time)',
      error: { name: 'LeaseExpired', node: 'a' },
    });
    expect(typesAndNodes(await h.store.listEvents(run.id)).slice(-2)).toEqual([
      ['step.failed', 'a'],
      ['run.failed', 'a'],
    ]);
  });
});
