/**
 * The bookkeeping of reports (issue 13, cost): what the report item costs per run, without giving
 * up a guarantee. A reporter that goes on to a newer version completes and claims it in one write
 * (the claim never free in between); reporters' notes ride on the completion and come back only
 * while they still describe what is shown; a carried report waits a moment for its step, and a
 * step that committed meanwhile leaves it to the report its commit sent (quick steps in a row are
 * shown once, in the state they end in; a slow step's lease is shown after the wait). A version
 * whose step is under way is not chased: the step's commit is followed by a report of its own.
 */
import { describe, expect, it, vi } from 'vitest';
import type { ReportContext, Reporter } from '../../lib/engine/engine.ts';
import type { Run } from '../../lib/engine/types.ts';
import type { WorkflowDefinition } from '../../lib/engine/workflow.ts';
import { harness } from '../support/harness.ts';

const trigger = { source: 'test' as const };

/** A promise with its resolver, to wait on an event instead of a timer. */
function signal<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const twoNodes = (a: () => Promise<void> = async () => {}): WorkflowDefinition => ({
  name: 'two',
  version: 1,
  start: 'a',
  nodes: {
    a: {
      handler: async () => {
        await a();
        return { output: { a: true } };
      },
    },
    b: { handler: async () => ({ output: { b: true } }) },
  },
  edges: [{ from: 'a', to: 'b' }],
});

/** A reporter that records what it shows, holding its first report until `proceed`. */
function holdingFirst() {
  const shown: Array<Pick<Run, 'version' | 'status'>> = [];
  const reached = signal();
  const proceed = signal();
  const reporter: Reporter = {
    name: 'list',
    report: async (run) => {
      shown.push({ version: run.version, status: run.status });
      if (shown.length === 1) {
        reached.resolve();
        await proceed.promise;
      }
    },
  };
  return { shown, reached, proceed, reporter };
}

