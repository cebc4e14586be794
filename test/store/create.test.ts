import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import type { Run } from '../../lib/engine/types.ts';
import { dynamoClient } from '../../lib/store/client.ts';
import { DynamoRunStore, LOCK_CREATION_GRACE_MS } from '../../lib/store/dynamodb.ts';
import { createTestStore, storeTestRun, testEndpoint } from '../support/dynamo.ts';

/**
 * A run created without a transaction (issue 13, cost): the idempotency key, then the subject
 * lock, then the listing and chunks, then the run item, each a conditional single-item put. What
 * the contract suite cannot stage: a creator that stops (or stalls) between two of those puts.
 */

const created = { type: 'run.created' as const, node: 'a', detail: {} };
const aRun = (at: string) => storeTestRun('create', at);

/** Another process on the same table that dies at the put of `sk` (the first such put only). */
function dyingAt(
  store: DynamoRunStore,
  sk: 'IDEM' | 'LOCK' | 'LIST' | 'RUN',
  now?: () => Date,
): DynamoRunStore {
  const dying = new DynamoRunStore(dynamoClient(testEndpoint()), {
    tableName: store.tableName,
    ...(now ? { now } : {}),
  });
  let died = false;
  dying.doc.middlewareStack.add(
    (next) => async (args) => {
      const item = (args.input as { Item?: { sk?: unknown } }).Item;
      if (!died && item?.sk === sk) {
        died = true;
        throw Object.assign(new Error('the process died'), { name: 'Killed' });
      }
      return next(args);
    },
    { step: 'initialize', name: 'die' },
  );
  return dying;
}

/** Another process on the same table that stops at the put of `sk` until `resume` is called. */
function stallingAt(store: DynamoRunStore, sk: 'LIST' | 'RUN', now: () => Date) {
  const stalling = new DynamoRunStore(dynamoClient(testEndpoint()), { tableName: store.tableName, now });
  let reached = () => {};
  const stalled = new Promise<void>((resolve) => {
    reached = resolve;
  });
  let resume = () => {};
  const resumed = new Promise<void>((resolve) => {
    resume = resolve;
  });
  stalling.doc.middlewareStack.add(
    (next) => async (args) => {
      if ((args.input as { Item?: { sk?: unknown } }).Item?.sk === sk) {
        reached();
        await resumed;
      }
      return next(args);
    },
    { step: 'initialize', name: 'stall' },
  );
  return { store: stalling, stalled, resume };
}

