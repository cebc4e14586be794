import type { KeyObject } from 'node:crypto';
import { loadOnce } from '../common/load-once.ts';
import type { Endpoint } from '../http/request.ts';
import { createInteractionEndpoint } from './endpoint.ts';
import type { DiscordEnginePort, DiscordStorePort, InteractionDeps } from './interactions.ts';
import type { DiscordPolicy } from './policy.ts';
import { importDiscordPublicKey } from './verify.ts';

/**
 * This module is on the cold-start path of the Discord function: it imports only verification
 * (node:crypto) and the endpoint. The command router and everything it needs (store, engine,
 * AWS SDK) are loaded on the first request that is not a PING, once.
 */

/** What commands, buttons and autocomplete need; PING and refusals need none of it. */
export interface DiscordServices {
  engine: DiscordEnginePort;
  /** The run store: its KV (tokens, bindings, audit) and the active-runs index. */
  store: DiscordStorePort;
  /** A policy, or a loader called per command (memoize inside; PING never calls it). */
  policy: DiscordPolicy | (() => Promise<DiscordPolicy>);
  /** The agents' queue depth and workloads as text, for /status (lib/agents/work-queue.ts). */
  workloads?: () => Promise<string>;
  /** A signed link to the run console for a user (lib/discord/console-link.ts), offered by /status. */
  consoleLink?: InteractionDeps['consoleLink'];
}

export interface DiscordHandlerDeps extends DiscordServices {
  /** DISCORD_PUBLIC_KEY (hex) or the key already imported. */
  publicKey: string | KeyObject;
  now?: () => Date;
}

/** The same, with the services loaded on the first command (dynamic import), not at module load. */
export interface LazyDiscordHandlerDeps {
  publicKey: string | KeyObject;
  services: () => Promise<DiscordServices>;
  now?: () => Date;
}

/** The whole Discord endpoint over raw requests: verification, PING, commands, buttons, autocomplete. */
export function createDiscordHandler(deps: DiscordHandlerDeps | LazyDiscordHandlerDeps): Endpoint {
  const publicKey =
    typeof deps.publicKey === 'string' ? importDiscordPublicKey(deps.publicKey) : deps.publicKey;
  const now = deps.now ?? (() => new Date());
  const services: () => Promise<DiscordServices> =
    'services' in deps ? deps.services : async () => deps as DiscordHandlerDeps;
  const router = loadOnce(async () => {
    const [{ createInteractionRouter }, { engine, store, policy, workloads, consoleLink }] =
      await Promise.all([import('./interactions.ts'), services()]);
    return createInteractionRouter({
      engine,
      store,
      policy: typeof policy === 'function' ? policy : async () => policy,
      ...(workloads ? { workloads } : {}),
      ...(consoleLink ? { consoleLink } : {}),
      now,
    });
  });
  return createInteractionEndpoint({
    publicKey,
    dispatch: async (interaction) => (await router())(interaction),
    nowMs: () => now().getTime(),
  });
}
