import { randomBytes } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { inject } from 'vitest';
import type { Run } from '../../lib/engine/types.ts';
import { dynamoClient } from '../../lib/store/client.ts';
import { createTable, DynamoRunStore, type DynamoRunStoreOptions } from '../../lib/store/dynamodb.ts';

export function testEndpoint(): string {
  return inject('dynamoEndpoint') ?? process.env.DYNAMODB_ENDPOINT!;
}

/** A fresh table on the suite's DynamoDB Local and a real DynamoRunStore over it. */
export async function createTestStore(
  opts: Partial<DynamoRunStoreOptions> & { client?: DynamoDBClient } = {},
): Promise<DynamoRunStore> {
  const client = opts.client ?? dynamoClient(testEndpoint());
  const tableName = opts.tableName ?? `test-${randomBytes(6).toString('hex')}`;
  await createTable(client, tableName);
  return new DynamoRunStore(client, { ...opts, tableName });
}

/**
 * A run item's keys as the version before listing items wrote them: its own key, the active index
 * and the subject, repository and month indexes all on the run item.
 */
export function previousLayoutRunKeys(run: {
  id: string;
  createdAt: string;
  subject: { key: string; repo?: string };
}): Record<string, string> {
  const sortKey = `${run.createdAt}#${run.id}`;
  return {
    pk: `RUN#${run.id}`,
    sk: 'RUN',
    gsi1pk: 'ACTIVE',
    gsi1sk: sortKey,
    gsi2pk: `SUBJ#${run.subject.key}`,
    gsi2sk: sortKey,
    gsi3pk: `REPO#${run.subject.repo}`,
    gsi3sk: sortKey,
    gsi4pk: `RUNS#${run.createdAt.slice(0, 7)}`,
    gsi4sk: sortKey,
  };
}

/** A client for the suite's DynamoDB Local that records the name of every command it sends. */
export function recordingClient(): { client: DynamoDBClient; commands: string[] } {
  const commands: string[] = [];
  const client = dynamoClient(testEndpoint());
  client.middlewareStack.add(
    (next, context) => async (args) => {
      commands.push(String((context as { commandName?: string }).commandName));
      return next(args);
    },
    { step: 'initialize', name: 'recordCommandNames' },
  );
  return { client, commands };
}

/** A new running run at version 1 with no events yet, for store tests. */
export function storeTestRun(workflow: string, at = new Date().toISOString()): Run {
  return {
    id: `run-${randomBytes(5).toString('hex')}`,
    workflow,
    status: 'running',
    node: 'a',
    subject: { repo: 'acme/widget', issue: 1, key: 'acme/widget#1' },
    trigger: { source: 'test' },
    createdAt: at,
    updatedAt: at,
    version: 1,
    data: {},
    eventSeq: 0,
  };
}
