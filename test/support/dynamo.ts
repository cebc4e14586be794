import { randomBytes } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { inject } from 'vitest';
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
