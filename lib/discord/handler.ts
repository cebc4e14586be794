import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { logger } from '../common/observability.ts';
import { createInteractionEndpoint, type RawRequest, type RawResponse } from './ingress.ts';
import { createInteractionRouter, type DiscordEnginePort, type DiscordStorePort } from './interactions.ts';
import { DENY_ALL, type DiscordPolicy, policyFromConfig } from './policy.ts';
import { importDiscordPublicKey } from './verify.ts';

export interface DiscordHandlerDeps {
  /** DISCORD_PUBLIC_KEY (hex) or the key already imported. */
  publicKey: string | KeyObject;
  engine: DiscordEnginePort;
  /** The run store: its KV (tokens, bindings, audit) and the active-runs index. */
  store: DiscordStorePort;
  /** A policy, or a loader called per command (memoize inside; PING never calls it). */
  policy: DiscordPolicy | (() => Promise<DiscordPolicy>);
  now?: () => Date;
}

/** The whole Discord endpoint over raw requests: verification, PING, commands, buttons, autocomplete. */
export function createDiscordHandler(deps: DiscordHandlerDeps): (req: RawRequest) => Promise<RawResponse> {
  const publicKey =
    typeof deps.publicKey === 'string' ? importDiscordPublicKey(deps.publicKey) : deps.publicKey;
  const policy =
    typeof deps.policy === 'function'
      ? deps.policy
      : (
          (p: DiscordPolicy) => async () =>
            p
        )(deps.policy);
  const now = deps.now ?? (() => new Date());
  const dispatch = createInteractionRouter({ engine: deps.engine, store: deps.store, policy, now });
  return createInteractionEndpoint({ publicKey, dispatch, nowMs: () => now().getTime() });
}

/**
 * Read the Discord policy from the YAML config, without the config schema (zod) on the 3-second
 * path. Memoized once it loads; a config that cannot be read denies everything (fail closed) and
 * is tried again on the next command.
 */
export function policyFromYamlFile(path: string): () => Promise<DiscordPolicy> {
  let loaded: DiscordPolicy | undefined;
  return async () => {
    if (loaded) return loaded;
    try {
      const [{ parse }, text] = await Promise.all([import('yaml'), readFile(path, 'utf8')]);
      const { policy, problems } = policyFromConfig(parse(text));
      if (problems.length > 0) logger.warn('discord policy: entries ignored', { problems });
      loaded = policy;
      return policy;
    } catch (err) {
      logger.error('discord policy: config unreadable, denying all commands', {
        path,
        error: (err as Error).message,
      });
      return DENY_ALL;
    }
  };
}
