/**
 * Steps run in a row (issue 13, cost): a step that schedules another step of the same run for now
 * runs it in the same invocation, leased by its own commit, instead of sending a message that a
 * new invocation reads, leases and runs. What must hold: the same history and reports, no lease
 * write for a chained step, and a commit that waits for the chained step (one write for both)
 * unless that step needs its lease first; a bound on how many run in a row and on the
 * invocation's time, and a message as before whenever the next step is not chained. Crashes and
 * duplicates in a chain: test/engine/faults.test.ts (the `chained` cases, and a step held by the
 * uncommitted steps before it).
 */
import { describe, expect, it } from 'vitest';
import type { Reporter } from '../../lib/engine/engine.ts';
import { ThrottledError } from '../../lib/engine/store-errors.ts';
import type { WorkflowDefinition } from '../../lib/engine/workflow.ts';
import { harness } from '../support/harness.ts';
import { countingStore, drive, expectContiguous, linearHistory, testClock, typesAndNodes } from './kit.ts';

const trigger = { source: 'test' as const };

/** a → b → c → d. */
function workflow(): WorkflowDefinition {
  return {
    name: 'row',
    version: 1,
    start: 'a',
    nodes: {
      a: { handler: async () => ({ output: { a: 1 } }) },
      b: { handler: async () => ({ output: { b: 1 } }) },
      c: { handler: async (ctx) => ({ output: { c: ctx.attempt } }) },
      d: { handler: async () => ({ output: { d: 1 } }) },
    },
    edges: [
      { from: 'a', to: 'b' },
      { from: 'b', to: 'c' },
      { from: 'c', to: 'd' },
    ],
  };
}

function listing(): Reporter & { versions: number[] } {
  const versions: number[] = [];
  return { name: 'list', versions, report: async (run) => void versions.push(run.version) };
}

