import type { KvPort } from './binding.ts';

const JOURNAL_GROUP = 'discord-journal';
const JOURNAL_TTL_SECONDS = 30 * 86_400;

/**
 * Remember the results of a run's Discord side effects across retries of its node. The engine's
 * `effect` journal is per step slot, and a retry is a new slot; a second thread or a second
 * summary message would be visible to people, so these are journaled per run instead.
 */
export function runJournal(kv: KvPort, runId: string, nowMs: () => number = Date.now) {
  return async function once<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const key = `${runId}:${name}`;
    const done = await kv.kvGet<{ result: T }>(JOURNAL_GROUP, key);
    if (done) return done.value.result;
    const result = await fn();
    // Only one worker holds the step's lease, so a lost race here is a crash replay: keep the first.
    await kv.kvPut(
      JOURNAL_GROUP,
      key,
      { result },
      { expectedVersion: 0, ttl: Math.floor(nowMs() / 1000) + JOURNAL_TTL_SECONDS },
    );
    return result;
  };
}
