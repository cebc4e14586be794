import { configRefreshMs } from '../common/config-refresh.ts';
import { logger } from '../common/observability.ts';
import type { RunStore } from '../engine/ports.ts';
import type { GitHubClient } from '../github/client.ts';
import {
  type ConfigSource,
  overlayConfig,
  parseConfigSource,
  readSource,
  type SwitchyardConfig,
} from './config.ts';
import { activeConfig } from './config-versions.ts';
import { ConfigError } from './errors.ts';

/**
 * Per-repository config: `.github/switchyard.yml` read from the default branch (Probot's
 * `context.config()` habit), overlaid on the central config.
 *
 * Caching, in two layers: the store's KV (group `config`) shared by every Lambda, and process
 * memory. A KV entry is *fresh* for `repoConfig.ttlSeconds`; after that the worker refetches it,
 * but the webhook request keeps using the stale entry (it never calls the API). Entries live a
 * week, so ingress only lacks a repository's overlay when the repository has been quiet that long.
 */

export const CONFIG_GROUP = 'config';
const KV_TTL_SECONDS = 7 * 86_400;
const repoKey = (repo: string) => `repo#${repo}`;
/** Short, so a config the worker has just fetched is seen at ingress soon after. */
const MISS_TTL_MS = 10_000;

interface CachedRepoConfig {
  /** The file's text, or null when the repository has none. */
  text: string | null;
  fetchedAt: string;
  file: string;
}

export interface RepoConfigResult {
  config: SwitchyardConfig;
  /** `repo` when an overlay applied. */
  origin: 'central' | 'repo';
  /** The repository's overlay is known (cached or fetched), even if it is absent. */
  known: boolean;
  fetched: boolean;
  file?: string;
  /** The overlay was refused (file, line, reason); the central config applies. */
  error?: ConfigError;
}

interface MemoryEntry {
  loadedAt: number;
  cached: CachedRepoConfig;
  result: RepoConfigResult;
}

export class ConfigProvider {
  /** The active central config: the newest pushed version (npm run config:push), else the bundled file. */
  central: SwitchyardConfig;
  centralSource: ConfigSource;
  private readonly bundled: { config: SwitchyardConfig; source: ConfigSource };
  /** The pushed version in use (0: the bundled file), and when the table was last read for it. */
  centralVersion = 0;
  private centralCheckedAt = Number.NEGATIVE_INFINITY;
  private readonly store: RunStore;
  private readonly now: () => Date;
  private readonly memoryTtlMs: number;
  private readonly refreshMs: number;
  private readonly memory = new Map<string, MemoryEntry>();
  /** Repositories with nothing in KV, and since when: spares busy quiet repos a read per delivery. */
  private readonly misses = new Map<string, number>();

  constructor(opts: {
    central: { config: SwitchyardConfig; source: ConfigSource };
    store: RunStore;
    now?: () => Date;
    /** How long a process trusts its own copy before re-reading KV (default 60 s). */
    memoryTtlMs?: number;
    /**
     * How often the active central version is re-read (default `configRefreshMs()`: env
     * SWITCHYARD_CONFIG_REFRESH_SECONDS, else 60 s).
     */
    refreshMs?: number;
  }) {
    this.central = opts.central.config;
    this.centralSource = opts.central.source;
    this.bundled = opts.central;
    this.store = opts.store;
    this.now = opts.now ?? (() => new Date());
    this.memoryTtlMs = opts.memoryTtlMs ?? 60_000;
    this.refreshMs = opts.refreshMs ?? configRefreshMs();
  }

  /**
   * Pick up a pushed central config at most `refreshMs` (60 s) after it was pushed: one KV read
   * per process per interval. A stored version that no longer validates (a schema change since)
   * is logged and the bundled file applies.
   */
  async refreshCentral(): Promise<void> {
    const at = this.now().getTime();
    if (at - this.centralCheckedAt < this.refreshMs) return;
    this.centralCheckedAt = at;
    const stored = await activeConfig(this.store);
    const version = stored?.version ?? 0;
    if (version === this.centralVersion) return;
    let next = this.bundled;
    if (stored) {
      try {
        next = parseConfigSource(stored.text, `${stored.file} (version ${stored.version})`);
      } catch (err) {
        logger.error('central config version refused, using the bundled file', {
          version,
          error: (err as Error).message,
        });
      }
    }
    this.central = next.config;
    this.centralSource = next.source;
    this.centralVersion = version;
    this.memory.clear();
  }

