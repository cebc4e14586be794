import { beforeEach, describe, expect, it } from 'vitest';
import type { WorkItem } from '../../lib/agents/work-queue.ts';
import { makeHandler } from '../../lib/app/sweeper.ts';
import { createWorkerApp, type WorkerApp } from '../../lib/app/worker.ts';
import type { Run } from '../../lib/engine/types.ts';
import { InMemoryQueue } from '../../lib/queue/memory.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { type TestClock, testClock } from '../engine/kit.ts';
import { createTestStore } from '../support/dynamo.ts';

/** The shipped config; no GitHub or Discord credentials, so every outbound call is a dry run. */
const ENV: NodeJS.ProcessEnv = { SWITCHYARD_CONFIG: 'config/switchyard.yml' };

/** Without credentials there is nothing to ask GitHub: the recovery sweep says so and does nothing. */
const DRY_RUN_RECOVERY = {
  redelivery: expect.objectContaining({ skipped: expect.stringContaining('dry-run'), redelivered: 0 }),
  reconcile: expect.objectContaining({ skipped: expect.stringContaining('dry-run'), resumed: 0 }),
};

describe('sweeper function', () => {
  let store: DynamoRunStore;
  let queue: InMemoryQueue;
  let clock: TestClock;
  let app: WorkerApp;
  let sweep: ReturnType<typeof makeHandler>;

  beforeEach(async () => {
    store = await createTestStore();
    queue = new InMemoryQueue(); // no consumer: what the sweeper sends stays in `pending`
    clock = testClock();
    app = await createWorkerApp({ store, queue, env: ENV, now: clock.now });
    sweep = makeHandler(async () => app);
  });

  const start = async (issue: number): Promise<Run> =>
    (
      await app.engine.startRun({
        workflow: 'issue-pipeline',
        subject: `acme/app#${issue}`,
        trigger: { source: 'test', actor: 'alice' },
      })
    ).run;

  function workItem(run: Run, task: string): WorkItem {
    return {
      id: `${run.id}.${task}.1`,
      runId: run.id,
      agent: 'coder',
      agentType: 'coder',
      repo: 'acme/app',
      priority: 0,
      createdAt: clock.now().toISOString(),
      limit: 2,
      task,
    };
  }

  it('reports a sweep of an empty table as all zeros', async () => {
    const report = await sweep();

    expect(report).toEqual({
      examined: 0,
      reenqueued: 0,
      expired: 0,
      reported: 0,
      retired: 0,
      stuck: 0,
      failed: 0,
      backedOff: 0,
      slotsReleased: 0,
      woken: 0,
      recovery: DRY_RUN_RECOVERY,
    });
  });

  it('re-sends the step of a run whose message was lost, and its missing report', async () => {
    const run = await start(1);
    queue.pending.length = 0; // the step message is lost
    clock.advance(2 * 60_000);

    const report = await sweep();

    expect(report).toEqual({
      examined: 1,
      reenqueued: 1,
      expired: 0,
      reported: 1,
      retired: 0,
      stuck: 0,
      failed: 0,
      backedOff: 0,
      slotsReleased: 0,
      woken: 0,
      recovery: DRY_RUN_RECOVERY,
    });
    expect(queue.pending).toEqual([
      { kind: 'report', runId: run.id, version: run.version },
      {
        kind: 'step',
        runId: run.id,
        seq: 1,
        workflow: 'issue-pipeline',
        node: 'intake',
        version: run.version,
        due: Date.parse(run.step!.notBefore),
      },
    ]);
  });

  it('frees the slot of a run that ended, and wakes a run whose admission it missed', async () => {
    const ended = await start(1);
    await app.engine.signal(ended.id, { type: 'cancel', by: 'alice', reason: 'not needed' });
    const parked = await start(2);
    const endedItem = workItem(ended, 't1');
    const parkedItem = workItem(parked, 't1');
    // The parked run waits at execute for its queue slot, as the agents' execute node leaves it.
    const waiting: Run = {
      ...parked,
      status: 'waiting',
      node: 'execute',
      version: parked.version + 1,
      data: { work: { current: { item: parkedItem.id } } },
      gate: {
        node: 'execute',
        kind: 'agent',
        correlation: `queue:${parkedItem.id}`,
        expiresAt: new Date(clock.now().getTime() + 3_600_000).toISOString(),
      },
    };
    delete waiting.step;
    await store.commit({ run: waiting, expectedVersion: parked.version, events: [] });
    await app.agents.hub.queue.enqueue(endedItem);
    await app.agents.hub.queue.enqueue(parkedItem);
    await app.agents.hub.queue.admit(); // both hold slots; neither run heard of it

    const report = await sweep();

    expect(report).toMatchObject({ slotsReleased: 1, woken: 1 });
    const { running } = await app.agents.hub.queue.snapshot();
    expect(running.map((i) => i.id)).toEqual([parkedItem.id]);
    expect(await store.getRun(parked.id)).toMatchObject({ status: 'running', node: 'execute' });
  });
});
