/**
 * The Discord handler as a careless version would ship it: every AWS SDK v3 client the system
 * uses is imported and constructed at load, whether a request needs it or not, in one file (no
 * code splitting). bench/functions.ts measures its cold import next to the real handler's
 * (`functions.discord.coldImportRatioToNaive`), and bundles it like the others, yaml-free.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

// Exported so the bundler cannot drop them: the SDK packages are marked side-effect free.
export const clients = {
  dynamo: DynamoDBDocumentClient.from(new DynamoDBClient({})),
  sqs: new SQSClient({}),
  secrets: new SecretsManagerClient({}),
};

export { handler } from '../functions/discord-interactions.ts';