describe('report bookkeeping', () => {
  it('goes on to a version committed meanwhile with one write, the claim never left free', async () => {
    const shown: number[] = [];
    const reached = signal();
    const proceed = signal();
    const reporter: Reporter = {
      name: 'list',
      report: async (run) => {
        shown.push(run.version);
        if (shown.length === 1) {
          reached.resolve();
          await proceed.promise;
        }
      },
    };
    // `a` parks the run at a gate: a version with no step to come, which only a report shows.
    const h = await harness(
      [
        {
          ...twoNodes(),
          nodes: {
            ...twoNodes().nodes,
            a: { handler: async () => ({ wait: { kind: 'approval', expiresInMs: 60_000 } }) },
          },
        },
      ],
      { reporters: [reporter], autoConsume: false },
    );
    const claims = vi.spyOn(h.store, 'claimReport');
    const completions = vi.spyOn(h.store, 'completeReport');
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#1', trigger });
    h.queue.pending.splice(0);

    const reporting = h.engine.report(run.id);
    await reached.promise;
    // While the first version is being shown, a step commits: its report finds our claim live
    // and leaves the newer version to us.
    expect(await h.engine.executeStep(run.id, run.step!.seq)).toBe('committed');
    const committed = (await h.store.getRun(run.id))!;
    expect(await h.engine.report(run.id)).toBe('skipped');
    proceed.resolve();
    expect(await reporting).toBe('reported');

    expect(shown).toEqual([run.version, committed.version]);
    expect(claims).toHaveBeenCalledTimes(1);
    expect(completions.mock.calls.map((c) => [c[1], c[3]?.next?.version])).toEqual([
      [run.version, committed.version],
      [committed.version, undefined],
    ]);
    expect(await h.store.getReportState(run.id)).toMatchObject({ reported: committed.version });
    expect((await h.store.getReportState(run.id)).claimOwner).toBeUndefined();
  });

  it("does not chase a version whose step is due: the report its step's message carries shows it", async () => {
    const { shown, reached, proceed, reporter } = holdingFirst();
    const h = await harness([twoNodes()], { reporters: [reporter], autoConsume: false });
    const completions = vi.spyOn(h.store, 'completeReport');
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#6', trigger });
    h.queue.pending.splice(0);

    const reporting = h.engine.report(run.id);
    await reached.promise;
    // While the first version is shown, `a` commits; `b` is due, and its message carries a report.
    expect(await h.engine.executeStep(run.id, run.step!.seq)).toBe('committed');
    const committed = (await h.store.getRun(run.id))!;
    expect(h.queue.pending).toEqual([expect.objectContaining({ kind: 'step', report: committed.version })]);
    proceed.resolve();
    expect(await reporting).toBe('reported');

    // The reporter completed its own version and let the claim go; the message shows the rest.
    expect(completions.mock.calls.map((c) => [c[1], c[3]?.next])).toEqual([[run.version, undefined]]);
    expect((await h.store.getReportState(run.id)).claimOwner).toBeUndefined();
    for (let m = h.queue.pending.shift(); m; m = h.queue.pending.shift()) await h.engine.handle(m);
    const done = (await h.store.getRun(run.id))!;
    expect(done.status).toBe('succeeded');
    expect(shown.at(-1)).toEqual({ version: done.version, status: 'succeeded' });
    expect(shown.map((s) => s.version)).not.toContain(committed.version);
  });

  it("does not chase a version whose step is under way: that step's commit is reported", async () => {
    const { shown, reached, proceed, reporter } = holdingFirst();
    const stepStarted = signal();
    const finishStep = signal();
    const h = await harness(
      [
        twoNodes(async () => {
          stepStarted.resolve();
          await finishStep.promise;
        }),
      ],
      { reporters: [reporter], autoConsume: false },
    );
    const completions = vi.spyOn(h.store, 'completeReport');
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#5', trigger });
    h.queue.pending.splice(0);

    const reporting = h.engine.report(run.id);
    await reached.promise;
    // While the first version is shown, a worker leases the step and runs it (it waits for the test).
    const stepping = h.engine.executeStep(run.id, run.step!.seq);
    await stepStarted.promise;
    const leased = (await h.store.getRun(run.id))!;
    expect(leased).toMatchObject({ version: run.version + 1, status: 'running' });
    proceed.resolve();
    expect(await reporting).toBe('reported');

    // The lease's version was about to pass: the reporter completed its own and let the claim go.
    expect(shown).toEqual([{ version: run.version, status: 'queued' }]);
    expect(completions.mock.calls.map((c) => [c[1], c[3]?.next])).toEqual([[run.version, undefined]]);
    expect((await h.store.getReportState(run.id)).claimOwner).toBeUndefined();

    // The step commits, and the report its commit sent shows where it led.
    finishStep.resolve();
    expect(await stepping).toBe('committed');
    const committed = (await h.store.getRun(run.id))!;
    expect(h.queue.pending).toEqual([expect.objectContaining({ kind: 'step', report: committed.version })]);
    expect(await h.engine.report(run.id)).toBe('reported');
    expect(shown.map((s) => s.version)).toEqual([run.version, committed.version]);
    expect((await h.store.getReportState(run.id)).reported).toBe(committed.version);
  });

  it('gives a reporter its note back, but not once a claim lapsed (its worker may have shown more)', async () => {
    let clock = Date.parse('2030-01-01T00:00:00.000Z');
    const seen: Array<{ version: number; noted: string | undefined }> = [];
    let fail = false;
    const reporter: Reporter = {
      name: 'memo',
      report: async (run: Run, ctx: ReportContext) => {
        seen.push({ version: run.version, noted: ctx.noted });
        ctx.note?.(`shown ${run.version}`);
        if (fail) throw Object.assign(new Error('Discord answered 503'), { status: 503 });
      },
    };
    const h = await harness([twoNodes()], {
      reporters: [reporter],
      autoConsume: false,
      now: () => new Date(clock),
      reportClaimMs: 30_000,
    });
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#2', trigger });
    h.queue.pending.splice(0);

    await h.engine.report(run.id);
    await h.engine.executeStep(run.id, run.step!.seq);
    await h.engine.report(run.id);
    const v3 = (await h.store.getRun(run.id))!;
    expect(seen).toEqual([
      { version: run.version, noted: undefined },
      { version: v3.version, noted: `shown ${run.version}` },
    ]);

    // A report fails after showing something: its claim is left to lapse, and whoever takes it
    // over must not trust the note of the last completed report.
    const next = v3.step!.seq;
    h.queue.pending.splice(0);
    await h.engine.executeStep(run.id, next);
    fail = true;
    await expect(h.engine.report(run.id)).rejects.toThrow(/503/);
    fail = false;
    clock += 31_000;
    expect(await h.engine.report(run.id)).toBe('reported');
    expect(seen.slice(2).map((s) => s.noted)).toEqual([`shown ${v3.version}`, undefined]);
  });

  it("leaves a quick step's report to the message its commit sent: quick steps are shown once, in the state they end in", async () => {
    const shown: number[] = [];
    const reporter: Reporter = { name: 'list', report: async (run) => void shown.push(run.version) };
    // A wait no step of this test comes near: each carried report waits for its step to end.
    const h = await harness([twoNodes()], {
      reporters: [reporter],
      autoConsume: false,
      carriedReportWaitMs: 60_000,
    });
    const claims = vi.spyOn(h.store, 'claimReport');
    const completions = vi.spyOn(h.store, 'completeReport');
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#3', trigger });
    const [first] = h.queue.pending.splice(0);
    expect(first).toMatchObject({ kind: 'step', report: run.version });

    expect(await h.engine.handle(first!)).toBe('committed');
    // The step committed (its lease, then its outcome) and its successor carries that report.
    const outcome = (await h.store.getRun(run.id))!;
    expect(outcome.version).toBe(run.version + 2);
    expect(shown).toEqual([]);
    expect(h.queue.pending).toEqual([expect.objectContaining({ kind: 'step', report: outcome.version })]);

    h.queue.consume(async (m) => void (await h.engine.handle(m)));
    await h.settle();

    const done = (await h.store.getRun(run.id))!;
    expect(done.status).toBe('succeeded');
    expect(shown).toEqual([done.version]);
    expect(claims).toHaveBeenCalledTimes(1);
    // A final state's report completes by retiring the run: no completion of its own.
    expect(completions).not.toHaveBeenCalled();
    expect(await h.store.getReportState(run.id)).toEqual({ reported: done.version, retired: true });
  });

  it("shows a slow step's lease once the wait is over, while the step still runs", async () => {
    const shown: Array<Pick<Run, 'version' | 'status'>> = [];
    const reportedOnce = signal();
    const finishStep = signal();
    const reporter: Reporter = {
      name: 'list',
      report: async (run) => {
        shown.push({ version: run.version, status: run.status });
        reportedOnce.resolve();
      },
    };
    const h = await harness([twoNodes(() => finishStep.promise)], {
      reporters: [reporter],
      autoConsume: false, // the default wait (2 s): far longer than the lease's one write
    });
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#4', trigger });
    const [first] = h.queue.pending.splice(0);

    const handled = h.engine.handle(first!);
    await reportedOnce.promise;
    // The step is still running (it waits for the test): the report showed its lease.
    expect(shown).toEqual([{ version: run.version + 1, status: 'running' }]);
    finishStep.resolve();
    expect(await handled).toBe('committed');
    await h.engine.report(run.id);
    expect((await h.store.getReportState(run.id)).reported).toBe(run.version + 2);
  });
});
