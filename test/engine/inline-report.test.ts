/**
 * A step whose commit leaves nothing due now (a gate, the end) reports its new state in its own
 * invocation when the engine has `reportInline` (the worker app does): no report message, so no
 * second receive, delete and invocation. Only with time left in the invocation; a failed report is
 * not lost.
 */
import { describe, expect, it, vi } from 'vitest';
import type { Reporter } from '../../lib/engine/engine.ts';
import type { StepBudget } from '../../lib/engine/steps.ts';
import { InMemoryQueue } from '../../lib/queue/memory.ts';
import { harness } from '../support/harness.ts';
import { approvalThenShip, recordingReporter } from './kit.ts';

const trigger = { source: 'test' as const };
const plenty: StepBudget = { remainingMs: () => 600_000 };

/** `ask` opens an approval gate; approved, `ship` ends the run. */
const gated = approvalThenShip;

describe('a report made by the step that committed it', () => {
  it('shows a gate and the end without a report message', async () => {
    const reporter = recordingReporter();
    const h = await harness([gated], { reporters: [reporter], autoConsume: false, reportInline: true });
    const { run } = await h.engine.startRun({ workflow: 'gated', subject: 'o/r#1', trigger });
    const handled: string[] = [];
    h.queue.consume(async (m) => {
      handled.push(m.kind);
      await h.engine.handle(m, plenty);
    });
    await h.settle();

    const parked = (await h.store.getRun(run.id))!;
    expect(parked.status).toBe('waiting');
    expect(reporter.seen.at(-1)).toEqual({ status: 'waiting', version: parked.version });
    expect((await h.store.getReportState(run.id)).reported).toBe(parked.version);

    await h.engine.signal(run.id, { type: 'approve', by: 'alice' });
    await h.settle();

    const done = (await h.store.getRun(run.id))!;
    expect(done.status).toBe('succeeded');
    expect(reporter.seen.at(-1)).toMatchObject({ status: 'succeeded', version: done.version });
    expect((await h.store.getReportState(run.id)).reported).toBe(done.version);
    // Two steps, each its own message; the gate's and the end's reports made by them.
    expect(handled).toEqual(['step', 'step']);
    expect(h.queue.sent.filter((s) => s.message.kind === 'report')).toEqual([]);
  });

  it('shows the run as its step committed it, without reading it back first', async () => {
    const reporter = recordingReporter();
    const h = await harness([gated], { reporters: [reporter], autoConsume: false, reportInline: true });
    const { run } = await h.engine.startRun({ workflow: 'gated', subject: 'o/r#3', trigger });
    const [first] = h.queue.pending.splice(0);
    const names = ['getRun', 'leaseStep', 'commit', 'claimReport', 'completeReport'] as const;
    const spies = names.map((name) => vi.spyOn(h.store, name));
    const order = () =>
      spies
        .flatMap((spy, i) => spy.mock.invocationCallOrder.map((at) => ({ at, name: names[i]! })))
        .sort((a, b) => a.at - b.at)
        .map((c) => c.name);

    await h.engine.handle(first!, plenty);

    // Leased from its message without a read; the gate it committed carries the report's claim
    // and is shown from the commit, then the run is read only to find what came after it.
    expect(order()).toEqual(['leaseStep', 'commit', 'getRun', 'completeReport', 'getRun']);
    expect(reporter.seen.at(-1)).toEqual({ status: 'waiting', version: run.version + 2 });
    expect((await h.store.getRun(run.id))!.reporting).toMatchObject({
      owner: h.engine.owner,
      version: run.version + 2,
    });
  });

  it('shows the end without reading the run at all: a succeeded run has no later version', async () => {
    const reporter = recordingReporter();
    const h = await harness([gated], { reporters: [reporter], autoConsume: false, reportInline: true });
    const { run } = await h.engine.startRun({ workflow: 'gated', subject: 'o/r#4', trigger });
    await h.engine.handle(h.queue.pending.splice(0)[0]!, plenty);
    await h.engine.signal(run.id, { type: 'approve', by: 'alice' });
    const [last] = h.queue.pending.splice(0);
    const reads = vi.spyOn(h.store, 'getRun');

    await h.engine.handle(last!, plenty);

    const done = (await h.store.getRun(run.id))!;
    expect(done.status).toBe('succeeded');
    expect(reporter.seen.at(-1)).toMatchObject({ status: 'succeeded', version: done.version });
    expect((await h.store.getReportState(run.id)).reported).toBe(done.version);
    expect(reads).toHaveBeenCalledTimes(1); // this test's own read above
  });

  it('sends the report message when the invocation has too little time left for it', async () => {
    const reporter = recordingReporter();
    const h = await harness([gated], { reporters: [reporter], autoConsume: false, reportInline: true });
    const { run } = await h.engine.startRun({ workflow: 'gated', subject: 'o/r#2', trigger });
    const [first] = h.queue.pending.splice(0);

    await h.engine.handle(first!, { remainingMs: () => 20_000 });

    expect(h.queue.pending).toEqual([
      expect.objectContaining({ kind: 'report', runId: run.id, version: run.version + 2 }),
    ]);
  });

  it('hands a failed report to a report message of its own, and the run is still shown', async () => {
    let failures = 1;
    const shown: string[] = [];
    const reporter: Reporter = {
      name: 'flaky',
      report: async (run) => {
        if (failures-- > 0) throw Object.assign(new Error('Discord answered 503'), { status: 503 });
        shown.push(run.status);
      },
    };
    // Real time: the report message waits out the failed attempt's claim (1 s here).
    const queue = new InMemoryQueue({ timeScale: 1, redeliveryMs: 5 });
    const h = await harness([gated], {
      reporters: [reporter],
      autoConsume: false,
      queue,
      reportClaimMs: 1000,
      reportInline: true,
    });
    const { run } = await h.engine.startRun({ workflow: 'gated', subject: 'o/r#3', trigger });
    const handled: string[] = [];
    h.queue.consume(async (m) => {
      handled.push(m.kind);
      await h.engine.handle(m, plenty);
    });
    await h.settle();

    const parked = (await h.store.getRun(run.id))!;
    expect(parked.status).toBe('waiting');
    expect(handled).toEqual(['step', 'report']);
    expect(shown.at(-1)).toBe('waiting');
    expect((await h.store.getReportState(run.id)).reported).toBe(parked.version);
  });
});
