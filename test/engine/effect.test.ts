/**
 * Contract of the one effect primitive, `ctx.effect(name, fn, { scope })` (lib/engine/effects.ts),
 * through the real engine over DynamoDB Local: once per step across retries and takeovers, once
 * per run with scope 'run', claimed and recorded under the step's lease, and the one documented
 * at-least-once window (a worker that stops after acting and before recording).
 */
import { describe, expect, it, vi } from 'vitest';
import { effectKey } from '../../lib/engine/effects.ts';
import { Engine } from '../../lib/engine/engine.ts';
import { LeaseLostError } from '../../lib/engine/errors.ts';
import type { EffectClaim, LeaseFence } from '../../lib/engine/ports.ts';
import { ConcurrencyError } from '../../lib/engine/store-errors.ts';
import type { NodeDefinition, StepContext, WorkflowDefinition } from '../../lib/engine/workflow.ts';
import { harness } from '../support/harness.ts';
import { deferred, testClock } from './kit.ts';

const trigger = { source: 'test' as const };

class Flaky extends Error {
  override name = 'Flaky';
  readonly retryable = true;
}

/** One node `a` (retried once, 1 ms apart) whose handler the test writes. */
type Store = Awaited<ReturnType<typeof harness>>['store'];

/**
 * A run of one node whose step fails after its effect and is tried again (as seq 2), the node
 * made by `node` over the harness's store: the effects it made, the store's effect-ledger calls,
 * and the run at the end.
 */
async function triedTwice(
  node: (records: { store?: Store }, act: () => Promise<void>) => WorkflowDefinition,
  subject: string,
) {
  let effects = 0;
  const own: { store?: Store } = {};
  const h = await harness([node(own, async () => void effects++)], { autoConsume: false });
  own.store = h.store;
  const claims = vi.spyOn(h.store, 'claimEffect');
  const ledgerRecords = vi.spyOn(h.store, 'recordEffect');
  const { run } = await h.engine.startRun({ workflow: 'fx', subject, trigger });

  expect(await h.engine.executeStep(run.id, 1)).toBe('committed'); // a retry, as seq 2
  expect(await h.engine.executeStep(run.id, 2)).toBe('committed');

  return { effects, claims, ledgerRecords, run: await h.store.getRun(run.id) };
}

function oneNode(
  handler: (ctx: StepContext) => Promise<Record<string, unknown>>,
  node: Partial<NodeDefinition> = {},
): WorkflowDefinition {
  return {
    name: 'fx',
    version: 1,
    start: 'a',
    nodes: {
      a: {
        handler: async (ctx) => ({ output: await handler(ctx) }),
        retry: { maxAttempts: 3, initialDelayMs: 1 },
        ...node,
      },
    },
    edges: [],
  };
}

/** A second engine on the same store and queue: another worker (Lambda instance). */
function anotherWorker(h: Awaited<ReturnType<typeof harness>>, now: () => Date) {
  return new Engine({ store: h.store, queue: h.queue, workflows: h.engine.workflows, services: {}, now });
}

/**
 * Step 1 of `runId` in one worker until it stalls (`stalled` resolves), then past its lease in
 * another (the sweeper's re-send), then let the first go on: both outcomes, the takeover's first.
 */
async function takenOverWhileStalled(
  h: Awaited<ReturnType<typeof harness>>,
  clock: ReturnType<typeof testClock>,
  runId: string,
  stalled: { promise: Promise<void> },
  release: { resolve: () => void },
): Promise<[string, string]> {
  const first = h.engine.executeStep(runId, 1);
  await stalled.promise;
  clock.advance(10 * 60_000);
  const takeover = await anotherWorker(h, clock.now).executeStep(runId, 1);
  release.resolve();
  return [takeover, await first];
}

