/**
 * Root causes found by the fault bench (bench/faults.ts, issue 9 "Proof"), each pinned by a test
 * that failed before its fix. Real engine over DynamoDB Local; time moves through the engine's
 * clock and the sweeper, never sleeps.
 */
import { describe, expect, it } from 'vitest';
import type { WorkflowDefinition } from '../../lib/engine/workflow.ts';
import { QueueError } from '../../lib/queue/errors.ts';
import { InMemoryQueue } from '../../lib/queue/memory.ts';
import type { Outgoing } from '../../lib/queue/port.ts';
import { harness } from '../support/harness.ts';
import { drive, testClock } from './kit.ts';

const trigger = { source: 'test' as const };

function oneNode(
  handler: WorkflowDefinition['nodes'][string]['handler'],
  timeoutMs: number,
): WorkflowDefinition {
  return {
    name: 'one',
    version: 1,
    start: 'a',
    nodes: { a: { handler, timeoutMs, retry: { maxAttempts: 3, initialDelayMs: 1 } } },
    edges: [],
  };
}

/** The in-process queue whose next `failures` sends fail, as SQS SendMessageBatch can. */
class RefusingQueue extends InMemoryQueue {
  failures = 0;
  refused = 0;
  override async send(batch: Outgoing[]): Promise<void> {
    if (this.failures > 0) {
      this.failures--;
      this.refused++;
      throw new QueueError('SendMessageBatch failed');
    }
    await super.send(batch);
  }
}

describe('a queue send that fails after a commit', () => {
  // The webhook answered 500 for a run it had started (GitHub then redelivers a delivery that is
  // only a duplicate), and a step that woke another run failed, spending an attempt, because that
  // run's message could not be sent. The commit had happened; the sweeper re-sends the message.

  it('does not fail the start of a run; the sweeper sends its first step', async () => {
    const clock = testClock();
    const queue = new RefusingQueue({ timeScale: 0.001, redeliveryMs: 5 });
    const h = await harness([oneNode(async () => ({ output: { done: true } }), 10_000)], {
      queue,
      now: clock.now,
    });
    queue.failures = 1;

    const { run, outcome } = await h.engine.startRun({ workflow: 'one', subject: 'o/r#3', trigger });

    expect(outcome).toBe('created');
    expect(queue.refused).toBe(1);
    const done = await drive(h, clock, run.id);
    expect(done.status).toBe('succeeded');
    expect(done.data.done).toBe(true);
  });

  it('does not fail a signal whose commit landed', async () => {
    const clock = testClock();
    const queue = new RefusingQueue({ timeScale: 0.001, redeliveryMs: 5 });
    const h = await harness(
      [oneNode(async () => ({ wait: { kind: 'approval', expiresInMs: 3_600_000 } }), 10_000)],
      {
        queue,
        now: clock.now,
      },
    );
    const { run } = await h.engine.startRun({ workflow: 'one', subject: 'o/r#4', trigger });
    await h.settle();
    expect((await h.store.getRun(run.id))?.status).toBe('waiting');
    queue.failures = 1;

    const cancelled = await h.engine.signal(run.id, { type: 'cancel', by: 'alice' });

    expect(cancelled.status).toBe('cancelled');
    expect(queue.refused).toBe(1);
    // The final report's message was lost with the send: the sweeper reports and retires it.
    const retired = await drive(h, clock, run.id);
    expect(retired.status).toBe('cancelled');
    expect((await h.store.listActive()).some((r) => r.id === run.id)).toBe(false);
  });
});
