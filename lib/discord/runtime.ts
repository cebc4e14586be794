import { queueFromEnv, storeFromEnv } from '../app/core.ts';
import { configRefreshMs } from '../common/config-refresh.ts';
import { ConfigurationError } from '../common/errors.ts';
import { logger } from '../common/observability.ts';
import { getSecretValue } from '../common/secrets.ts';
import { parseLinkKeys } from '../console/access.ts';
import { Engine } from '../engine/engine.ts';
import { buildRegistry } from '../workflows/index.ts';
import { makeConsoleLink } from './console-link.ts';
import type { DiscordServices } from './handler.ts';
import type { DiscordPolicy } from './policy.ts';
import { policyFromFile, policyFromJsonFile } from './policy-file.ts';
import { policyWithVersions } from './policy-versions.ts';

/**
 * The heavy half of the Discord function: the DynamoDB store, the SQS queue (AWS SDK) and the
 * engine's graphs. lib/app/discord.ts imports this module dynamically on the first
 * command, so module load and PING never pay for it.
 */
export function servicesFromEnv(env: NodeJS.ProcessEnv = process.env): DiscordServices {
  const store = storeFromEnv(env);
  const engine = new Engine({
    store,
    queue: queueFromEnv(env),
    // Graphs only: starting and signalling runs needs node names, not the worker's services.
    workflows: buildRegistry(),
    services: {},
  });
  logger.debug('discord services ready');
  const workloads = async () => {
    const { formatWorkloads, workloads: read } = await import('../agents/work-queue.ts');
    return formatWorkloads(await read(store));
  };
  // API_BASE_URL is set by the stack; the key is the CONSOLE_LINK_KEY secret, read on first /status.
  const consoleLink = env.API_BASE_URL
    ? makeConsoleLink({
        kv: store,
        keys: async () => parseLinkKeys(await getSecretValue('CONSOLE_LINK_KEY', env)),
        baseUrl: env.API_BASE_URL,
      })
    : undefined;
  return {
    engine,
    store,
    policy: policyWithVersions(store, policyFromEnv(env), { maxAgeMs: configRefreshMs(env) }),
    workloads,
    ...(consoleLink ? { consoleLink } : {}),
  };
}

/**
 * DISCORD_POLICY_FILE (JSON, set by the stack); otherwise the YAML config (SWITCHYARD_CONFIG),
 * for unbundled runs only. The bundle defines SWITCHYARD_BUNDLED, so esbuild drops the YAML branch
 * and the `yaml` package with it; a bundle without the JSON file denies every command.
 */
export function policyFromEnv(env: NodeJS.ProcessEnv = process.env): () => Promise<DiscordPolicy> {
  if (env.DISCORD_POLICY_FILE) return policyFromJsonFile(env.DISCORD_POLICY_FILE);
  const path = env.SWITCHYARD_CONFIG || 'config/switchyard.yml';
  return policyFromFile(
    path,
    process.env.SWITCHYARD_BUNDLED
      ? () => {
          throw new ConfigurationError('DISCORD_POLICY_FILE is not set, and the bundle reads no YAML');
        }
      : async (text) => (await import('yaml')).parse(text) as unknown,
  );
}
