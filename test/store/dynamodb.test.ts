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

describe("a run's chunks", () => {
  it('are read eventually consistent, and strongly only where that read missed them', async () => {
    const writer = await createTestStore();
    const run = { ...storeTestRun('c'), data: { a: 'a'.repeat(3000), b: 'b'.repeat(3000) } };
    await writer.createRun({ run, events: [{ type: 'run.created', node: 'a', detail: {} }] });

    // Another process, whose first, eventually consistent read finds one chunk not there yet (a
    // replica behind the write), as DynamoDB may answer; DynamoDB Local is always consistent.
    const reads: boolean[] = [];
    const reader = recordingClient();
    reader.client.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        if ((context as { commandName?: string }).commandName !== 'BatchGetItemCommand') return out;
        const input = args.input as { RequestItems: Record<string, { ConsistentRead?: boolean }> };
        const consistent = Object.values(input.RequestItems)[0]?.ConsistentRead === true;
        reads.push(consistent);
        const output = out.output as { Responses?: Record<string, unknown[]> };
        if (!consistent) for (const items of Object.values(output.Responses ?? {})) items.splice(0, 1);
        return out;
      },
      { step: 'initialize', name: 'laggingReplica' },
    );
    const store = new DynamoRunStore(reader.client, { tableName: writer.tableName });

    expect((await store.getRun(run.id))?.data).toEqual(run.data);
    expect(reads).toEqual([false, true]);
  });

  it('come from the cache once read, unless chunk reads are uncached (the worst case the cost bench measures)', async () => {
    const writer = await createTestStore();
    const run = { ...storeTestRun('c'), data: { a: 'a'.repeat(3000) } };
    await writer.createRun({ run, events: [{ type: 'run.created', node: 'a', detail: {} }] });
    const reader = recordingClient();
    const store = new DynamoRunStore(reader.client, { tableName: writer.tableName });
    const chunkReads = () => reader.commands.filter((c) => c === 'BatchGetItemCommand').length;

    await store.getRun(run.id);
    await store.getRun(run.id);
    expect(chunkReads()).toBe(1);

    store.cacheChunkReads = false;
    expect((await store.getRun(run.id))?.data).toEqual(run.data);
    expect(chunkReads()).toBe(2);
  });
});
