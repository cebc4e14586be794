import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import type { Run } from '../../lib/engine/types.ts';
import { dynamoClient } from '../../lib/store/client.ts';
import { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { itemKeys, sortKeys } from '../../lib/store/schema.ts';
import { createTestStore, recordingClient, storeTestRun, testEndpoint } from '../support/dynamo.ts';

/**
 * Subject locks at the end of a run (issue 13, cost): the ending commit writes the run and nothing
 * else; the lock of an ended run is free, and the next run that wants it takes it over in one
 * conditional put. What the contract suite cannot stage: a retry of the ended run landing just
 * before that put.
 */

const at = new Date().toISOString();
const created = { type: 'run.created' as const, node: 'a', detail: {} };

const aRun = () => storeTestRun('locks', at);

/** A client that, before each takeover of a subject lock (its conditional put), awaits `beforeTakeover` once. */
function holdingClient() {
  const hold: { beforeTakeover?: () => Promise<void> } = {};
  const client = dynamoClient(testEndpoint());
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = String((context as { commandName?: string }).commandName);
      const input = args.input as { Item?: { pk?: { S?: string } }; ConditionExpression?: string };
      const key = input.Item?.pk?.S ?? '';
      const takeover = input.ConditionExpression?.includes(':holder') === true;
      if (command === 'PutItemCommand' && key.startsWith('LOCK#') && takeover && hold.beforeTakeover) {
        const before = hold.beforeTakeover;
        delete hold.beforeTakeover;
        await before();
      }
      return next(args);
    },
    { step: 'deserialize', name: 'hold-lock-takeover' },
  );
  return { client, hold };
}

async function createOrFail(store: DynamoRunStore, run: Run): Promise<Run> {
  const res = await store.createRun({ run, events: [created], lockKey: 'L' });
  if (res.outcome !== 'created') throw new Error(`expected a new run, got ${res.outcome}`);
  return res.run;
}

const ended = (run: Run): Run => ({
  ...run,
  version: run.version + 1,
  status: 'failed',
  reason: 'test',
  finishedAt: at,
});
const retried = (run: Run): Run => ({ ...run, version: run.version + 1, status: 'running' });

const lockItem = async (store: DynamoRunStore) =>
  (
    await store.doc.send(
      new GetCommand({ TableName: store.tableName, Key: { pk: itemKeys.lock('L'), sk: sortKeys.lock } }),
    )
  ).Item;

describe('a subject lock at the end of a run', () => {
  it('is not written when its run ends, and passes to the next run in one write', async () => {
    const { client, commands: sent } = recordingClient();
    const store = await createTestStore({ client });
    const run = await createOrFail(store, aRun());
    sent.length = 0;

    await store.commit({ run: ended(run), expectedVersion: run.version, events: [], releaseLock: 'L' });

    expect(sent).toEqual(['PutItemCommand']);
    expect((await lockItem(store))?.runId).toBe(run.id);
    sent.length = 0;
    const next = await createOrFail(store, aRun());
    // The refused put, the read of the ended run's item, the takeover; no delete.
    expect(sent.filter((c) => c !== 'PutItemCommand' && c !== 'GetItemCommand')).toEqual([]);
    expect((await lockItem(store))?.runId).toBe(next.id);
    expect(await store.createRun({ run: aRun(), events: [created], lockKey: 'L' })).toEqual({
      outcome: 'locked',
      activeRunId: next.id,
    });
  });

  it('expires only after any run holding it could have ended', async () => {
    const store = await createTestStore();
    await createOrFail(store, aRun());
    const ttl = Number((await lockItem(store))?.ttl);
    // A run lasts at most as long as its chunks are kept: the store's retention and 30 days more.
    expect(ttl).toBeGreaterThan(Date.now() / 1000 + 30 * 86_400);
  });

  it('stays with a run retried after its end', async () => {
    const store = await createTestStore();
    const run = await createOrFail(store, aRun());
    const done = await store.commit({
      run: ended(run),
      expectedVersion: run.version,
      events: [],
      releaseLock: 'L',
    });
    await store.commit({ run: retried(done), expectedVersion: done.version, events: [], acquireLock: 'L' });

    expect(await store.getRun(run.id)).toMatchObject({ status: 'running', version: done.version + 1 });
    expect(await store.createRun({ run: aRun(), events: [created], lockKey: 'L' })).toEqual({
      outcome: 'locked',
      activeRunId: run.id,
    });
  });

  it('is not taken over by the next run when its run was retried just before', async () => {
    const { client, hold } = holdingClient();
    const store = await createTestStore({ client });
    const other = new DynamoRunStore(dynamoClient(testEndpoint()), { tableName: store.tableName });
    const run = await createOrFail(other, aRun());
    const done = await other.commit({
      run: ended(run),
      expectedVersion: run.version,
      events: [],
      releaseLock: 'L',
    });
    // A new run finds the ended run's lock; before it takes it over, the ended run is retried.
    hold.beforeTakeover = async () => {
      await other.commit({ run: retried(done), expectedVersion: done.version, events: [], acquireLock: 'L' });
    };

    expect(await store.createRun({ run: aRun(), events: [created], lockKey: 'L' })).toEqual({
      outcome: 'locked',
      activeRunId: run.id,
    });
    expect(hold.beforeTakeover).toBeUndefined();
    expect(await store.getRun(run.id)).toMatchObject({ status: 'running' });
  });
});