  private get enabled(): boolean {
    return this.central.repoConfig.enabled;
  }

  private fresh(cached: CachedRepoConfig): boolean {
    return this.now().getTime() - Date.parse(cached.fetchedAt) < this.central.repoConfig.ttlSeconds * 1000;
  }

  private resolve(repo: string, cached: CachedRepoConfig, fetched: boolean): RepoConfigResult {
    const base = { known: true, fetched, file: cached.file };
    if (cached.text === null || cached.text.trim() === '')
      return { ...base, config: this.central, origin: 'central' };
    const file = `${repo}:${cached.file}`;
    try {
      return {
        ...base,
        config: overlayConfig(this.centralSource, readSource(cached.text, file)),
        origin: 'repo',
      };
    } catch (err) {
      const error =
        err instanceof ConfigError
          ? err
          : new ConfigError({
              file,
              issues: [{ file, line: 0, column: 0, path: [], message: (err as Error).message }],
              cause: err,
            });
      return { ...base, config: this.central, origin: 'central', error };
    }
  }

  private remember(repo: string, cached: CachedRepoConfig, fetched: boolean): RepoConfigResult {
    this.misses.delete(repo);
    const result = this.resolve(repo, cached, fetched);
    this.memory.set(repo, { loadedAt: this.now().getTime(), cached, result: { ...result, fetched: false } });
    return result;
  }

  /** Ingress: memory, then KV (stale entries included); never the API. */
  async cached(repo: string | undefined): Promise<RepoConfigResult> {
    await this.refreshCentral();
    if (!repo || !this.enabled)
      return { config: this.central, origin: 'central', known: true, fetched: false };
    const mem = this.memory.get(repo);
    if (mem && this.now().getTime() - mem.loadedAt < this.memoryTtlMs) return mem.result;
    const miss = this.misses.get(repo);
    if (miss !== undefined && this.now().getTime() - miss < MISS_TTL_MS) {
      return { config: this.central, origin: 'central', known: false, fetched: false };
    }
    const item = await this.store.kvGet<CachedRepoConfig>(CONFIG_GROUP, repoKey(repo));
    if (!item) {
      this.misses.set(repo, this.now().getTime());
      return { config: this.central, origin: 'central', known: false, fetched: false };
    }
    this.misses.delete(repo);
    if (mem && mem.cached.fetchedAt === item.value.fetchedAt) {
      mem.loadedAt = this.now().getTime();
      return mem.result;
    }
    return this.remember(repo, item.value, false);
  }

  /** Worker: the cached overlay while fresh, else fetched from the default branch through `client`. */
  async forRepo(
    repo: string | undefined,
    client: GitHubClient,
    opts: { refresh?: boolean } = {},
  ): Promise<RepoConfigResult> {
    await this.refreshCentral();
    if (!repo || !this.enabled)
      return { config: this.central, origin: 'central', known: true, fetched: false };
    if (!opts.refresh) {
      const item = await this.store.kvGet<CachedRepoConfig>(CONFIG_GROUP, repoKey(repo));
      if (item && this.fresh(item.value)) {
        const mem = this.memory.get(repo);
        if (mem && mem.cached.fetchedAt === item.value.fetchedAt) return mem.result;
        return this.remember(repo, item.value, false);
      }
    }
    const file = this.central.repoConfig.path;
    const text = await client.getFileText(repo, file);
    if (text === undefined) {
      // Dry-run: nothing fetched. Use what the cache has, else the central config.
      return this.cached(repo);
    }
    const cached: CachedRepoConfig = { text, fetchedAt: this.now().toISOString(), file };
    await this.store.kvPut(CONFIG_GROUP, repoKey(repo), cached, {
      ttl: Math.floor(this.now().getTime() / 1000) + KV_TTL_SECONDS,
    });
    return this.remember(repo, cached, true);
  }

  /**
   * A push changed the file: mark the cached overlay stale so the next worker refetches it. The
   * old text stays usable at ingress until then (better than no overlay at all).
   */
  async invalidate(repo: string): Promise<void> {
    this.memory.delete(repo);
    const item = await this.store.kvGet<CachedRepoConfig>(CONFIG_GROUP, repoKey(repo));
    if (!item) return;
    await this.store.kvPut(
      CONFIG_GROUP,
      repoKey(repo),
      { ...item.value, fetchedAt: new Date(0).toISOString() },
      {
        expectedVersion: item.version,
        ttl: Math.floor(this.now().getTime() / 1000) + KV_TTL_SECONDS,
      },
    );
  }
}
