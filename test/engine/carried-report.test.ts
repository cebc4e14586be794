/**
 * Reports carried by the step's own message (issue 13, cost): a step due now carries the report
 * of the version that scheduled it, so a transition is one message and one worker invocation.
 * The report must never hold up or fail the step, and a failed one is not lost.
 */
import { describe, expect, it } from 'vitest';
import type { Reporter } from '../../lib/engine/engine.ts';
import type { WorkflowDefinition } from '../../lib/engine/workflow.ts';
import { InMemoryQueue } from '../../lib/queue/memory.ts';
import { harness } from '../support/harness.ts';

const trigger = { source: 'test' as const };

const threeNodes: WorkflowDefinition = {
  name: 'three',
  version: 1,
  start: 'a',
  nodes: {
    a: { handler: async () => ({ output: { a: true } }) },
    b: { handler: async () => ({ output: { b: true } }) },
    c: { handler: async () => ({ output: { c: true } }) },
  },
  edges: [
    { from: 'a', to: 'b' },
    { from: 'b', to: 'c' },
  ],
};

describe('a report carried by a step message', () => {
  it('sends one message per transition, and every version still gets reported in order', async () => {
    const shown: number[] = [];
    const reporter: Reporter = { name: 'list', report: async (run) => void shown.push(run.version) };
    const h = await harness([threeNodes], { reporters: [reporter], autoConsume: false });
    const { run } = await h.engine.startRun({ workflow: 'three', subject: 'o/r#1', trigger });

    // The first step carries the report of the created run: one message, not two.
    expect(h.queue.pending).toEqual([
      {
        kind: 'step',
        runId: run.id,
        seq: run.step!.seq,
        report: run.version,
        workflow: 'three',
        node: 'a',
        version: run.version,
        due: Date.parse(run.step!.notBefore),
      },
    ]);
    const handled: string[] = [];
    h.queue.consume(async (m) => {
      handled.push(m.kind);
      await h.engine.handle(m);
    });
    await h.settle();

    const done = await h.store.getRun(run.id);
    expect(done).toMatchObject({ status: 'succeeded' });
    // Three steps, each carrying a report, and the final report on its own (no step follows it).
    expect(handled).toEqual(['step', 'step', 'step', 'report']);
    expect(shown[shown.length - 1]).toBe(done!.version);
    expect([...shown].sort((x, y) => x - y)).toEqual(shown);
    expect((await h.store.getReportState(run.id)).reported).toBe(done!.version);
  });

  it('runs the step when the report fails, and hands the report to a message of its own', async () => {
    let failures = 1;
    const shown: number[] = [];
    const reporter: Reporter = {
      name: 'flaky',
      report: async (run) => {
        if (failures-- > 0) throw Object.assign(new Error('Discord answered 503'), { status: 503 });
        shown.push(run.version);
      },
    };
    // Real time: the report message waits out the failed attempt's claim (1 s here).
    const queue = new InMemoryQueue({ timeScale: 1, redeliveryMs: 5 });
    const h = await harness([threeNodes], {
      reporters: [reporter],
      autoConsume: false,
      queue,
      reportClaimMs: 1000,
      // No wait for the step: the report runs beside it (a step that commits first would leave
      // the report to its successor's message, reporting.ts `carried`).
      carriedReportWaitMs: 0,
    });
    const { run } = await h.engine.startRun({ workflow: 'three', subject: 'o/r#2', trigger });
    const [first] = h.queue.pending.splice(0);
    const sentBefore = h.queue.sent.length;

    expect(await h.engine.handle(first!)).toBe('committed');
    // The step ran (its successor is queued, carrying its own report), and the failed report of
    // the first version came back as a report message.
    // (The step and the report run side by side: either message may be sent first.)
    expect(h.queue.pending).toHaveLength(2);
    expect(h.queue.pending).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'step', runId: run.id }),
        { kind: 'report', runId: run.id, version: run.version },
      ]),
    );
    expect(h.queue.sent.filter((o) => o.message.kind === 'report')).toEqual([
      { message: { kind: 'report', runId: run.id, version: run.version }, delaySeconds: 2 },
    ]);
    // Delivered as sent (with the report's delay), by a worker from now on.
    const outgoing = h.queue.sent.slice(sentBefore);
    h.queue.pending.splice(0);
    h.queue.consume(async (m) => void (await h.engine.handle(m)));
    await h.queue.send(outgoing);
    await h.settle();
    const done = await h.store.getRun(run.id);
    expect(done).toMatchObject({ status: 'succeeded', data: { a: true, b: true, c: true } });
    expect((await h.store.getReportState(run.id)).reported).toBe(done!.version);
  });
});
