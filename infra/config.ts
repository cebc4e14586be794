import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Node } from 'constructs';
import { SERVICE_NAME } from '../lib/common/metric-names.ts';

/**
 * Deployment settings, all from CDK context (`-c key=value` or cdk.json), never from an account
 * lookup, so `cdk synth` works offline and the same inputs always give the same template.
 */
export const STAGES = ['dev', 'prod'] as const;
export type Stage = (typeof STAGES)[number];

export interface SwitchyardConfig {
  stage: Stage;
  /** Discord application public key, hex (verifies interaction signatures; public, not a secret). */
  discordPublicKey?: string;
  discordApplicationId?: string;
  /** Email subscribed to the alarm topic (optional; subscribe anything else to the topic output). */
  alarmEmail?: string;
  logLevel: 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
  logRetentionDays: RetentionDays;
  /** Value of the Powertools `service` dimension; stage-specific so a dev stack never trips prod alarms. */
  serviceName: string;
}

const LOG_LEVELS = ['DEBUG', 'INFO', 'WARN', 'ERROR'] as const;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function text(node: Node, key: string): string | undefined {
  const value: unknown = node.tryGetContext(key);
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') {
    // A snowflake written as a JSON number in cdk.json has already lost precision.
    throw new ConfigError(`context "${key}" must be a string; quote it in cdk.json`);
  }
  const s = value.trim();
  return s === '' ? undefined : s;
}

export function readConfig(node: Node): SwitchyardConfig {
  const stage = text(node, 'stage') ?? 'dev';
  if (!(STAGES as readonly string[]).includes(stage)) {
    throw new ConfigError(`context "stage" must be one of ${STAGES.join(', ')}; got "${stage}"`);
  }
  const discordPublicKey = text(node, 'discordPublicKey');
  if (discordPublicKey !== undefined && !/^[0-9a-fA-F]{64}$/.test(discordPublicKey)) {
    throw new ConfigError(
      'context "discordPublicKey" must be the 64 hex characters shown in the Discord portal',
    );
  }
  const discordApplicationId = text(node, 'discordApplicationId');
  if (discordApplicationId !== undefined && !/^\d{15,22}$/.test(discordApplicationId)) {
    throw new ConfigError('context "discordApplicationId" must be the numeric application id (a snowflake)');
  }
  const alarmEmail = text(node, 'alarmEmail');
  if (alarmEmail !== undefined && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(alarmEmail)) {
    throw new ConfigError(`context "alarmEmail" is not an email address: "${alarmEmail}"`);
  }
  const logLevel = (text(node, 'logLevel') ?? 'INFO').toUpperCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(`context "logLevel" must be one of ${LOG_LEVELS.join(', ')}`);
  }
  if (stage === 'prod' && (discordPublicKey === undefined || discordApplicationId === undefined)) {
    // A prod stack without them deploys fine but every Discord interaction would fail.
    throw new ConfigError(
      'stage prod needs -c discordPublicKey=<hex> -c discordApplicationId=<id> (see docs/deploy.md)',
    );
  }
  return {
    stage: stage as Stage,
    ...(discordPublicKey !== undefined ? { discordPublicKey: discordPublicKey.toLowerCase() } : {}),
    ...(discordApplicationId !== undefined ? { discordApplicationId } : {}),
    ...(alarmEmail !== undefined ? { alarmEmail } : {}),
    logLevel: logLevel as SwitchyardConfig['logLevel'],
    logRetentionDays: stage === 'prod' ? RetentionDays.THREE_MONTHS : RetentionDays.TWO_WEEKS,
    serviceName: stage === 'prod' ? SERVICE_NAME : `${SERVICE_NAME}-${stage}`,
  };
}
