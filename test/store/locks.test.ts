import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import type { Run } from '../../lib/engine/types.ts';
import { dynamoClient } from '../../lib/store/client.ts';
import { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { itemKeys, sortKeys } from '../../lib/store/schema.ts';
import { createTestStore, recordingClient, storeTestRun, testEndpoint } from '../support/dynamo.ts';

/**
 * Subject locks without a transaction at the end of a run (issue 13, cost): the ending commit
 * writes the run, then deletes its lock; the lock of an ended run is free, and the next run that
 * wants it deletes it. What the contract suite cannot stage: a retry of the ended run landing in
 * between, on either side.
 */

const at = new Date().toISOString();
const created = { type: 'run.created' as const, node: 'a', detail: {} };

const aRun = () => storeTestRun('locks', at);

/** A client that, before each DeleteItem of a subject lock, awaits `beforeLockDelete` once. */
function holdingClient() {
  const hold: { beforeLockDelete?: () => Promise<void> } = {};
  const client = dynamoClient(testEndpoint());
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = String((context as { commandName?: string }).commandName);
      const key = (args.input as { Key?: { pk?: { S?: string } } }).Key?.pk?.S ?? '';
      if (command === 'DeleteItemCommand' && key.startsWith('LOCK#') && hold.beforeLockDelete) {
        const before = hold.beforeLockDelete;
        delete hold.beforeLockDelete;
        await before();
      }
      return next(args);
    },
    { step: 'deserialize', name: 'hold-lock-delete' },
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

describe('a subject lock at the end of a run', () => {
  it('is released after the run is written, with no transaction', async () => {
    const { client, commands: sent } = recordingClient();
    const store = await createTestStore({ client });
    const run = await createOrFail(store, aRun());
    sent.length = 0;

    await store.commit({ run: ended(run), expectedVersion: run.version, events: [], releaseLock: 'L' });

    expect(sent).toEqual(['PutItemCommand', 'DeleteItemCommand']);
    expect((await store.createRun({ run: aRun(), events: [created], lockKey: 'L' })).outcome).toBe('created');
  });

  it('left behind by a release that failed (throttled, unreachable) does not fail the end, and is freed by the next run', async () => {
    const { client, hold } = holdingClient();
    const store = await createTestStore({ client });
    const run = await createOrFail(store, aRun());
    // Every try of the release's delete (the SDK retries a throttle) is refused.
    let refused = 0;
    const refuse = async () => {
      refused++;
      hold.beforeLockDelete = refuse;
      throw Object.assign(new Error('Rate of requests exceeds the allowed throughput.'), {
        name: 'ThrottlingException',
        $metadata: { httpStatusCode: 400 },
      });
    };
    hold.beforeLockDelete = refuse;

    const done = await store.commit({
      run: ended(run),
      expectedVersion: run.version,
      events: [],
      releaseLock: 'L',
    });
    delete hold.beforeLockDelete;

    expect(refused).toBeGreaterThan(0);
    expect(done.status).toBe('failed');
    expect(await store.getRun(run.id)).toMatchObject({ status: 'failed', version: done.version });
    // The lock is still there, held by the ended run: the next creation frees it.
    const lock = await store.doc.send(
      new GetCommand({ TableName: store.tableName, Key: { pk: itemKeys.lock('L'), sk: sortKeys.lock } }),
    );
    expect(lock.Item?.runId).toBe(run.id);
    const next = await store.createRun({ run: aRun(), events: [created], lockKey: 'L' });
    expect(next.outcome).toBe('created');
  });

  it('stays with a run retried between its end and the release', async () => {
    const { client, hold } = holdingClient();
    const store = await createTestStore({ client });
    const other = new DynamoRunStore(dynamoClient(testEndpoint()), { tableName: store.tableName });
    const run = await createOrFail(store, aRun());
    const done = ended(run);
    // The release is late: the run is retried (it takes its lock again) before it is sent.
    hold.beforeLockDelete = async () => {
      await other.commit({ run: retried(done), expectedVersion: done.version, events: [], acquireLock: 'L' });
    };

    await store.commit({ run: done, expectedVersion: run.version, events: [], releaseLock: 'L' });

    expect(await store.getRun(run.id)).toMatchObject({ status: 'running', version: done.version + 1 });
    expect(await other.createRun({ run: aRun(), events: [created], lockKey: 'L' })).toEqual({
      outcome: 'locked',
      activeRunId: run.id,
    });
  });

  it('left behind is freed by the next run, unless its run was retried meanwhile', async () => {
    const { client, hold } = holdingClient();
    const store = await createTestStore({ client });
    const other = new DynamoRunStore(dynamoClient(testEndpoint()), { tableName: store.tableName });
    const run = await createOrFail(other, aRun());
    // Ended without its release (the worker stopped between the two).
    const done = await other.commit({ run: ended(run), expectedVersion: run.version, events: [] });
    // A new run finds the ended run's lock; before it deletes it, the ended run is retried.
    hold.beforeLockDelete = async () => {
      await other.commit({ run: retried(done), expectedVersion: done.version, events: [], acquireLock: 'L' });
    };

    expect(await store.createRun({ run: aRun(), events: [created], lockKey: 'L' })).toEqual({
      outcome: 'locked',
      activeRunId: run.id,
    });
    expect(await store.getRun(run.id)).toMatchObject({ status: 'running' });
  });
});
