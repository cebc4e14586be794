import { afterEach, describe, expect, it, vi } from 'vitest';
import { isTerminal } from '../../lib/engine/types.ts';
import { until } from '../support/stack-harness.ts';
import { type AgentWorld, agentWorld } from './support.ts';

/**
 * A worker dies after the execute step dispatched the agent's workflow but before the step
 * committed. The retried step replays the dispatch from its dispatch record, the effect's
 * journal; that record must keep the first attempt's times, or the workflow's completion (created
 * before the retry) is ignored as "created before the current item was dispatched" and the task
 * waits until it times out.
 *
 * A worker that stalls past its lease instead (taken over, and the run goes on to later items)
 * must not replace a later item's dispatch record when it wakes: that item's answer would then
 * look like a stale one, and the run would wait for it until it timed out.
 */
describe('a retried execute step', () => {
  let w: AgentWorld;
  let crashed: boolean;
  afterEach(async () => {
    await w?.stop();
  });

  /** A world whose first execute step dies right after its dispatch. */
  async function dyingOnce(): Promise<AgentWorld> {
    crashed = false;
    return agentWorld({
      faults: (point, run) => {
        if (point !== 'after-effect' || run.step?.node !== 'execute' || crashed) return;
        crashed = true;
        throw new Error('worker died after the dispatch');
      },
    });
  }

  /** The lease lapses; the sweeper takes the step over, well after the first attempt. */
  async function sweptUntilWaiting(runId: string) {
    let run = await w.run(runId);
    for (let round = 0; round < 6 && run.status !== 'waiting'; round++) {
      w.clock.advance(10 * 60_000);
      await w.h.engine.sweep();
      await w.h.settle();
      run = await w.run(runId);
    }
    return run;
  }

  it('keeps the first dispatch time, dispatches once, and accepts the completion', async () => {
    w = await dyingOnce();
    const firstAttemptAt = w.clock.now().getTime();
    const claims = vi.spyOn(w.h.store, 'claimEffect');
    const ledgerRecords = vi.spyOn(w.h.store, 'recordEffect');
    const started = await w.start([{ agent: 'coder' }]);
    expect(crashed).toBe(true);
    expect(w.fake.dispatches).toHaveLength(1);
    const first = (await w.hub.queue.getDispatch(started.id))!.value;

    const run = await sweptUntilWaiting(started.id);
    expect(run.status).toBe('waiting');
    expect(run.gate).toMatchObject({ kind: 'agent', correlation: `${started.id}.t1.1` });
    const succeeded = (await w.events(started.id)).find((e) => e.type === 'step.succeeded');
    expect(succeeded?.detail).toMatchObject({ attempt: 2 });
    expect(w.fake.dispatches).toHaveLength(1); // the journal replayed it
    // That journal is the dispatch record (recorded 'by-caller'), and so is the claim: the retry
    // found it dispatched there; the ledger was never written, by either attempt.
    expect(claims).not.toHaveBeenCalled();
    expect(ledgerRecords).not.toHaveBeenCalled();

    const rec = (await w.hub.queue.getDispatch(started.id))!.value;
    expect(rec.state).toBe('dispatched');
    expect(rec.claimVersion).toBe(first.claimVersion);
    expect(first.claimVersion).toBeGreaterThan(0);
    expect(rec.startedAt).toBe(first.startedAt);
    expect(Date.parse(rec.startedAt)).toBeLessThan(firstAttemptAt + 60_000);
    expect(rec.dispatchedAt).toBe(first.startedAt);

    // The default run-name carries only the run id, so the completion is dated against the
    // dispatch: it was created at the first attempt, ten minutes before the retry.
    const res = await w.complete(started.id, 'success');
    expect(res).toMatchObject({ outcome: 'resumed', runId: started.id });
    const done = await w.run(started.id);
    expect(isTerminal(done.status)).toBe(true);
    expect(done.status).toBe('succeeded');
  });

  it('replays a dispatch the previous version journaled in the ledger, and records it in the dispatch record', async () => {
    w = await dyingOnce();
    const started = await w.start([{ agent: 'coder' }]);
    expect(crashed).toBe(true);
    const dispatched = (await w.hub.queue.getDispatch(started.id))!.value;
    // As the previous version left it: the dispatch claimed and recorded in the effect ledger
    // under the dead worker's lease, the worker gone before it updated the dispatch record (which
    // that version wrote without a claim).
    const leased = await w.run(started.id);
    const ref = { scope: 'run' as const, name: `dispatch:${dispatched.item}` };
    const fence = { version: leased.version, owner: leased.lease!.owner, now: w.clock.now().toISOString() };
    expect(await w.h.store.claimEffect(started.id, ref, fence, 'previous')).toMatchObject({
      outcome: 'claimed',
    });
    await w.h.store.recordEffect(started.id, ref, 'previous', {
      executor: 'github-actions',
      dryRun: false,
      details: {
        repo: dispatched.repo,
        workflow: dispatched.workflow,
        workflowRunId: dispatched.workflowRunId,
      },
    });
    await w.hub.queue.updateDispatch(
      started.id,
      ({ workflowRunId: _id, workflowRunUrl: _url, claimVersion: _claim, ...d }) => ({
        ...d,
        state: 'dispatching',
      }),
    );

    expect((await sweptUntilWaiting(started.id)).status).toBe('waiting');
    expect(w.fake.dispatches).toHaveLength(1);
    const rec = (await w.hub.queue.getDispatch(started.id))!.value;
    expect(rec).toMatchObject({
      state: 'dispatched',
      workflowRunId: dispatched.workflowRunId,
      dispatchedAt: dispatched.startedAt,
    });
    expect((await w.complete(started.id, 'success')) as object).toMatchObject({ outcome: 'resumed' });
  });

  it('a step that stalled past its lease never replaces the record of an item the run went on to', async () => {
    // The execute step an answer starts stalls right after its lease, once (a worker frozen).
    let stall = false;
    let reached!: () => void;
    const stalled = new Promise<void>((r) => {
      reached = r;
    });
    let wake!: () => void;
    const woken = new Promise<void>((r) => {
      wake = r;
    });
    w = await agentWorld({
      faults: async (point, run) => {
        if (!stall || point !== 'after-lease' || run.step?.node !== 'execute') return;
        stall = false;
        reached();
        await woken;
      },
    });
    // Three agents of one slot each: the stale step finds a free slot for the item it dispatches.
    const started = await w.start([{ agent: 'coder' }, { agent: 'coder2' }, { agent: 'reviewer' }]);
    const id = started.id;
    // GitHub creates each workflow run when it is dispatched, by the run's clock (the stand-in
    // dates them by the wall clock, and this test moves the run's clock on).
    w.fake.onDispatch = async (wr) => {
      wr.created_at = w.clock.now().toISOString();
    };
    /** The current item's workflow finishes; its webhook is answered (not waiting for the queue: a step is frozen). */
    const finish = async () =>
      expect(await w.complete(id, 'success', { settle: false })).toMatchObject({ outcome: 'resumed' });
    const dispatched = (item: string) =>
      until(
        `${item} dispatched`,
        async () => {
          const rec = (await w.hub.queue.getDispatch(id))?.value;
          return rec?.item === `${id}.${item}` && rec.state === 'dispatched' && rec;
        },
        30_000,
        20,
      );
    await dispatched('t1.1');

    stall = true;
    await finish();
    await stalled;
    // Its lease lapses; the sweeper's message runs the step again, and the run goes on to item 3.
    w.clock.advance(10 * 60_000);
    await w.h.engine.sweep();
    await dispatched('t2.1');
    await finish();
    const third = await dispatched('t3.1');
    expect(w.fake.dispatches).toHaveLength(3);

    // The frozen step wakes on the run as it was when item 1 was answered, and gets as far as the
    // dispatch of item 2: its claim is refused (item 3's record was claimed by a later lease), and
    // nothing is sent.
    wake();
    await w.h.settle();
    expect((await w.hub.queue.getDispatch(id))?.value).toEqual(third);
    expect(w.fake.dispatches).toHaveLength(3);
    // So item 3's answer is its run's: the run goes on and ends.
    await finish();
    await w.h.settle();
    expect((await w.run(id)).status).toBe('succeeded');
  });
});
