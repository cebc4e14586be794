import { ContentionError } from '../common/errors.ts';
import type { RunStore } from '../engine/ports.ts';
import { type GitHubClient, isSwitchyardAgentRun } from '../github/client.ts';
import type { CiSignal, NormalizedEvent } from '../github/events.ts';
import type { SwitchyardConfig } from './config.ts';

/**
 * The CI guard: new automation on a repository is blocked while CI on its default branch is red.
 *
 * It learns the state from `workflow_run` and `check_suite` deliveries (recorded in the webhook
 * request: one KV read and one conditional write), and the worker confirms a red or unknown state
 * through the API before blocking, which also lifts a red state whose green delivery was lost.
 *
 * State per repository is one KV item: the latest determinative result of each source (a
 * workflow, or a check-suite app) on the branch. Red while any source's latest result is red.
 * Updates are idempotent by content (a source's entry only moves forward in time), so a
 * redelivered or concurrently duplicated delivery changes nothing; the delivery id is also
 * remembered so a redelivery is answered without touching the state at all.
 */

export const GUARD_GROUP = 'guard';
export const DELIVERY_GROUP = 'github-delivery';
const DELIVERY_TTL_SECONDS = 7 * 86_400;
const ciKey = (repo: string) => `ci#${repo}`;
/** A delivery this recent may not be in the API's listing yet. */
const RACE_WINDOW_MS = 10 * 60_000;

export type CiState = 'green' | 'red' | 'unknown';

const RED = new Set(['failure', 'timed_out', 'startup_failure']);
const GREEN = new Set(['success']);
/** Results that say nothing about the branch's health (skipped, cancelled, neutral, stale, action_required). */
const isDeterminative = (conclusion: string | null): conclusion is string =>
  conclusion !== null && (RED.has(conclusion) || GREEN.has(conclusion));

/** GitHub Actions reports each workflow as its own check suite; workflow_run already covers those precisely. */
const SKIPPED_APPS = new Set(['app:github-actions']);

export interface CiSourceState {
  name: string;
  conclusion: string;
  at: string;
  url?: string;
  runId?: number;
  sha?: string;
  delivery?: string;
}

export interface CiRecord {
  repo: string;
  branch: string;
  sources: Record<string, CiSourceState>;
  updatedAt: string;
  /** When the API last confirmed the whole state (worker). */
  confirmedAt?: string;
}

export interface CiVerdict {
  state: CiState;
  branch?: string;
  failing: Array<CiSourceState & { source: string }>;
  confirmedAt?: string;
}

export function ciVerdict(record: CiRecord | undefined, config: SwitchyardConfig): CiVerdict {
  if (!record) return { state: 'unknown', failing: [] };
  const ignore = new Set(config.guards.ci.ignore);
  const counted = Object.entries(record.sources).filter(
    ([source, s]) => !ignore.has(s.name) && !ignore.has(source.replace(/^app:/, '')),
  );
  const failing = counted.filter(([, s]) => RED.has(s.conclusion)).map(([source, s]) => ({ source, ...s }));
  const state: CiState = failing.length > 0 ? 'red' : counted.length > 0 ? 'green' : 'unknown';
  return {
    state,
    branch: record.branch,
    failing,
    ...(record.confirmedAt ? { confirmedAt: record.confirmedAt } : {}),
  };
}

/** The branch the guard watches for a repository. */
export function guardBranch(config: SwitchyardConfig, defaultBranch: string | undefined): string | undefined {
  const b = config.guards.ci.branch;
  return b === 'default' ? defaultBranch : b;
}

export async function readCiRecord(store: RunStore, repo: string): Promise<CiRecord | undefined> {
  return (await store.kvGet<CiRecord>(GUARD_GROUP, ciKey(repo)))?.value;
}

/** Conditional read-modify-write of the guard record; retries a few times when another writer wins. */
async function updateRecord(
  store: RunStore,
  repo: string,
  change: (current: CiRecord | undefined) => CiRecord | undefined,
): Promise<'recorded' | 'unchanged'> {
  for (let attempt = 0; attempt < 8; attempt++) {
    const item = await store.kvGet<CiRecord>(GUARD_GROUP, ciKey(repo));
    const next = change(item?.value);
    if (!next) return 'unchanged';
    const ok = await store.kvPut(GUARD_GROUP, ciKey(repo), next, { expectedVersion: item?.version ?? 0 });
    if (ok) return 'recorded';
  }
  throw new ContentionError(`guard record for ${repo}: too much write contention`);
}

export type SignalOutcome = 'recorded' | 'unchanged' | 'duplicate' | 'ignored';

/** Whether a delivery carries a CI result the guard should look at (cheap, no I/O). */
export function isCiSignal(
  event: NormalizedEvent,
): event is NormalizedEvent & { ci: CiSignal; repo: NonNullable<NormalizedEvent['repo']> } {
  return (
    event.ci !== undefined &&
    event.repo !== undefined &&
    (event.name === 'workflow_run' || event.name === 'check_suite')
  );
}

