/**
 * A step that reports its own commit takes the report's claim in that commit (`Run.reporting`),
 * not with a write of the report item: one write fewer per report. What the claim of the report
 * item guaranteed still holds: one worker reports a run at a time, newer versions committed
 * meanwhile are left to it, a worker that read the run before the commit and claimed the item
 * anyway makes the commit's report complete nothing (it is made again), and the newest state is
 * what stays shown.
 */
import { describe, expect, it, vi } from 'vitest';
import { Engine, type EngineOptions, type Reporter } from '../../lib/engine/engine.ts';
import type { StepBudget } from '../../lib/engine/steps.ts';
import type { Run } from '../../lib/engine/types.ts';
import { Workflow, type WorkflowDefinition, WorkflowRegistry } from '../../lib/engine/workflow.ts';
import type { WorkMessage } from '../../lib/queue/port.ts';
import { harness } from '../support/harness.ts';
import { approvalThenShip, deferred, testClock } from './kit.ts';

const trigger = { source: 'test' as const };
const plenty: StepBudget = { remainingMs: () => 600_000 };

/** `ask` opens an approval gate; approved, `ship` ends the run. */
const gated = approvalThenShip;

/** A reporter that records what it shows and can hold its first report of `status` until released. */
function holdingReporter(holdStatus?: string) {
  const shown: Array<{ version: number; status: string; by: string }> = [];
  const reached = deferred();
  const release = deferred();
  let held = false;
  const make = (by: string): Reporter => ({
    name: 'list',
    report: async (run) => {
      if (!held && run.status === holdStatus && by === 'a') {
        held = true;
        reached.resolve();
        await release.promise;
      }
      shown.push({ version: run.version, status: run.status, by });
    },
  });
  return { shown, reached, release, make };
}

/** Two workers (engines with their own owners and reporters) over one store and queue. */
async function twoWorkers(
  reporters: { make: (by: string) => Reporter },
  opts: { now?: () => Date; faults?: NonNullable<EngineOptions<unknown>['faults']> } = {},
) {
  const h = await harness([gated], {
    reporters: [reporters.make('a')],
    autoConsume: false,
    reportInline: true,
    owner: 'w-a',
    ...(opts.now ? { now: opts.now } : {}),
    ...(opts.faults ? { faults: opts.faults } : {}),
  });
  const b = new Engine({
    store: h.store,
    queue: h.queue,
    workflows: new WorkflowRegistry([new Workflow(gated)]),
    services: {},
    reporters: [reporters.make('b')],
    reportInline: true,
    owner: 'w-b',
    ...(opts.now ? { now: opts.now } : {}),
  });
  return { h, a: h.engine, b };
}

/** The step a step message starts, without the report of the created run it also carries. */
function stepOnly(message: WorkMessage): WorkMessage {
  if (message.kind !== 'step') throw new Error(`not a step message: ${message.kind}`);
  const { report: _carried, ...step } = message;
  return step;
}

/** Hand every pending message to `engine`, until none is left. */
async function drain<S>(h: { queue: { pending: unknown[] } }, engine: Engine<S>) {
  for (;;) {
    const next = h.queue.pending.shift() as Parameters<Engine<S>['handle']>[0] | undefined;
    if (!next) return;
    await engine.handle(next, plenty);
  }
}

