/**
 * Issue #12: an audit event written outside a commit (a `/hold` decision, a refused command) reaches
 * the reporters even when the worker's reporter already read the run's history up to it and a
 * commit follows before the next report. Real engine, DynamoDB Local.
 */
import { describe, expect, it } from 'vitest';
import type { Reporter } from '../../lib/engine/engine.ts';
import type { RunEvent } from '../../lib/engine/types.ts';
import type { WorkflowDefinition } from '../../lib/engine/workflow.ts';
import { harness } from '../support/harness.ts';

const gated: WorkflowDefinition = {
  name: 'gated',
  version: 1,
  start: 'a',
  nodes: {
    a: { handler: async () => ({ output: { a: 1 } }) },
    gate: { handler: async () => ({ wait: { kind: 'approval', expiresInMs: 60_000, binding: 'v1' } }) },
    c: { handler: async () => ({ output: { c: true } }) },
  },
  edges: [
    { from: 'a', to: 'gate' },
    { from: 'gate', to: 'c', on: 'approved' },
  ],
};

describe('audit events and the reporters', () => {
  it('an audit event appended after a report is in the next report, after a commit followed it', async () => {
    const reports: Array<{ version: number; events: readonly RunEvent[] }> = [];
    const reporter: Reporter = {
      name: 'recording',
      report: async (run, ctx) => void reports.push({ version: run.version, events: [...ctx.events] }),
    };
    const h = await harness([gated], { reporters: [reporter] });
    const { run } = await h.engine.startRun({
      workflow: 'gated',
      subject: 'o/r#12',
      trigger: { source: 'test' },
    });
    await h.settle();
    const parked = await h.store.getRun(run.id);
    expect(parked?.status).toBe('waiting');
    // The reporter has read the run's history up to the gate.
    const before = reports[reports.length - 1]!;
    expect(before.version).toBe(parked!.version);
    expect(before.events.map((e) => e.type)).toContain('gate.opened');

    await h.engine.recordEvent(run.id, {
      type: 'github.command',
      by: 'github:bob',
      detail: { command: 'hold' },
    });
    await h.engine.recordEvent(run.id, {
      type: 'github.command',
      by: 'github:bob',
      detail: { command: 'x' },
    });
    await h.engine.signal(run.id, { type: 'approve', by: 'github:bob', binding: 'v1' });
    await h.settle();

    const last = reports[reports.length - 1]!;
    expect((await h.store.getRun(run.id))?.status).toBe('succeeded');
    const commands = last.events.filter((e) => e.type === 'github.command').map((e) => e.detail.command);
    expect(commands).toEqual(['hold', 'x']);
    // What the reporter holds is the run's whole history, in order, each event once.
    const all = await h.store.listEvents(run.id);
    expect(last.events.map((e) => e.seq)).toEqual(all.map((e) => e.seq));
  });
});