describe('ctx.effect', () => {
  it('returns the recorded result to a retry of the step instead of acting again', async () => {
    let effects = 0;
    const h = await harness(
      [
        oneNode(async (ctx) => {
          const sent = await ctx.effect('send', async () => `sent-${++effects}`);
          if (ctx.attempt === 1) throw new Flaky('the step failed after its effect');
          return { sent };
        }),
      ],
      { autoConsume: false },
    );
    const { run } = await h.engine.startRun({ workflow: 'fx', subject: 'o/r#1', trigger });

    expect(await h.engine.executeStep(run.id, 1)).toBe('committed'); // a retry, as seq 2
    expect(await h.engine.executeStep(run.id, 2)).toBe('committed');

    expect(effects).toBe(1);
    expect(await h.store.getRun(run.id)).toMatchObject({ status: 'succeeded', data: { sent: 'sent-1' } });
  });

  it.each([
    ['its record', 'by-ledger'],
    ["its caller's record ('by-caller')", 'by-caller'],
  ] as const)(
    'acts again, told it was interrupted, when a worker stopped after the effect and before %s',
    async (_, recorded) => {
      const clock = testClock();
      const acted = deferred();
      const wake = deferred();
      const seen: boolean[] = [];
      const h = await harness(
        [
          oneNode(async (ctx) => {
            const sent = await ctx.effect(
              'send',
              async ({ interrupted }) => {
                seen.push(interrupted);
                if (seen.length === 1) {
                  acted.resolve();
                  await wake.promise; // the worker froze (or died) right after acting
                }
                return `sent-${seen.length}`;
              },
              { recorded },
            );
            return { sent };
          }),
        ],
        { autoConsume: false, now: clock.now },
      );
      const { run } = await h.engine.startRun({ workflow: 'fx', subject: `o/r#2-${recorded}`, trigger });

      expect(await takenOverWhileStalled(h, clock, run.id, acted, wake)).toEqual(['committed', 'lost']);
      expect(seen).toEqual([false, true]); // the documented at-least-once window, and it says so
      expect(await h.store.getRun(run.id)).toMatchObject({ status: 'succeeded', data: { sent: 'sent-2' } });
    },
  );

  it('refuses the record of a worker whose lease was taken over, and keeps the new worker’s', async () => {
    const clock = testClock();
    const acting = deferred();
    const release = deferred();
    let effects = 0;
    const h = await harness(
      [
        oneNode(async (ctx) => {
          const sent = await ctx.effect('send', async () => {
            const n = ++effects;
            if (n === 1) {
              acting.resolve();
              await release.promise; // stalled mid-effect past its lease
            }
            return `sent-${n}`;
          });
          return { sent };
        }),
      ],
      { autoConsume: false, now: clock.now },
    );
    const { run } = await h.engine.startRun({ workflow: 'fx', subject: 'o/r#3', trigger });
    const key = effectKey(run, 'a', 'send');

    expect(await takenOverWhileStalled(h, clock, run.id, acting, release)).toEqual(['committed', 'lost']);
    expect(await h.store.getEffect(run.id, key)).toEqual({ result: 'sent-2' });
    expect(await h.store.getRun(run.id)).toMatchObject({ status: 'succeeded', data: { sent: 'sent-2' } });
  });

  it('does not start the effect in a worker that lost its lease before reaching it', async () => {
    const clock = testClock();
    const reached = deferred();
    const release = deferred();
    const errors: unknown[] = [];
    let effects = 0;
    const h = await harness(
      [
        oneNode(async (ctx) => {
          if (ctx.attempt > 1) return { sent: 'not needed' }; // the new worker goes another way
          reached.resolve();
          await release.promise;
          const sent = await ctx
            .effect('send', async () => ++effects)
            .catch((err: unknown) => {
              errors.push(err);
              throw err;
            });
          return { sent };
        }),
      ],
      { autoConsume: false, now: clock.now },
    );
    const { run } = await h.engine.startRun({ workflow: 'fx', subject: 'o/r#4', trigger });

    expect(await takenOverWhileStalled(h, clock, run.id, reached, release)).toEqual(['committed', 'lost']);
    expect(effects).toBe(0);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(LeaseLostError);
  });

  it('does not start the effect of a first try whose run moved on before the effect could lease it', async () => {
    const reached = deferred();
    const release = deferred();
    const errors: unknown[] = [];
    let calls = 0;
    let effects = 0;
    const h = await harness(
      [
        oneNode(
          async (ctx) => {
            if (++calls === 1) {
              reached.resolve();
              await release.promise; // a copy of the message, read and run unleased, stalls
            }
            const sent = await ctx
              .effect('send', async () => `sent-${++effects}`)
              .catch((err: unknown) => {
                errors.push(err);
                throw err;
              });
            return { sent };
          },
          { lazyLease: true },
        ),
      ],
      // Long enough that the stalled copy never leases by time while the test runs.
      { autoConsume: false, lazyLeaseMs: 60_000 },
    );
    const { run } = await h.engine.startRun({ workflow: 'fx', subject: 'o/r#5', trigger });
    const [message] = h.queue.pending.splice(0);

    const stalled = h.engine.handle(message!);
    await reached.promise;
    // Another copy arrives, runs the step, leases it before its effect, and commits.
    const other = await anotherWorker(h, () => new Date()).handle(message!);
    release.resolve();

    expect([other, await stalled]).toEqual(['committed', 'lost']);
    expect(effects).toBe(1);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(LeaseLostError);
    expect(await h.store.getRun(run.id)).toMatchObject({ status: 'succeeded', data: { sent: 'sent-1' } });
  });

  it("shares a 'run' effect across the run's steps, and keeps 'step' effects per step", async () => {
    const counts = { thread: 0, note: 0 };
    const node = {
      handler: async (ctx: StepContext) => {
        const thread = await ctx.effect('thread', async () => `thread-${++counts.thread}`, { scope: 'run' });
        const note = await ctx.effect('note', async () => `note-${++counts.note}`);
        return { output: { [ctx.node]: { thread, note } } };
      },
    };
    const def: WorkflowDefinition = {
      name: 'two',
      version: 1,
      start: 'a',
      nodes: { a: node, b: node },
      edges: [{ from: 'a', to: 'b' }],
    };
    const h = await harness([def]);
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#5', trigger });
    await h.settle();

    expect(counts).toEqual({ thread: 1, note: 2 });
    expect((await h.store.getRun(run.id))?.data).toEqual({
      a: { thread: 'thread-1', note: 'note-1' },
      b: { thread: 'thread-1', note: 'note-2' },
    });
  });

  it('acts once when two workers get the same step at the same time', async () => {
    let effects = 0;
    const h = await harness(
      [oneNode(async (ctx) => ({ sent: await ctx.effect('send', async () => ++effects) }))],
      {
        autoConsume: false,
      },
    );
    const { run } = await h.engine.startRun({ workflow: 'fx', subject: 'o/r#6', trigger });
    const other = anotherWorker(h, () => new Date());

    const outcomes = await Promise.all([h.engine.executeStep(run.id, 1), other.executeStep(run.id, 1)]);

    expect(outcomes).toContain('committed');
    expect(outcomes.filter((o) => o === 'committed')).toHaveLength(1);
    expect(effects).toBe(1);
    expect(await h.store.getRun(run.id)).toMatchObject({ status: 'succeeded', data: { sent: 1 } });
  });

  describe("recorded 'by-caller'", () => {
    /**
     * A node whose effect writes its own record (a KV item, as execute's dispatch record) and
     * which looks there before calling the effect again.
     */
    function recordsItself(records: { store?: Store }, act: () => Promise<void>) {
      return oneNode(async (ctx) => {
        const kv = records.store!;
        const key = `${ctx.run.id}:send`;
        const mine = await kv.kvGet<string>('fx', key);
        const sent =
          mine?.value ??
          (await ctx.effect(
            'send',
            async () => {
              await act();
              const value = `sent-${ctx.attempt}`;
              await kv.kvPut('fx', key, value, { expectedVersion: 0 });
              return value;
            },
            { recorded: 'by-caller' },
          ));
        if (ctx.attempt === 1) throw new Flaky('the step failed after its effect');
        return { sent };
      });
    }

    it('claims the effect but writes no ledger record; a retry finds the caller’s record and does not act', async () => {
      const { effects, claims, ledgerRecords, run } = await triedTwice(recordsItself, 'o/r#7');

      expect(effects).toBe(1);
      expect(claims).toHaveBeenCalledTimes(1);
      expect(ledgerRecords).not.toHaveBeenCalled();
      expect(run).toMatchObject({ status: 'succeeded', data: { sent: 'sent-1' } });
    });
  });

  describe('claimed by the caller', () => {
    type Rec = { state: 'claimed' | 'done'; v: number; result?: string };

    /**
     * A node whose effect is claimed and recorded in a KV record of its own, as execute's dispatch
     * record does: the claim carries the fence's version, refuses a later one's and takes over an
     * older one's (interrupted); the record marks it done.
     */
    function claimsItself(
      records: { store?: Store },
      act: (interrupted: boolean) => Promise<void>,
      opts: { failFirst?: boolean } = {},
    ) {
      return oneNode(async (ctx) => {
        const kv = records.store!;
        const key = `${ctx.run.id}:send`;
        const claim = async (fence: LeaseFence): Promise<EffectClaim> => {
          for (;;) {
            const rec = await kv.kvGet<Rec>('fx', key);
            if (rec?.value.state === 'done') return { outcome: 'done', result: rec.value.result };
            if (rec && rec.value.v > fence.version)
              throw new ConcurrencyError('claimed by a later lease', { runId: ctx.run.id });
            if (rec && rec.value.v === fence.version) return { outcome: 'claimed', interrupted: false };
            const mine: Rec = { state: 'claimed', v: fence.version };
            if (await kv.kvPut('fx', key, mine, { expectedVersion: rec?.version ?? 0 }))
              return { outcome: 'claimed', interrupted: rec !== undefined };
          }
        };
        const sent = await ctx.effect(
          'send',
          async ({ interrupted }) => {
            await act(interrupted);
            const value = `sent-${ctx.attempt}`;
            const rec = (await kv.kvGet<Rec>('fx', key))!;
            await kv.kvPut(
              'fx',
              key,
              { ...rec.value, state: 'done', result: value },
              { expectedVersion: rec.version },
            );
            return value;
          },
          { recorded: 'by-caller', claim },
        );
        if (opts.failFirst && ctx.attempt === 1) throw new Flaky('the step failed after its effect');
        return { sent };
      });
    }

    it('never writes the ledger; a retry finds the record done and does not act', async () => {
      const { effects, claims, ledgerRecords, run } = await triedTwice(
        (own, act) => claimsItself(own, act, { failFirst: true }),
        'o/r#9',
      );

      expect(effects).toBe(1);
      expect(claims).not.toHaveBeenCalled();
      expect(ledgerRecords).not.toHaveBeenCalled();
      expect(run).toMatchObject({ status: 'succeeded', data: { sent: 'sent-1' } });
    });

    it('lets a takeover take the claim over, told it was interrupted, and refuses the stalled worker', async () => {
      const clock = testClock();
      const acted = deferred();
      const wake = deferred();
      const seen: boolean[] = [];
      const own: { store?: Store } = {};
      const h = await harness(
        [
          claimsItself(own, async (interrupted) => {
            seen.push(interrupted);
            if (seen.length === 1) {
              acted.resolve();
              await wake.promise; // the worker froze right after acting, before recording
            }
          }),
        ],
        { autoConsume: false, now: clock.now },
      );
      own.store = h.store;
      const { run } = await h.engine.startRun({ workflow: 'fx', subject: 'o/r#10', trigger });

      expect(await takenOverWhileStalled(h, clock, run.id, acted, wake)).toEqual(['committed', 'lost']);
      expect(seen).toEqual([false, true]);
      expect(await h.store.getRun(run.id)).toMatchObject({ status: 'succeeded', data: { sent: 'sent-2' } });
    });

    it('does not start the effect when the lease was lost by the time the claim is in place', async () => {
      const clock = testClock();
      const reached = deferred();
      const release = deferred();
      const errors: unknown[] = [];
      let effects = 0;
      const own: { store?: Store } = {};
      const inner = claimsItself(own, async () => void effects++);
      const stalling: WorkflowDefinition = {
        ...inner,
        nodes: {
          a: {
            ...inner.nodes.a!,
            handler: async (ctx) => {
              if (ctx.attempt > 1) return { output: { sent: 'not needed' } };
              reached.resolve();
              await release.promise; // stalled past its lease before claiming
              return inner.nodes.a!.handler(ctx).catch((err: unknown) => {
                errors.push(err);
                throw err;
              });
            },
          },
        },
      };
      const h = await harness([stalling], { autoConsume: false, now: clock.now });
      own.store = h.store;
      const { run } = await h.engine.startRun({ workflow: 'fx', subject: 'o/r#11', trigger });

      expect(await takenOverWhileStalled(h, clock, run.id, reached, release)).toEqual(['committed', 'lost']);
      expect(effects).toBe(0);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(LeaseLostError);
    });

    it('returns what the ledger journaled when it takes over an interrupted claim', async () => {
      let effects = 0;
      const own: { store?: Store } = {};
      const h = await harness([claimsItself(own, async () => void effects++)], { autoConsume: false });
      own.store = h.store;
      const { run } = await h.engine.startRun({ workflow: 'fx', subject: 'o/r#12', trigger });
      // A version of the node from before its claim moved into its record: claimed in its record
      // (no version) and journaled in the ledger, then it stopped.
      await h.store.kvPut('fx', `${run.id}:send`, { state: 'claimed', v: 0 }, { expectedVersion: 0 });
      const ledger = effectKey({ ...run, step: { ...run.step!, firstSeq: 1 } }, 'a', 'send');
      const leased = await h.store.update(
        {
          ...run,
          version: run.version + 1,
          lease: { owner: 'old', seq: 1, until: '2999-01-01T00:00:00.000Z' },
        },
        run.version,
      );
      const fence = { version: leased.version, owner: 'old', now: new Date().toISOString() };
      await h.store.claimEffect(run.id, ledger, fence, 'old');
      await h.store.recordEffect(run.id, ledger, 'old', 'sent-by-the-old-version');
      const { lease: _gone, ...unleased } = leased;
      await h.store.update({ ...unleased, version: leased.version + 1 }, leased.version);

      expect(await h.engine.executeStep(run.id, 1)).toBe('committed');
      expect(effects).toBe(0);
      expect(await h.store.getRun(run.id)).toMatchObject({
        status: 'succeeded',
        data: { sent: 'sent-by-the-old-version' },
      });
    });
  });
});
