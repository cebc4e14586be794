import type { TestProject } from 'vitest/node';
import { type DynamoDbLocal, startDynamoDbLocal } from '../../lib/store/dynamodb-local.ts';

let db: DynamoDbLocal | undefined;

/** Start Amazon's DynamoDB Local once for the whole suite (or use DYNAMODB_ENDPOINT if given). */
export async function setup(project: TestProject): Promise<void> {
  let endpoint = process.env.DYNAMODB_ENDPOINT;
  if (!endpoint) {
    db = await startDynamoDbLocal();
    endpoint = db.endpoint;
  }
  process.env.DYNAMODB_ENDPOINT = endpoint;
  project.provide('dynamoEndpoint', endpoint);
}

export async function teardown(): Promise<void> {
  await db?.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    dynamoEndpoint: string;
  }
}
