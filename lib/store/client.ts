import { DynamoDBClient } from '@aws-sdk/client-dynamodb';

/**
 * A DynamoDB client for a given endpoint (DynamoDB Local) or for AWS (no endpoint: the default
 * credential chain and region). Local endpoints get dummy credentials, as DynamoDB Local ignores them.
 */
export function dynamoClient(endpoint?: string, extra: { maxAttempts?: number } = {}): DynamoDBClient {
  if (!endpoint) return new DynamoDBClient({ ...extra });
  return new DynamoDBClient({
    endpoint,
    region: process.env.AWS_REGION ?? 'local',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    ...extra,
  });
}
