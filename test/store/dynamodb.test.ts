import { describe, expect, it } from 'vitest';
import { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { createTestStore, recordingClient, storeTestRun } from '../support/dynamo.ts';
import { runStoreContract } from './contract.ts';

/** Every command the contract suite sends, by name: the suite proves the store never scans. */
const { client, commands } = recordingClient();

runStoreContract('DynamoRunStore on DynamoDB Local', (opts = {}) =>
  createTestStore({ client, ...(opts.now ? { now: opts.now } : {}) }),
);

describe('DynamoRunStore', () => {
  // Runs after the contract above (tests in a file run in order), over everything it sent.
  it('never sends a Scan, on any operation of the contract', () => {
    const sent = new Set(commands);

    expect(sent).toContain('QueryCommand');
    expect(sent).toContain('TransactWriteItemsCommand');
    expect([...sent].filter((c) => /scan/i.test(c))).toEqual([]);
  });
});

describe('a run item carried in a step message', () => {
  it('is read by another process as getRun reads it, and a commit over its version needs no read', async () => {
    const writer = await createTestStore();
    const run = { ...storeTestRun('w'), data: { text: 'x'.repeat(3000) } };
    await writer.createRun({
      run,
      events: [{ type: 'run.created', node: 'a', detail: {} }],
      lockKey: 'o/r#1',
    });
    const carried = writer.carriedRun(run.id, 1, 64 * 1024)!;

    // Another process, over the same table: nothing known of the run.
    const recording = recordingClient();
    const reader = new DynamoRunStore(recording.client, { tableName: writer.tableName });
    const read = await reader.runFromCarried(run.id, carried);
    expect(read).toEqual(await writer.getRun(run.id));
    const next = { ...read!, version: 2, data: { ...read!.data, b: 1 } };
    await reader.commit({
      run: next,
      expectedVersion: 1,
      events: [{ type: 'step.succeeded', node: 'a', detail: {} }],
    });

    // Its chunk (the long text) is read; the run item never is, not even for the commit's layout.
    expect(recording.commands).toEqual(['BatchGetItemCommand', 'PutItemCommand']);
    expect(await writer.getRun(run.id)).toMatchObject({ version: 2, data: { b: 1, text: run.data.text } });
    expect((await writer.listEvents(run.id)).map((e) => e.type)).toEqual(['run.created', 'step.succeeded']);
  });
});