describe('a report claimed in the commit that it shows', () => {
  it('is made with no claim of the report item, and completes it only as it was read', async () => {
    const reporters = holdingReporter();
    const { h, a } = await twoWorkers(reporters);
    const claims = vi.spyOn(h.store, 'claimReport');
    const completions = vi.spyOn(h.store, 'completeReport');
    const { run } = await a.startRun({ workflow: 'gated', subject: 'o/r#1', trigger });
    await drain(h, a);

    const parked = (await h.store.getRun(run.id))!;
    expect(parked.status).toBe('waiting');
    expect(parked.reporting).toMatchObject({ owner: 'w-a', version: parked.version });
    expect(Date.parse(parked.reporting!.until)).toBeGreaterThan(Date.now());
    expect(claims).not.toHaveBeenCalled();
    expect(completions.mock.calls.map((c) => [c[1], c[3]?.unclaimed])).toEqual([
      [parked.version, { reported: 0 }],
    ]);
    expect(await h.store.getReportState(run.id)).toEqual({ reported: parked.version });
    expect(reporters.shown.at(-1)).toMatchObject({ version: parked.version, status: 'waiting' });
  });

  it('leaves a version another worker committed meanwhile to it: carried forward, shown once, in order', async () => {
    const reporters = holdingReporter('waiting');
    const { h, a, b } = await twoWorkers(reporters);
    const claims = vi.spyOn(h.store, 'claimReport');
    const { run } = await a.startRun({ workflow: 'gated', subject: 'o/r#2', trigger });
    const [first] = h.queue.pending.splice(0) as Parameters<Engine<unknown>['handle']>;
    // Worker a commits the gate and shows it: its reporter holds.
    const stepping = a.handle(first, plenty);
    await reporters.reached.promise;
    const parked = (await h.store.getRun(run.id))!;

    // Meanwhile the run is approved and worker b runs it to its end.
    await b.signal(run.id, { type: 'approve', by: 'alice' });
    await drain(h, b);
    const done = (await h.store.getRun(run.id))!;
    expect(done.status).toBe('succeeded');
    // b's commit carried a's claim, and b left the report to a.
    expect(done.reporting).toMatchObject({ owner: 'w-a', version: parked.version });
    expect(reporters.shown.filter((s) => s.by === 'b')).toEqual([]);
    expect(claims).not.toHaveBeenCalled();

    reporters.release.resolve();
    await stepping;
    // a went on to the end in the same write that completed the gate.
    expect(reporters.shown.map((s) => [s.version, s.by])).toEqual([
      [parked.version, 'a'],
      [done.version, 'a'],
    ]);
    expect(await h.store.getReportState(run.id)).toEqual({ reported: done.version, retired: true });
    expect((await h.store.listActive()).map((r) => r.id)).not.toContain(run.id);
  });

  it('is taken over by the next worker once its holder is done, with a claim of the report item', async () => {
    const reporters = holdingReporter();
    const { h, a, b } = await twoWorkers(reporters);
    const claims = vi.spyOn(h.store, 'claimReport');
    const { run } = await a.startRun({ workflow: 'gated', subject: 'o/r#3', trigger });
    await drain(h, a);
    const parked = (await h.store.getRun(run.id))!;
    expect(await h.store.getReportState(run.id)).toEqual({ reported: parked.version });

    // Well within a's claim time, b finishes the run: the claim in the run item is a's, whose
    // version is reported, so b claims the report item itself.
    await b.signal(run.id, { type: 'approve', by: 'alice' });
    await drain(h, b);
    const done = (await h.store.getRun(run.id))!;
    expect(done.reporting).toMatchObject({ owner: 'w-a', version: parked.version });
    expect(claims).toHaveBeenCalledTimes(1);
    expect(reporters.shown.at(-1)).toMatchObject({ version: done.version, status: 'succeeded', by: 'b' });
    expect(await h.store.getReportState(run.id)).toEqual({ reported: done.version, retired: true });
  });

  it('completes nothing when a worker that read the run before the commit claimed the item: it is made again', async () => {
    const reporters = holdingReporter('waiting');
    const { h, a, b } = await twoWorkers(reporters);
    const completions = vi.spyOn(h.store, 'completeReport');
    const { run } = await a.startRun({ workflow: 'gated', subject: 'o/r#4', trigger });
    const [first] = h.queue.pending.splice(0) as Parameters<Engine<unknown>['handle']>;
    const before = (await h.store.getRun(run.id))!;
    const stepping = a.handle(first, plenty);
    await reporters.reached.promise;
    const parked = (await h.store.getRun(run.id))!;

    // Worker b read the run before a's commit (a report message of the created run): it sees no
    // claim in the run, claims the report item, shows that version, and goes on to a's.
    const read = vi.spyOn(h.store, 'getRun').mockResolvedValueOnce(before as Run);
    expect(await b.report(run.id)).toBe('reported');
    read.mockRestore();
    expect(reporters.shown.map((s) => [s.version, s.by])).toEqual([
      [before.version, 'b'],
      [parked.version, 'b'],
    ]);

    // a's report then lands on a state it did not read: its completion is refused, and it looks
    // again (b showed the same version: nothing more to show).
    reporters.release.resolve();
    await stepping;
    const mine = completions.mock.calls.findIndex((c) => c[2] === 'w-a');
    expect(mine).toBeGreaterThanOrEqual(0);
    expect(await completions.mock.results[mine]!.value).toBe(false);
    expect(reporters.shown.at(-1)).toMatchObject({ version: parked.version, by: 'a' });
    expect(await h.store.getReportState(run.id)).toMatchObject({ reported: parked.version });
    expect((await h.store.getReportState(run.id)).claimOwner).toBeUndefined();
  });

  it('shows the newest state again when its late report may have covered a newer one', async () => {
    const reporters = holdingReporter('waiting');
    const { h, a, b } = await twoWorkers(reporters);
    const { run } = await a.startRun({ workflow: 'gated', subject: 'o/r#5', trigger });
    const [first] = h.queue.pending.splice(0) as Parameters<Engine<unknown>['handle']>;
    const before = (await h.store.getRun(run.id))!;
    const stepping = a.handle(first, plenty);
    await reporters.reached.promise;

    // The run is approved and finished by b; a report of b's that read the run before a's commit
    // claims the item and goes on to the end: the end is shown and reported.
    await b.signal(run.id, { type: 'approve', by: 'alice' });
    await drain(h, b);
    const done = (await h.store.getRun(run.id))!;
    const read = vi.spyOn(h.store, 'getRun').mockResolvedValueOnce(before as Run);
    expect(await b.report(run.id)).toBe('reported');
    read.mockRestore();
    expect(reporters.shown.at(-1)).toMatchObject({ version: done.version, by: 'b' });

    // a's held report of the gate then lands over the end: a's completion is refused, the gate is
    // marked as the last version reported, and the end is shown again.
    reporters.release.resolve();
    await stepping;
    const last = reporters.shown.at(-1)!;
    expect(last).toMatchObject({ version: done.version, status: 'succeeded' });
    expect(reporters.shown.map((s) => s.status)).toContain('waiting');
    expect(await h.store.getReportState(run.id)).toMatchObject({ reported: done.version });
    await drain(h, a);
    expect(reporters.shown.at(-1)).toMatchObject({ version: done.version, status: 'succeeded' });
  });

  it('of a worker that died after its commit is made once by another worker, when the claim has lapsed', async () => {
    const reporters = holdingReporter();
    const clock = testClock();
    let crash = true;
    const { h, a, b } = await twoWorkers(reporters, {
      now: clock.now,
      faults: (point) => {
        if (point !== 'after-commit' || !crash) return;
        crash = false;
        throw new Error('worker died after its commit');
      },
    });
    const { run } = await a.startRun({ workflow: 'gated', subject: 'o/r#7', trigger });
    const [first] = h.queue.pending.splice(0) as Parameters<Engine<unknown>['handle']>;
    await expect(a.handle(stepOnly(first), plenty)).rejects.toThrow(/died/);
    const parked = (await h.store.getRun(run.id))!;
    expect(parked.reporting).toMatchObject({ owner: 'w-a', version: parked.version });
    expect(reporters.shown).toEqual([]);

    // Within the claim, another worker's report leaves it to its holder; the sweeper waits too.
    expect(await b.report(run.id)).toBe('skipped');
    expect((await b.sweep()).reported).toBe(0);
    // Past it, the sweeper sends the report again, and the other worker makes it.
    clock.advance(31_000);
    expect((await b.sweep()).reported).toBe(1);
    await drain(h, b);
    expect(reporters.shown).toEqual([{ version: parked.version, status: 'waiting', by: 'b' }]);
    expect(await h.store.getReportState(run.id)).toEqual({ reported: parked.version });
  });

  it('does not hold off a stalled reporter that reopened: it shows the latest state again itself', async () => {
    const clock = testClock();
    const shown: Array<{ version: number; status: string; by: string }> = [];
    const reached = deferred();
    const release = deferred();
    let stalled = false;
    const reporters = {
      make: (by: string): Reporter => ({
        name: 'list',
        report: async (run) => {
          if (by === 'b' && !stalled) {
            stalled = true;
            reached.resolve();
            await release.promise;
          }
          shown.push({ version: run.version, status: run.status, by });
        },
      }),
    };
    const { h, a, b } = await twoWorkers(reporters, { now: clock.now });
    const { run } = await a.startRun({ workflow: 'gated', subject: 'o/r#8', trigger });
    const [first] = h.queue.pending.splice(0) as Parameters<Engine<unknown>['handle']>;

    // b claims the report item for the created run and stalls past its claim.
    const stalling = b.report(run.id);
    await reached.promise;
    clock.advance(31_000);
    // a commits the gate with its claim in the run item and reports it (the item's lapsed claim
    // makes it claim the item too), done.
    await a.handle(stepOnly(first), plenty);
    const parked = (await h.store.getRun(run.id))!;
    expect(parked.reporting).toMatchObject({ owner: 'w-a', version: parked.version });
    expect(await h.store.getReportState(run.id)).toEqual({ reported: parked.version });

    // b's completion is refused: it reopens to its own version, which makes a's claim hold again
    // (any other worker would leave the report to a, which is done), so b shows the latest state
    // again itself, at once, with no report message.
    const messages = h.queue.sent.length;
    release.resolve();
    await stalling;
    expect(shown.map((s) => [s.version, s.by])).toEqual([
      [parked.version, 'a'],
      [run.version, 'b'],
      [parked.version, 'b'],
    ]);
    expect(await h.store.getReportState(run.id)).toEqual({ reported: parked.version });
    expect(h.queue.sent.slice(messages)).toEqual([]);
  });

  it('keeps the sweeper from re-sending the report of a finished run while its claim holds', async () => {
    const reporters = holdingReporter('succeeded');
    const { h, a } = await twoWorkers(reporters);
    const { run } = await a.startRun({ workflow: 'gated', subject: 'o/r#6', trigger });
    await drain(h, a);
    await a.signal(run.id, { type: 'approve', by: 'alice' });
    const [ship] = h.queue.pending.splice(0) as Parameters<Engine<unknown>['handle']>;
    const stepping = a.handle(ship, plenty);
    await reporters.reached.promise;

    const swept = await a.sweep();
    expect(swept.reported).toBe(0);
    expect(h.queue.pending.filter((m) => (m as { kind: string }).kind === 'report')).toEqual([]);

    reporters.release.resolve();
    await stepping;
    const done = (await h.store.getRun(run.id))!;
    expect(await h.store.getReportState(run.id)).toEqual({ reported: done.version, retired: true });
    expect((await h.store.listActive()).map((r) => r.id)).not.toContain(run.id);
  });

  it('leaves the newest state shown last, however the reports of three workers interleave', async () => {
    // Five gates in a row; each is approved, by one of three workers, as soon as a reporter shows
    // it (so approvals, steps and reports overlap), and other workers report the run now and then.
    // Each reporter's edit takes a random number of turns of the event loop.
    const loop: WorkflowDefinition = {
      name: 'loop',
      version: 1,
      start: 'ask',
      nodes: {
        ask: { handler: async () => ({ wait: { kind: 'approval', expiresInMs: 60_000 } }) },
        ship: { handler: async (ctx) => ({ output: { n: Number(ctx.run.data.n ?? 0) + 1 } }) },
      },
      edges: [
        { from: 'ask', to: 'ship', on: 'approved' },
        { from: 'ship', to: 'ask', when: (data) => Number(data.n) < 5 },
      ],
    };
    for (let seed = 1; seed <= 12; seed++) {
      let x = seed;
      const random = () => {
        x = (x * 1103515245 + 12345) % 2 ** 31;
        return x / 2 ** 31;
      };
      const turns = async () => {
        for (let i = Math.floor(random() * 6); i > 0; i--) await new Promise((r) => setImmediate(r));
      };
      const shown: Array<{ version: number; status: string }> = [];
      const pending: Promise<unknown>[] = [];
      const engines: Engine<unknown>[] = [];
      const pick = () => engines[Math.floor(random() * engines.length)]!;
      const reporter: Reporter = {
        name: 'list',
        report: async (run) => {
          await turns();
          shown.push({ version: run.version, status: run.status });
          if (run.status === 'waiting' && run.gate?.kind === 'approval')
            pending.push(
              pick()
                .signal(run.id, { type: 'approve', by: 'alice' })
                .catch(() => undefined),
            );
          // Another worker's report of the run now and then (a report message, a sweep).
          if (random() < 0.3)
            pending.push(
              pick()
                .report(run.id)
                .catch(() => undefined),
            );
          await turns();
        },
      };
      const h = await harness<unknown>([loop], {
        reporters: [reporter],
        autoConsume: false,
        reportInline: true,
        owner: 'w-0',
      });
      engines.push(h.engine);
      for (const owner of ['w-1', 'w-2'])
        engines.push(
          new Engine<unknown>({
            store: h.store,
            queue: h.queue,
            workflows: new WorkflowRegistry([new Workflow(loop)]),
            services: {},
            reporters: [reporter],
            reportInline: true,
            owner,
          }),
        );
      h.queue.consume(async (m) => void (await pick().handle(m, plenty)));
      const { run } = await h.engine.startRun({ workflow: 'loop', subject: `o/r#loop${seed}`, trigger });
      for (;;) {
        await h.settle();
        const waiting = pending.splice(0);
        if (waiting.length === 0) break;
        await Promise.all(waiting);
      }
      const done = (await h.store.getRun(run.id))!;
      expect(done.status, `seed ${seed}`).toBe('succeeded');
      expect(shown.at(-1), `seed ${seed}`).toEqual({ version: done.version, status: 'succeeded' });
      expect(await h.store.getReportState(run.id), `seed ${seed}`).toMatchObject({ reported: done.version });
    }
  });
});
