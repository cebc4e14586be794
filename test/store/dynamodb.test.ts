import { describe, expect, it } from 'vitest';
import { createTestStore, recordingClient } from '../support/dynamo.ts';
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