/** Record a workflow_run / check_suite delivery in the guard state. Idempotent by delivery id and by content. */
export async function recordCiSignal(
  store: RunStore,
  event: NormalizedEvent,
  config: SwitchyardConfig,
  now: Date = new Date(),
): Promise<{ outcome: SignalOutcome; reason?: string }> {
  if (!isCiSignal(event) || !config.guards.ci.enabled)
    return { outcome: 'ignored', reason: 'guard off or not a CI result' };
  const ci = event.ci;
  const branch = guardBranch(config, event.repo.defaultBranch);
  if (ci.status !== 'completed') return { outcome: 'ignored', reason: `status ${ci.status}` };
  if (!branch || ci.branch !== branch)
    return { outcome: 'ignored', reason: `branch ${ci.branch ?? '(none)'} is not ${branch ?? 'known'}` };
  if (ci.trigger === 'pull_request' || ci.trigger === 'pull_request_target') {
    return { outcome: 'ignored', reason: 'a pull request run says nothing about the branch' };
  }
  if (!isDeterminative(ci.conclusion))
    return { outcome: 'ignored', reason: `conclusion ${ci.conclusion ?? 'none'}` };
  if (SKIPPED_APPS.has(ci.source)) return { outcome: 'ignored', reason: 'covered by workflow_run' };

  if (await store.kvGet(DELIVERY_GROUP, event.delivery)) return { outcome: 'duplicate' };
  const repo = event.repo.fullName;
  const entry: CiSourceState = {
    name: ci.name,
    conclusion: ci.conclusion,
    at: ci.at,
    delivery: event.delivery,
    ...(ci.url ? { url: ci.url } : {}),
    ...(ci.runId !== undefined ? { runId: ci.runId } : {}),
    ...(ci.sha ? { sha: ci.sha } : {}),
  };
  const outcome = await updateRecord(store, repo, (cur) => {
    const prev = cur?.branch === branch ? cur.sources[ci.source] : undefined;
    // Out-of-order or repeated delivery: an older (or the same) result never overwrites a newer one.
    if (prev && (prev.at > entry.at || (prev.at === entry.at && prev.conclusion === entry.conclusion)))
      return undefined;
    const sources = cur?.branch === branch ? { ...cur.sources } : {};
    sources[ci.source] = entry;
    return {
      repo,
      branch,
      sources,
      updatedAt: now.toISOString(),
      ...(cur?.confirmedAt ? { confirmedAt: cur.confirmedAt } : {}),
    };
  });
  await store.kvPut(
    DELIVERY_GROUP,
    event.delivery,
    { event: event.name, at: now.toISOString() },
    {
      ttl: Math.floor(now.getTime() / 1000) + DELIVERY_TTL_SECONDS,
    },
  );
  return { outcome };
}

/**
 * Ask GitHub for the branch's latest completed workflow runs and check suites, and replace the
 * recorded state with what it says. Returns the new record, or undefined when the API gave
 * nothing (dry-run): the caller then keeps what the deliveries said.
 */
export async function confirmCi(
  client: GitHubClient,
  store: RunStore,
  repo: string,
  branch: string,
  now: Date = new Date(),
): Promise<CiRecord | undefined> {
  const runs = await client.listWorkflowRuns(repo, { branch, status: 'completed', perPage: 100 });
  const suites = await client.listCheckSuites(repo, branch);
  if (runs === undefined && suites === undefined) return undefined;
  const sources: Record<string, CiSourceState> = {};
  const put = (source: string, s: CiSourceState) => {
    const prev = sources[source];
    if (!prev || prev.at < s.at) sources[source] = s;
  };
  for (const r of runs ?? []) {
    if (r.event === 'pull_request' || r.event === 'pull_request_target') continue;
    if (isSwitchyardAgentRun(r)) continue;
    if (r.head_branch !== branch || !isDeterminative(r.conclusion)) continue;
    put(`workflow:${r.workflow_id}`, {
      name: r.name ?? `workflow ${r.workflow_id}`,
      conclusion: r.conclusion,
      at: r.updated_at,
      runId: r.id,
      ...(r.html_url ? { url: r.html_url } : {}),
      ...(r.head_sha ? { sha: r.head_sha } : {}),
    });
  }
  for (const s of suites ?? []) {
    const slug = s.app?.slug ?? (s.app?.id !== undefined ? String(s.app.id) : undefined);
    if (!slug || SKIPPED_APPS.has(`app:${slug}`) || !isDeterminative(s.conclusion)) continue;
    put(`app:${slug}`, {
      name: s.app?.name ?? slug,
      conclusion: s.conclusion,
      at: s.updated_at ?? now.toISOString(),
      runId: s.id,
    });
  }
  const at = now.toISOString();
  const record: CiRecord = { repo, branch, sources, updatedAt: at, confirmedAt: at };
  await updateRecord(store, repo, (cur) => {
    // A delivery newer than what the API listed (it raced the listing) is kept; a source the
    // API no longer lists (deleted workflow, beyond the page) is dropped unless it is fresh.
    if (cur?.branch === branch) {
      const freshSince = new Date(now.getTime() - RACE_WINDOW_MS).toISOString();
      for (const [source, s] of Object.entries(cur.sources)) {
        const listed = record.sources[source];
        if (listed ? listed.at < s.at : s.at >= freshSince) record.sources[source] = s;
      }
    }
    return record;
  });
  return record;
}