describe('steps due now, run in a row', () => {
  it('run in the invocation of the first step: one lease write, one commit for all (fused), reports in order up to the last version', async () => {
    const counting = await countingStore();
    const reporter = listing();
    const h = await harness([workflow()], {
      store: counting.store,
      reporters: [reporter],
      chainSteps: 8,
      autoConsume: false,
    });
    const { run } = await h.engine.startRun({ workflow: 'row', subject: 'o/r#1', trigger });
    const handled: string[] = [];
    h.queue.consume(async (m) => {
      handled.push(m.kind);
      await h.engine.handle(m);
    });
    await h.settle();

    const done = await h.store.getRun(run.id);
    expect(done).toMatchObject({ status: 'succeeded' });
    // The first step's message ran all four; the final report is a message of its own.
    expect(handled).toEqual(['step', 'report']);
    expect(counting.count('update')).toBe(1);
    // Quick steps without effects: each one's commit waits for the next step's, and the last
    // writes all four (transitions.ts fused); the version still counts one per step.
    expect(counting.count('commit')).toBe(1);
    expect(done?.version).toBe(run.version + 5);
    expect(typesAndNodes(await h.store.listEvents(run.id))).toEqual(linearHistory(['a', 'b', 'c', 'd']));
    expectContiguous(await h.store.listEvents(run.id));
    expect(done?.lease).toBeUndefined();
    // Reports only go forward and end at the final version (quick steps in between may be shown once, by the state they end in).
    expect(reporter.versions.at(-1)).toBe(done!.version);
    expect([...reporter.versions].sort((x, y) => x - y)).toEqual(reporter.versions);
    expect((await h.store.getReportState(run.id)).reported).toBe(done!.version);
  });

  it('stop after `chainSteps` and send the next step as a message', async () => {
    const counting = await countingStore();
    const h = await harness([workflow()], { store: counting.store, chainSteps: 1, autoConsume: false });
    const { run } = await h.engine.startRun({ workflow: 'row', subject: 'o/r#2', trigger });
    const handled: string[] = [];
    h.queue.consume(async (m) => {
      handled.push(m.kind);
      await h.engine.handle(m);
    });
    await h.settle();

    expect((await h.store.getRun(run.id))?.status).toBe('succeeded');
    // a (+ b chained), then c (+ d chained), then the final report; a commit for each pair.
    expect(handled).toEqual(['step', 'step', 'report']);
    expect(counting.count('update')).toBe(2);
    expect(counting.count('commit')).toBe(2);
  });

  it('write the steps before a chained step when it needs its lease: before its first effect, and once it has run a while', async () => {
    const counting = await countingStore();
    const seen: Array<[string, number | undefined]> = [];
    const def = workflow();
    // c has an effect: a and b are written (leasing c) before it runs, fenced by that lease.
    def.nodes.c = {
      handler: async (ctx) => {
        const stored = async () => (await counting.store.getRun(ctx.run.id))?.step?.node;
        seen.push([`c before: ${await stored()}`, counting.count('commit')]);
        await ctx.effect('send', async () => {
          seen.push([`c effect: ${await stored()}`, counting.count('commit')]);
        });
        return { output: { c: 1 } };
      },
    };
    // d is slow: past `lazyLeaseMs`, c's outcome is written (leasing d), so d is seen under way.
    let wrote!: () => void;
    const written = new Promise<void>((resolve) => {
      wrote = resolve;
    });
    def.nodes.d = {
      handler: async (ctx) => {
        const poll = async (): Promise<void> => {
          const stored = await counting.store.getRun(ctx.run.id);
          if (stored?.step?.node === 'd' && stored.lease) return wrote();
          await new Promise((r) => setImmediate(r));
          return poll();
        };
        await Promise.race([poll(), written]);
        return { output: { d: 1 } };
      },
    };
    const h = await harness([def], {
      store: counting.store,
      chainSteps: 8,
      autoConsume: false,
      lazyLeaseMs: 20,
    });
    const { run } = await h.engine.startRun({ workflow: 'row', subject: 'o/r#6', trigger });
    h.queue.consume(async (m) => {
      await h.engine.handle(m);
    });
    await h.settle();

    const done = await h.store.getRun(run.id);
    expect(done).toMatchObject({ status: 'succeeded', version: run.version + 5 });
    expect(seen).toEqual([
      ['c before: a', 0],
      ['c effect: c', 1],
    ]);
    // a+b before c's effect, c once d ran a while, d: three commits for four steps.
    expect(counting.count('commit')).toBe(3);
    const events = await h.store.listEvents(run.id);
    expect(typesAndNodes(events)).toEqual(linearHistory(['a', 'b', 'c', 'd']));
    expectContiguous(events);
  });

  it('write the steps before alone when their fused commit is throttled, then give the last one back to try again', async () => {
    const clock = testClock();
    const counting = await countingStore();
    const store = counting.store;
    const commit = store.commit.bind(store);
    let throttled = 0;
    store.commit = async (input) => {
      // The commit of all four (a version more than one above the expected one), once.
      if (input.run.version > input.expectedVersion + 1 && throttled++ === 0)
        throw new ThrottledError('throttled past its retries', { runId: input.run.id });
      return commit(input);
    };
    const h = await harness([workflow()], { store, chainSteps: 8, now: clock.now });
    const { run } = await h.engine.startRun({ workflow: 'row', subject: 'o/r#7', trigger });
    const done = await drive(h, clock, run.id);

    expect(throttled).toBeGreaterThan(0);
    expect(done.status).toBe('succeeded');
    // a, b and c were written alone (leasing d), d's lease was given back (a write), and d ran
    // again under a lease of its own: two commits, the history as if nothing had happened.
    expect(counting.count('commit')).toBe(2);
    expect(counting.count('update')).toBe(3);
    const events = await h.store.listEvents(run.id);
    expect(typesAndNodes(events)).toEqual(linearHistory(['a', 'b', 'c', 'd']));
    expectContiguous(events);
  });

  it('send the next step as a message when the invocation has no time left for it', async () => {
    const h = await harness([workflow()], { chainSteps: 8, autoConsume: false });
    const { run } = await h.engine.startRun({ workflow: 'row', subject: 'o/r#3', trigger });

    // The node timeout is 30 s by default: 10 s left is too little to start b here.
    await h.engine.handle({ kind: 'step', runId: run.id, seq: run.step!.seq }, { remainingMs: () => 10_000 });

    const after = await h.store.getRun(run.id);
    expect(after).toMatchObject({ status: 'running', step: { node: 'b' } });
    expect(after?.lease).toBeUndefined();
    // (The first message is still pending too: this test handled it by hand.)
    expect(h.queue.pending.at(-1)).toMatchObject({ kind: 'step', runId: run.id, seq: after!.step!.seq });
  });

  it('never run a step early: one that is due later keeps its delayed message', async () => {
    // b fails once with a retryable error: its retry is due after a backoff, so it is not chained.
    let fails = 1;
    const def = workflow();
    def.nodes.b = {
      retry: { maxAttempts: 3, initialDelayMs: 60_000 },
      handler: async () => {
        if (fails-- > 0) throw Object.assign(new Error('flaky'), { retryable: true });
        return { output: { b: 1 } };
      },
    };
    const h = await harness([def], { chainSteps: 8, autoConsume: false });
    const { run } = await h.engine.startRun({ workflow: 'row', subject: 'o/r#4', trigger });

    await h.engine.handle({ kind: 'step', runId: run.id, seq: run.step!.seq });

    const after = await h.store.getRun(run.id);
    expect(after).toMatchObject({ status: 'running', step: { node: 'b', attempt: 2 } });
    expect(after?.lease).toBeUndefined();
    expect(h.queue.pending.at(-1)).toMatchObject({ kind: 'step', runId: run.id, seq: after!.step!.seq });
  });

  it('are not chained by an engine without `chainSteps` (the default): one step per message', async () => {
    const counting = await countingStore();
    const h = await harness([workflow()], { store: counting.store, autoConsume: false });
    const { run } = await h.engine.startRun({ workflow: 'row', subject: 'o/r#5', trigger });

    await h.engine.handle({ kind: 'step', runId: run.id, seq: run.step!.seq });

    expect(await h.store.getRun(run.id)).toMatchObject({ step: { node: 'b' } });
    expect(counting.count('commit')).toBe(1);
  });
});
