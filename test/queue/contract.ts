import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Outgoing, StepQueue, WorkMessage } from '../../lib/queue/port.ts';

/** A message as it reached the far side of the queue, with the delay the transport was given. */
export interface Arrival {
  message: WorkMessage;
  delaySeconds: number;
}

export interface QueueUnderTest {
  queue: StepQueue;
  /** Everything that reached the far side so far (waits for deliveries in progress). */
  arrivals(): Promise<Arrival[]>;
  close(): Promise<void>;
}

/** Makes a fresh, empty queue and a way to see what came out of it. */
export type MakeQueue = () => Promise<QueueUnderTest>;

/** A step message; odd seqs name their workflow and node too (both forms must arrive intact). */
const step = (runId: string, seq: number): WorkMessage => ({
  kind: 'step',
  runId,
  seq,
  ...(seq % 2 === 1
    ? { workflow: 'issue-pipeline', node: `n${seq}`, version: seq + 1, due: 1_764_568_800_000 }
    : {}),
});
const report = (runId: string, version: number): WorkMessage => ({ kind: 'report', runId, version });

/** Arrival order is not part of the contract (delays reorder messages): compare sorted. */
const sorted = (arrivals: Arrival[]) =>
  [...arrivals].sort((a, b) => JSON.stringify(a.message).localeCompare(JSON.stringify(b.message)));

const sent = (batch: Outgoing[]): Arrival[] =>
  batch.map((o) => ({ message: o.message, delaySeconds: o.delaySeconds ?? 0 }));

/**
 * The StepQueue port's contract: every adapter (in-process, SQS) must pass it. It covers what the
 * engine relies on: what is sent arrives, with its body intact and its delay, whatever the batch size.
 */
export function stepQueueContract(name: string, make: MakeQueue): void {
  describe(`${name} (StepQueue contract)`, () => {
    let q: QueueUnderTest;

    beforeEach(async () => {
      q = await make();
    });
    afterEach(async () => {
      await q.close();
    });

    it('delivers every message of a batch exactly once', async () => {
      const batch: Outgoing[] = [
        { message: step('r-one', 1) },
        { message: step('r-one', 2) },
        { message: report('r-one', 3) },
      ];

      await q.queue.send(batch);

      expect(sorted(await q.arrivals())).toEqual(sorted(sent(batch)));
    });

    it.each([
      ['a step message', step('rlz1k2m3n4a1b2c3d4e5', 7)],
      ['a report message', report('rlz1k2m3n4a1b2c3d4e5', 12)],
      ['a run id with quotes and non-ASCII characters', step('run-"ünïcödé"-\u2603', 1)],
    ])('carries %s through unchanged', async (_what, message) => {
      await q.queue.send([{ message }]);

      expect(await q.arrivals()).toEqual([{ message, delaySeconds: 0 }]);
    });

    it('passes each message its own delay, and none to a message sent without one', async () => {
      const batch: Outgoing[] = [
        { message: step('r-delay', 1), delaySeconds: 30 },
        { message: report('r-delay', 2) },
        { message: step('r-delay', 3), delaySeconds: 5 },
      ];

      await q.queue.send(batch);

      expect(sorted(await q.arrivals())).toEqual(sorted(sent(batch)));
    });

    it('passes the longest delay SQS allows (900 s) unchanged', async () => {
      await q.queue.send([{ message: step('r-max', 1), delaySeconds: 900 }]);

      expect(await q.arrivals()).toEqual([{ message: step('r-max', 1), delaySeconds: 900 }]);
    });

    it('delivers a batch of more than ten messages in full, none twice', async () => {
      const batch: Outgoing[] = Array.from({ length: 23 }, (_, i) => ({ message: step('r-many', i + 1) }));

      await q.queue.send(batch);

      expect(sorted(await q.arrivals())).toEqual(sorted(sent(batch)));
    });

    it('sends nothing for an empty batch', async () => {
      await q.queue.send([]);

      expect(await q.arrivals()).toEqual([]);
    });

    it('delivers the messages of consecutive sends, all of them', async () => {
      await q.queue.send([{ message: step('r-a', 1) }]);
      await q.queue.send([{ message: step('r-b', 1) }, { message: report('r-b', 2) }]);

      expect(sorted(await q.arrivals())).toEqual(
        sorted([
          { message: step('r-a', 1), delaySeconds: 0 },
          { message: step('r-b', 1), delaySeconds: 0 },
          { message: report('r-b', 2), delaySeconds: 0 },
        ]),
      );
    });
  });
}