describe('creating a run without a transaction', () => {
  it('writes the key, the lock and the run, 4 write units in all (a transaction of the three was 8)', async () => {
    const units: Array<[string, number]> = [];
    const store = await createTestStore({ onConsumedCapacity: (op, n) => units.push([op, n]) });
    const run = aRun(new Date().toISOString());

    const res = await store.createRun({ run, events: [created], idempotencyKey: 'd-1', lockKey: 'L' });

    expect(res.outcome).toBe('created');
    const of = (op: string) => units.filter(([o]) => o === op).reduce((n, [, u]) => n + u, 0);
    // The run item and its entry in the active index.
    expect([of('reserveKey'), of('takeLock'), of('createRun')]).toEqual([1, 1, 2]);
  });

  it('takes an idempotency key whose time has passed (not yet deleted by TTL) as a new one', async () => {
    const store = await createTestStore();
    await store.doc.send(
      new PutCommand({
        TableName: store.tableName,
        Item: {
          pk: 'IDEM#d-old',
          sk: 'IDEM',
          runId: 'run-long-gone',
          ttl: Math.floor(Date.now() / 1000) - 60,
        },
      }),
    );
    const run = aRun(new Date().toISOString());

    expect(await store.createRun({ run, events: [created], idempotencyKey: 'd-old' })).toMatchObject({
      outcome: 'created',
      run: { id: run.id },
    });
  });

  it("hands the key's run id back when its creator stopped after reserving it; the run is then created under it, once", async () => {
    const store = await createTestStore();
    const first = aRun(new Date().toISOString());
    await expect(
      dyingAt(store, 'LOCK').createRun({
        run: first,
        events: [created],
        idempotencyKey: 'd-2',
        lockKey: 'L2',
      }),
    ).rejects.toThrow('the process died');

    const again = aRun(new Date().toISOString());
    const res = await store.createRun({
      run: again,
      events: [created],
      idempotencyKey: 'd-2',
      lockKey: 'L2',
    });

    expect(res).toEqual({ outcome: 'reserved', runId: first.id });
    expect(await store.getRun(again.id)).toBeNull();
    // The key's delivery, again, under the reserved id: created; and a further one is a duplicate.
    const under = { ...again, id: first.id };
    expect(
      (await store.createRun({ run: under, events: [created], idempotencyKey: 'd-2', lockKey: 'L2' }))
        .outcome,
    ).toBe('created');
    const dup = await store.createRun({
      run: aRun(new Date().toISOString()),
      events: [created],
      idempotencyKey: 'd-2',
    });
    expect(dup).toMatchObject({ outcome: 'duplicate', run: { id: first.id } });
  });

  it("homes a new run's chunk in its listing item, never over the one another creation of the same id homed there", async () => {
    const now = () => new Date();
    const store = await createTestStore();
    const cold = () => new DynamoRunStore(dynamoClient(testEndpoint()), { tableName: store.tableName });
    // A value large enough to be a chunk, small enough packed to share the listing item's KB.
    const withData = (run: Run, word: string): Run => ({
      ...run,
      data: { event: { body: word.repeat(40) } },
    });

    // Its creator wrote the listing item, the chunk in it, and stalls before its run item.
    const mine = withData(aRun(now().toISOString()), 'first ');
    const stalling = stallingAt(store, 'RUN', now);
    const stalledCreation = stalling.store.createRun({ run: mine, events: [created] });
    await stalling.stalled;
    // Another creation of that id (its delivery again, under the reserved id), with other data:
    // refused the listing, it writes its chunk as an item of its own, and its run wins.
    const theirs = withData({ ...aRun(now().toISOString()), id: mine.id }, 'second ');
    expect(await store.createRun({ run: theirs, events: [created] })).toMatchObject({ outcome: 'created' });
    stalling.resume();
    expect(await stalledCreation).toMatchObject({ outcome: 'duplicate', run: { id: mine.id } });
    expect((await cold().getRun(mine.id))?.data).toEqual(theirs.data);

    // The other way round: the run of the creation that homed its chunk wins, and reads its own.
    const won = withData(aRun(now().toISOString()), 'third ');
    await store.createRun({ run: won, events: [created] });
    const late = withData({ ...aRun(now().toISOString()), id: won.id }, 'fourth ');
    expect(await store.createRun({ run: late, events: [created] })).toMatchObject({ outcome: 'duplicate' });
    expect((await cold().getRun(won.id))?.data).toEqual(won.data);
  });

  it('holds the subject for a creation under way, then abandons its run past the grace: its creator can never write it', async () => {
    let clock = Date.now();
    const now = () => new Date(clock);
    const store = await createTestStore({ now });
    const stalled = aRun(now().toISOString());
    // Its creator took the lock, and stalls before its run (at the listing item).
    const stalling = stallingAt(store, 'LIST', now);
    const stalledCreation = stalling.store.createRun({
      run: stalled,
      events: [created],
      idempotencyKey: 'd-3',
      lockKey: 'L3',
    });
    await stalling.stalled;

    const next = aRun(now().toISOString());
    expect(await store.createRun({ run: next, events: [created], lockKey: 'L3' })).toEqual({
      outcome: 'locked',
      activeRunId: stalled.id,
    });

    clock += LOCK_CREATION_GRACE_MS + 1;
    const res = await store.createRun({ run: next, events: [created], lockKey: 'L3' });
    expect(res.outcome).toBe('created');

    // The stalled creator goes on: its run is refused (to be created again under a new id), and nothing shows it.
    stalling.resume();
    expect(await stalledCreation).toEqual({ outcome: 'abandoned' });
    expect(await store.getRun(stalled.id)).toBeNull();
    expect((await store.listRuns({ subject: stalled.subject.key })).map((r: Run) => r.id)).toEqual([next.id]);
    // Its delivery, again: the key is taken over by a new run, which finds the subject taken.
    const redelivered = aRun(now().toISOString());
    expect(
      await store.createRun({ run: redelivered, events: [created], idempotencyKey: 'd-3', lockKey: 'L3' }),
    ).toEqual({ outcome: 'locked', activeRunId: next.id });
    // Refused by the lock, it gave the key back: once the subject is free, the delivery starts a run.
    expect(
      await store.createRun({ run: redelivered, events: [created], idempotencyKey: 'd-3' }),
    ).toMatchObject({
      outcome: 'created',
    });
  });

  it('does not abandon a run whose creation finishes as the grace ends: the lock stays with it', async () => {
    let clock = Date.now();
    const now = () => new Date(clock);
    const store = await createTestStore({ now });
    const slow = aRun(now().toISOString());
    // The lock taken, the run not yet written.
    await expect(
      dyingAt(store, 'RUN', now).createRun({ run: slow, events: [created], lockKey: 'L4' }),
    ).rejects.toThrow('the process died');
    // ...and written just before another creation looks, past the grace.
    expect((await store.createRun({ run: slow, events: [created], lockKey: 'L4' })).outcome).toBe('created');
    clock += LOCK_CREATION_GRACE_MS + 1;

    const other = aRun(now().toISOString());
    expect(await store.createRun({ run: other, events: [created], lockKey: 'L4' })).toEqual({
      outcome: 'locked',
      activeRunId: slow.id,
    });
    expect((await store.getRun(slow.id))?.status).toBe(slow.status);
  });
});
