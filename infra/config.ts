import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Node } from 'constructs';
import { SERVICE_NAME } from '../lib/common/metric-names.ts';
import { AGENT_REPO } from './agent-role.ts';

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
  /** `-c agentRepos=owner/name,owner/*`: repositories whose agent workflows may assume the agent role. */
  agentRepos?: string[];
  /** `-c githubOidcProviderArn=…`: the account's GitHub OIDC provider, imported instead of created. */
  githubOidcProviderArn?: string;
  /** `-c agentModels=id,id`: Bedrock model or inference profile ids the agent role may invoke. */
  agentModels: string[];
}

export const DEFAULT_AGENT_MODELS = ['us.anthropic.claude-sonnet-4-5-20250929-v1:0'];

const MODEL_ID = /^[a-z0-9-]+(\.[a-z0-9-]+)+(-v[0-9]+)?(:[0-9a-z]+)?$/;

function list(node: Node, key: string): string[] | undefined {
  const value = text(node, key);
  if (value === undefined) return undefined;
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return items.length > 0 ? items : undefined;
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
  const agentRepos = list(node, 'agentRepos');
  for (const r of agentRepos ?? [])
    if (!AGENT_REPO.test(r))
      throw new ConfigError(`context "agentRepos": "${r}" is not owner/name or owner/*`);
  const githubOidcProviderArn = text(node, 'githubOidcProviderArn');
  if (
    githubOidcProviderArn !== undefined &&
    !/^arn:aws[a-z-]*:iam::\d{12}:oidc-provider\/token\.actions\.githubusercontent\.com$/.test(
      githubOidcProviderArn,
    )
  )
    throw new ConfigError(
      'context "githubOidcProviderArn" must be the ARN of the token.actions.githubusercontent.com provider',
    );
  const agentModels = list(node, 'agentModels') ?? DEFAULT_AGENT_MODELS;
  for (const m of agentModels)
    if (!MODEL_ID.test(m)) throw new ConfigError(`context "agentModels": "${m}" is not a Bedrock model id`);
  return {
    stage: stage as Stage,
    ...(agentRepos ? { agentRepos } : {}),
    ...(githubOidcProviderArn ? { githubOidcProviderArn } : {}),
    agentModels,
    ...(discordPublicKey !== undefined ? { discordPublicKey: discordPublicKey.toLowerCase() } : {}),
    ...(discordApplicationId !== undefined ? { discordApplicationId } : {}),
    ...(alarmEmail !== undefined ? { alarmEmail } : {}),
    logLevel: logLevel as SwitchyardConfig['logLevel'],
    logRetentionDays: stage === 'prod' ? RetentionDays.THREE_MONTHS : RetentionDays.TWO_WEEKS,
    serviceName: stage === 'prod' ? SERVICE_NAME : `${SERVICE_NAME}-${stage}`,
  };
}
