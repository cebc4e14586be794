import { randomUUID } from 'node:crypto';
import type { RunStore } from './ports.ts';

/**
 * The kill switch: a pause, global or for one repository, kept as a KV item so every function
 * sees it on its next read (no cache: a pause must bite at once). While paused no new run starts
 * (Engine.startRun refuses) and no agent is dispatched (the execute node keeps its task queued
 * and the sweeper retries it); runs already waiting stay where they are.
 */
export const PAUSE_GROUP = 'pause';
/** The same audit log the Discord function writes its refusals to. */
export const PAUSE_AUDIT_GROUP = 'audit';
const AUDIT_TTL_SECONDS = 90 * 86_400;

export type PauseKv = Pick<RunStore, 'kvGet' | 'kvPut' | 'kvDelete' | 'kvList'>;

export interface PauseRecord {
  /** `global`, or the repository as owner/name. */
  scope: string;
  by: string;
  at: string;
}

const keyOf = (repo: string | undefined) => (repo ? `repo#${repo.toLowerCase()}` : 'global');

/**
 * Up to this many pauses are read in one Query of the group (one read unit: there are usually
 * none, and a pause is a few dozen bytes) instead of a read of each of the two that may apply.
 */
const FEW_PAUSES = 8;

/** The pause that applies to `repo` (the global one first), or undefined. */
export async function pausedFor(kv: PauseKv, repo: string | undefined): Promise<PauseRecord | undefined> {
  const few = await kv.kvList<PauseRecord>(PAUSE_GROUP, { limit: FEW_PAUSES + 1 });
  if (few.length <= FEW_PAUSES) {
    const own = repo ? keyOf(repo) : undefined;
    return (few.find((p) => p.key === 'global') ?? few.find((p) => p.key === own))?.value;
  }
  const [global, own] = await Promise.all([
    kv.kvGet<PauseRecord>(PAUSE_GROUP, 'global'),
    repo ? kv.kvGet<PauseRecord>(PAUSE_GROUP, keyOf(repo)) : Promise.resolve(undefined),
  ]);
  return global?.value ?? own?.value;
}

export async function listPauses(kv: PauseKv): Promise<PauseRecord[]> {
  return (await kv.kvList<PauseRecord>(PAUSE_GROUP)).map((i) => i.value);
}

export function describePause(p: PauseRecord): string {
  return `${p.scope === 'global' ? 'everything' : p.scope} is paused (by ${p.by} at ${p.at})`;
}

/** Write one audit record (KV group `audit`, 90 days). */
export async function auditPause(
  kv: PauseKv,
  type: string,
  detail: Record<string, unknown>,
  now: Date = new Date(),
): Promise<void> {
  const at = now.toISOString();
  await kv.kvPut(
    PAUSE_AUDIT_GROUP,
    `${at}#${type}#${randomUUID()}`,
    { at, type, ...detail },
    { ttl: Math.floor(now.getTime() / 1000) + AUDIT_TTL_SECONDS },
  );
}

/**
 * Pause or resume a scope (no repo: global). Audited either way; `changed` is false when the
 * scope was already in that state (still audited, so a repeated command is on record too).
 */
export async function setPaused(
  kv: PauseKv,
  opts: { paused: boolean; repo?: string; by: string; now?: Date },
): Promise<{ changed: boolean; scope: string }> {
  const now = opts.now ?? new Date();
  const scope = opts.repo ?? 'global';
  const key = keyOf(opts.repo);
  let changed: boolean;
  if (opts.paused) {
    const record: PauseRecord = { scope, by: opts.by, at: now.toISOString() };
    changed = await kv.kvPut(PAUSE_GROUP, key, record, { expectedVersion: 0 });
  } else {
    changed = (await kv.kvGet(PAUSE_GROUP, key)) !== undefined;
    if (changed) await kv.kvDelete(PAUSE_GROUP, key);
  }
  await auditPause(kv, opts.paused ? 'pause' : 'resume', { scope, by: opts.by, changed }, now);
  return { changed, scope };
}
