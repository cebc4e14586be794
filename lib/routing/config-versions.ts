import { ContentionError } from '../common/errors.ts';
import type { RunStore } from '../engine/ports.ts';
import { parseConfigSource } from './config.ts';

/**
 * Runtime config versions, kept in the run table's KV (group `config-version`): `active` points at
 * the newest version, and `v<N>` keeps each one (source text, parsed JSON, who and when). A push
 * validates first (ConfigError, `file:line: reason`) and writes with conditional puts, so two
 * pushes racing for the same number cannot both win.
 */
export const CONFIG_VERSION_GROUP = 'config-version';
export const ACTIVE_KEY = 'active';
const versionKey = (n: number) => `v${String(n).padStart(8, '0')}`;

export interface StoredConfig {
  version: number;
  /** The YAML as pushed (re-parsed by readers, so overlays keep their line numbers). */
  text: string;
  /** The validated config as JSON: the Discord function reads its policy from it, no YAML parser. */
  json: unknown;
  file: string;
  by: string;
  at: string;
}

type Kv = Pick<RunStore, 'kvGet' | 'kvPut'>;

export async function activeConfig(kv: Pick<RunStore, 'kvGet'>): Promise<StoredConfig | undefined> {
  return (await kv.kvGet<StoredConfig>(CONFIG_VERSION_GROUP, ACTIVE_KEY))?.value;
}

/** Validate `text` and store it as the next version. Throws ConfigError when it is invalid. */
export async function pushConfig(
  kv: Kv,
  text: string,
  opts: { file: string; by: string; now?: Date },
): Promise<StoredConfig> {
  const { config } = parseConfigSource(text, opts.file);
  for (let attempt = 0; attempt < 5; attempt++) {
    const current = await kv.kvGet<StoredConfig>(CONFIG_VERSION_GROUP, ACTIVE_KEY);
    const version = (current?.value.version ?? 0) + 1;
    const stored: StoredConfig = {
      version,
      text,
      json: JSON.parse(JSON.stringify(config)) as unknown,
      file: opts.file,
      by: opts.by,
      at: (opts.now ?? new Date()).toISOString(),
    };
    if (!(await kv.kvPut(CONFIG_VERSION_GROUP, versionKey(version), stored, { expectedVersion: 0 })))
      continue;
    if (
      await kv.kvPut(CONFIG_VERSION_GROUP, ACTIVE_KEY, stored, {
        expectedVersion: current?.version ?? 0,
      })
    )
      return stored;
  }
  throw new ContentionError('config push: lost the race for a version number five times; try again');
}
