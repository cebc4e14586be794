import { logger } from '../common/observability.ts';
import type { RunStore } from '../engine/ports.ts';
import { type DiscordPolicy, policyFromConfig } from './policy.ts';

/** Where `npm run config:push` keeps the active version (lib/routing/config-versions.ts). */
const GROUP = 'config-version';
const ACTIVE = 'active';

/**
 * The Discord policy from the newest pushed config version (its validated JSON: no YAML parser or
 * schema on the 3-second path), re-read at most every `maxAgeMs` (60 s; env
 * SWITCHYARD_CONFIG_REFRESH_SECONDS through `configRefreshMs`); the bundled policy when
 * nothing was pushed or the table cannot be read.
 */
export function policyWithVersions(
  kv: Pick<RunStore, 'kvGet'>,
  bundled: () => Promise<DiscordPolicy>,
  opts: { maxAgeMs?: number; now?: () => number } = {},
): () => Promise<DiscordPolicy> {
  const maxAge = opts.maxAgeMs ?? 60_000;
  const now = opts.now ?? Date.now;
  let cached: { at: number; policy: DiscordPolicy | undefined } | undefined;
  return async () => {
    if (!cached || now() - cached.at >= maxAge) {
      try {
        const item = await kv.kvGet<{ json: unknown; version: number }>(GROUP, ACTIVE);
        cached = { at: now(), policy: item ? policyFromConfig(item.value.json).policy : undefined };
      } catch (err) {
        logger.warn('discord policy: config version unreadable, using the bundled policy', {
          error: (err as Error).message,
        });
        cached = { at: now(), policy: undefined };
      }
    }
    return cached.policy ?? bundled();
  };
}

/**
 * The newest pushed config version's validated JSON (a superset of the `DISCORD_POLICY_FILE`
 * document: `discord` and `routing` are there), re-read at most every `maxAgeMs`; `bundled()` when
 * nothing was pushed or the table cannot be read. The console's rights come from it, so an approver
 * added by `config:push` can act there too without a redeploy.
 */
export function documentWithVersions(
  kv: Pick<RunStore, 'kvGet'>,
  bundled: () => Promise<unknown>,
  opts: { maxAgeMs?: number; now?: () => number } = {},
): () => Promise<unknown> {
  const maxAge = opts.maxAgeMs ?? 60_000;
  const now = opts.now ?? Date.now;
  let cached: { at: number; doc: unknown } | undefined;
  return async () => {
    if (!cached || now() - cached.at >= maxAge) {
      try {
        const item = await kv.kvGet<{ json: unknown }>(GROUP, ACTIVE);
        cached = { at: now(), doc: item?.value.json };
      } catch (err) {
        logger.warn('policy document: config version unreadable, using the bundled one', {
          error: (err as Error).message,
        });
        cached = { at: now(), doc: undefined };
      }
    }
    return cached.doc ?? bundled();
  };
}
