/**
 * Delivering an agent's answer (lib/agents/results.ts) through the real engine over DynamoDB
 * Local: a run takes an answer once, and what it took is in its own data, so a second delivery
 * (the callback and the workflow run's completion both deliver; a callback sent twice) needs no
 * mark of its own; the one answer that ends its run without being kept marks the dispatch record.
 */
import { describe, expect, it, vi } from 'vitest';
import { deliverResult } from '../../lib/agents/results.ts';
import { AgentWorkQueue, type DispatchRecord } from '../../lib/agents/work-queue.ts';
import type { WorkflowDefinition } from '../../lib/engine/workflow.ts';
import { harness } from '../support/harness.ts';
import { firstDispatch } from './support.ts';

const trigger = { source: 'test' as const };

/** One node that waits for an agent's answer to item `<run>.t1.1`; `looped`: it goes on along `next`. */
function waiting(looped: boolean): WorkflowDefinition {
  return {
    name: looped ? 'looped' : 'single',
    version: 1,
    start: 'work',
    nodes: {
      work: {
        handler: async (ctx) => {
          if (ctx.run.data.workResult) return { output: { done: true } };
          return {
            wait: { kind: 'agent', correlation: `${ctx.run.id}.t1.1`, expiresInMs: 60_000, prompt: 'wait' },
          };
        },
      },
    },
    edges: looped ? [{ from: 'work', to: 'work', on: 'next' }] : [],
  };
}

const record = (runId: string): DispatchRecord =>
  firstDispatch(runId, {
    state: 'dispatched',
    startedAt: new Date().toISOString(),
    expiresAt: new Date(Date.now() + 60_000).toISOString(),
  });

const answer = (runId: string, ok = true) => ({
  runId,
  item: `${runId}.t1.1`,
  correlation: `${runId}.t1.1`,
  ok,
  by: 'coder',
  payload: { conclusion: ok ? 'success' : 'failure', summary: 'did it' },
});

/** A run of one of those workflows, waiting for its item's answer, dispatched. */
async function waitingRun(looped: boolean, subject: string) {
  const h = await harness([waiting(looped)]);
  const queue = new AgentWorkQueue(h.store);
  const { run } = await h.engine.startRun({ workflow: looped ? 'looped' : 'single', subject, trigger });
  await h.settle();
  await queue.putDispatch(record(run.id));
  return { h, queue, run };
}

describe('delivering an agent’s answer', () => {
  it('is taken once: a second delivery finds it in the run’s data and writes nothing', async () => {
    const { h, queue, run } = await waitingRun(true, 'o/r#1');

    expect(await deliverResult(h.engine, queue, answer(run.id))).toBe('resumed');
    await h.settle();
    const writes = vi.spyOn(h.store, 'kvPut');
    expect(await deliverResult(h.engine, queue, answer(run.id))).toBe('duplicate');
    expect(writes).not.toHaveBeenCalled();
    // Nothing marked the record: the run's own data said it.
    expect((await queue.getDispatch(run.id))?.value.state).toBe('dispatched');
    expect((await h.store.getRun(run.id))?.status).toBe('succeeded');
  });

  it('marks the record finished when the answer ends the run without being kept (a failure along no edge)', async () => {
    const { h, queue, run } = await waitingRun(false, 'o/r#2');

    expect(await deliverResult(h.engine, queue, answer(run.id, false))).toBe('resumed');
    const ended = await h.store.getRun(run.id);
    expect(ended).toMatchObject({ status: 'failed', error: { name: 'AgentFailed' } });
    expect(ended?.data.workResult).toBeUndefined();
    expect((await queue.getDispatch(run.id))?.value.state).toBe('finished');
    const known = await queue.getDispatch(run.id);
    expect(await deliverResult(h.engine, queue, answer(run.id, false), undefined, known)).toBe('duplicate');
  });
});
