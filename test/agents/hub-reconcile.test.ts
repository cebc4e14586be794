import { afterEach, describe, expect, it } from 'vitest';
import type { FaultPoint } from '../../lib/engine/engine.ts';
import type { Run } from '../../lib/engine/types.ts';
import { type AgentWorld, agentWorld } from './support.ts';

/**
 * The sweeper's safety net (`AgentHub.reconcile`) gives back queue places and slots that ended
 * runs left behind. It must never take one from a run that is mid-step: that step may be queueing
 * or admitting exactly that item, with the stored run still showing the item before.
 */
describe('the hub reconcile and a run mid-step', () => {
  let w: AgentWorld;
  afterEach(async () => {
    await w?.stop();
  });

  it('leaves the item a mid-step run just queued and admitted in place (its slot stays held)', async () => {
    let sweepDuring: ((run: Run) => Promise<void>) | undefined;
    w = await agentWorld({
      faults: async (point: FaultPoint, run: Run) => {
        if (point !== 'after-effect' || !sweepDuring) return;
        const sweep = sweepDuring;
        sweepDuring = undefined;
        await sweep(run);
      },
    });
    const run = await w.start([{ agent: 'coder' }, { agent: 'coder' }]);
    expect(w.fake.dispatches).toHaveLength(1);

    // The next step completes t1 and queues, admits and dispatches t2; before it commits, the
    // sweeper's reconcile runs and sees the stored run still at t1's item.
    let seen: { status: string; current: string | undefined } | undefined;
    sweepDuring = async (leased) => {
      seen = {
        status: (await w.run(leased.id)).status,
        current: (leased.data.work as { current?: { item?: string } }).current?.item,
      };
      await w.hub.reconcile();
    };
    await w.complete(run.id);

    expect(seen).toEqual({ status: 'running', current: `${run.id}.t1.1` });
    expect(w.fake.dispatches).toHaveLength(2);
    expect(await w.hub.queue.isRunning(`${run.id}.t2.1`)).toBe(true);
    expect((await w.hub.queue.runningByAgent()).get('coder')).toBe(1);

    // Once t2 is answered the slot is given back, and the run ends.
    await w.complete(run.id);
    expect((await w.run(run.id)).status).toBe('succeeded');
    expect((await w.hub.queue.runningByAgent()).get('coder')).toBeUndefined();
  });

  it('an admission woken while its run is mid-step keeps its slot (the run takes it when it waits)', async () => {
    let during: ((run: Run) => Promise<void>) | undefined;
    w = await agentWorld({
      faults: async (point: FaultPoint, run: Run) => {
        if (point !== 'after-lease' || !during) return;
        const f = during;
        during = undefined;
        await f(run);
      },
    });
    const run = await w.start([{ agent: 'coder' }, { agent: 'coder' }]);
    const next = {
      id: `${run.id}.t2.1`,
      runId: run.id,
      agent: 'reviewer',
      agentType: 'reviewer',
      repo: 'acme/app',
      priority: 0,
      createdAt: new Date(0).toISOString(),
      limit: 1,
    };
    // Another worker's pump admits the item this step is about to queue, and wakes its run.
    let kept: boolean | undefined;
    during = async () => {
      await w.hub.queue.enqueue(next);
      const admitted = await w.hub.queue.admit();
      expect(admitted.map((a) => a.id)).toEqual([next.id]);
      expect(await w.hub.wake(admitted[0]!)).toBe(true);
      kept = await w.hub.queue.isRunning(next.id);
    };
    await w.complete(run.id);
    expect(kept).toBe(true);
  });
});
