import { readFile } from 'node:fs/promises';
import { logger } from '../common/observability.ts';
import { DENY_ALL, type DiscordPolicy, policyFromConfig } from './policy.ts';

/**
 * Read the Discord policy from a file once, through `policyFromConfig` whatever the format, so a
 * file can only take permissions away, never add them. Memoized once it loads; a file that cannot
 * be read or parsed denies everything (fail closed) and is tried again on the next command.
 */
export function policyFromFile(
  path: string,
  parse: (text: string) => unknown | Promise<unknown>,
): () => Promise<DiscordPolicy> {
  let loaded: DiscordPolicy | undefined;
  return async () => {
    if (loaded) return loaded;
    try {
      const { policy, problems } = policyFromConfig(await parse(await readFile(path, 'utf8')));
      if (problems.length > 0) logger.warn('discord policy: entries ignored', { path, problems });
      loaded = policy;
      return policy;
    } catch (err) {
      logger.error('discord policy: unreadable, denying all commands', {
        path,
        error: (err as Error).message,
      });
      return DENY_ALL;
    }
  };
}

/**
 * The policy as deployed: `discord-policy.json`, the `routing.triggerLabel` and `discord` parts of
 * the validated config, written at bundle time by scripts/config-to-json.ts. JSON.parse only: no
 * YAML parser and no config schema on the 3-second path.
 */
export function policyFromJsonFile(path: string): () => Promise<DiscordPolicy> {
  return policyFromFile(path, (text) => JSON.parse(text) as unknown);
}
