import { afterEach, describe, expect, it, vi } from 'vitest';
import { isTerminal } from '../../lib/engine/types.ts';
import { type AgentWorld, agentWorld } from './support.ts';

/**
 * A worker dies after the execute step dispatched the agent's workflow but before the step
 * committed. The retried step replays the dispatch from its dispatch record, the effect's
 * journal; that record must keep the first attempt's times, or the workflow's completion (created
 * before the retry) is ignored as "created before the current item was dispatched" and the task
 * waits until it times out.
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
});
