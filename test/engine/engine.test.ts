import { describe, expect, it } from 'vitest';
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
