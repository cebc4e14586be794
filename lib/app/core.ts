import { SQSClient } from '@aws-sdk/client-sqs';
import { requireEnv } from '../common/env.ts';
import { InvokeQueue, lambdaClient } from '../queue/invoke.ts';
import type { StepQueue } from '../queue/port.ts';
import { SqsQueue } from '../queue/sqs.ts';
import { dynamoClient } from '../store/client.ts';
import { DynamoRunStore } from '../store/dynamodb.ts';

/**
 * The light part of the composition root: the store and the queue, from the environment.
 * Every function needs these; only the worker loads the heavy services (lib/app/worker.ts).
 * A missing variable fails at load with its name.
 */
export function storeFromEnv(env: NodeJS.ProcessEnv = process.env): DynamoRunStore {
  return new DynamoRunStore(dynamoClient(env.DYNAMODB_ENDPOINT), {
    tableName: requireEnv('TABLE_NAME', env),
    ...(env.RETENTION_DAYS ? { retentionDays: Number(env.RETENTION_DAYS) } : {}),
  });
}

/**
 * The step queue: SQS (`QUEUE_URL`), with the messages due now invoking the worker directly when
 * `WORKER_FUNCTION_NAME` names it (lib/queue/invoke.ts). Without it, everything goes to SQS.
 */
export function queueFromEnv(env: NodeJS.ProcessEnv = process.env): StepQueue {
  const sqs = new SqsQueue(new SQSClient({}), requireEnv('QUEUE_URL', env));
  const worker = env.WORKER_FUNCTION_NAME;
  return worker ? new InvokeQueue(lambdaClient(), worker, sqs) : sqs;
}

export const VERSION = process.env.SWITCHYARD_VERSION ?? '0.1.0';
