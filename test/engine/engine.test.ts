import { describe, expect, it, vi } from 'vitest';
import type { WorkflowDefinition } from '../../lib/engine/workflow.ts';
import { harness } from '../support/harness.ts';

const linear: WorkflowDefinition = {
  name: 'linear',
  version: 1,
  start: 'a',
  nodes: {
    a: { handler: async () => ({ output: { a: 1 } }) },
    b: { handler: async (ctx) => ({ output: { b: (ctx.run.data.a as number) + 1 } }) },
    gate: { handler: async () => ({ wait: { kind: 'approval', expiresInMs: 60_000, binding: 'v1' } }) },
    c: { handler: async () => ({ output: { c: true } }) },
  },
  edges: [
    { from: 'a', to: 'b' },
    { from: 'b', to: 'gate' },
    { from: 'gate', to: 'c', on: 'approved' },
  ],
};

describe('engine', () => {
  it('runs a graph to its gate, parks, and finishes once approved', async () => {
    const h = await harness([linear]);
    const { run } = await h.engine.startRun({
      workflow: 'linear',
      subject: 'o/r#1',
      trigger: { source: 'test' },
    });
    await h.settle();
    const parked = await h.engine.getRun(run.id);
    expect(parked?.status).toBe('waiting');
    expect(parked?.gate?.node).toBe('gate');
    await h.engine.signal(run.id, { type: 'approve', by: 'alice', binding: 'v1' });
    await h.settle();
    const done = await h.engine.getRun(run.id);
    expect(done?.status).toBe('succeeded');
    expect(done?.data).toMatchObject({ a: 1, b: 2, c: true });
    const events = await h.engine.listEvents(run.id);
    expect(events.map((e) => e.type)).toEqual([
      'run.created',
      'step.succeeded',
      'step.scheduled',
      'step.succeeded',
      'step.scheduled',
      'step.succeeded',
      'gate.opened',
      'signal.approve',
      'node.completed',
      'step.scheduled',
      'step.succeeded',
      'run.succeeded',
    ]);
    const active = await h.store.listActive();
    expect(active.map((r) => r.id)).not.toContain(run.id);
  });
});

describe('a signal decided on the run its caller read', () => {
  const approve = { type: 'approve', by: 'alice', binding: 'v1' } as const;
  /** The run reads the signal itself makes (not a worker's, running its next step meanwhile). */
  const signalReads = (h: Awaited<ReturnType<typeof harness>>) => {
    const getRun = h.store.getRun.bind(h.store);
    const calls = { n: 0 };
    vi.spyOn(h.store, 'getRun').mockImplementation((id) => {
      if (new Error().stack?.includes('Signals.signal')) calls.n++;
      return getRun(id);
    });
    return calls;
  };
  const parkedRun = async (h: Awaited<ReturnType<typeof harness>>, subject: string) => {
    const { run } = await h.engine.startRun({ workflow: 'linear', subject, trigger: { source: 'test' } });
    await h.settle();
    return (await h.engine.getRun(run.id))!;
  };

  it('is not read again', async () => {
    const h = await harness([linear]);
    const parked = await parkedRun(h, 'o/r#2');
    const reads = signalReads(h);
    const approved = await h.engine.signal(parked.id, approve, { known: parked });
    expect(reads.n).toBe(0);
    expect(approved.version).toBe(parked.version + 1);
  });

  it('is read and decided again when it moved on since', async () => {
    const h = await harness([linear]);
    const parked = await parkedRun(h, 'o/r#3');
    // A note bumps the waiting run's version after the caller's read.
    await h.engine.signal(parked.id, { type: 'note', by: 'bob', event: 'plan.edited', detail: { v: 2 } });
    await h.settle();
    const reads = signalReads(h);
    const approved = await h.engine.signal(parked.id, approve, { known: parked });
    expect(reads.n).toBe(1);
    expect(approved.version).toBe(parked.version + 2);
    await h.settle();
    expect((await h.engine.getRun(parked.id))?.status).toBe('succeeded');
  });

  it('is read again rather than appended to as if a step were under way', async () => {
    const h = await harness([linear]);
    const parked = await parkedRun(h, 'o/r#5');
    const { gate: _gate, ...rest } = parked;
    const running = { ...rest, status: 'running' as const };
    // On a running run a note is only recorded (its step's commit reports it); on a waiting run it
    // is committed, so that reporters show it.
    const noted = await h.engine.signal(
      parked.id,
      { type: 'note', by: 'bob', event: 'plan.edited', detail: { v: 2 } },
      { known: running },
    );
    expect(noted.version).toBe(parked.version + 1);
  });

  it('is read again rather than refused on it', async () => {
    const h = await harness([linear]);
    const parked = await parkedRun(h, 'o/r#4');
    // As a caller that read the run before it reached its gate would see it.
    const { gate: _gate, ...rest } = parked;
    const before = { ...rest, status: 'running' as const };
    const approved = await h.engine.signal(parked.id, approve, { known: before });
    expect(approved.version).toBe(parked.version + 1);
  });
});

describe('late and lost signals', () => {
  it('refuses an approval that arrives after the gate expired, even before the sweeper ran', async () => {
    let now = new Date('2026-01-01T00:00:00Z');
    const h = await harness([linear], { now: () => now });
    const { run } = await h.engine.startRun({
      workflow: 'linear',
      subject: 'o/r#2',
      trigger: { source: 'test' },
    });
    await h.settle();
    now = new Date(now.getTime() + 61_000);
    await expect(h.engine.signal(run.id, { type: 'approve', by: 'bob', binding: 'v1' })).rejects.toThrow(
      /expired/,
    );
    expect((await h.engine.getRun(run.id))?.status).toBe('waiting');
  });

  it('re-sends the report of a parked run whose report message was lost', async () => {
    let now = new Date('2026-01-01T00:00:00Z');
    const reported: number[] = [];
    const h = await harness([linear], {
      now: () => now,
      reporters: [{ name: 'probe', report: async (r) => void reported.push(r.version) }],
      autoConsume: false,
    });
    const { run } = await h.engine.startRun({
      workflow: 'linear',
      subject: 'o/r#3',
      trigger: { source: 'test' },
    });
    // Drive the steps by hand and drop every report message, as if they were lost.
    for (let i = 0; i < 10; i++) {
      const r = await h.engine.getRun(run.id);
      if (!r?.step) break;
      await h.engine.executeStep(run.id, r.step.seq);
    }
    const parked = await h.engine.getRun(run.id);
    expect(parked?.status).toBe('waiting');
    expect(reported).toEqual([]);
    h.queue.pending.splice(0); // the messages are lost
    now = new Date(now.getTime() + 31_000);
    h.queue.consume(async (m) => void (await h.engine.handle(m)));
    const swept = await h.engine.sweep();
    await h.settle();
    expect(swept.reported).toBe(1);
    expect(reported).toEqual([parked?.version]);
  });
});
