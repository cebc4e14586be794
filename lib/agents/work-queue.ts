import type { RunStore } from '../engine/ports.ts';
import { ConcurrencyError } from '../engine/store-errors.ts';
import type { SwitchyardConfig } from '../routing/config.ts';
import { WorkContentionError } from './errors.ts';

/**
 * The agents' work queue, in the store's KV (group `work`), so it survives restarts and is shared
 * by every worker.
 *
 * - Waiting items are keyed `q#<inverted priority>#<createdAt>#<id>`: a `kvList` over the prefix
 *   returns them highest priority first, FIFO within a priority.
 * - A running item has its own record `r#<id>`, and two counters hold the number running per
 *   agent (`c#a#<agent>`) and per repository (`c#r#<repo>`, lower-cased).
 * - Admitting one item is ONE transaction (`kvTransact`): create its running record (must not
 *   exist: exactly once), delete its queue key (must exist: it was not withdrawn or admitted by
 *   someone else), and add 1 to both counters, each only while below its limit. Releasing is the
 *   reverse transaction. The counters therefore always equal the running records, a crash cannot
 *   leave them off by one, and there is no shared record that every worker re-reads and rewrites:
 *   of several workers admitting at once, each transaction either admits an item or tells the
 *   worker why not (taken, full), so nobody retries a whole pass. (Before, one `slots` record held
 *   every running item, and ~100 concurrent runs spent tens of seconds in its conditional-write
 *   retries.)
 * - A crash between an enqueue's "is it running?" check and its queue write can leave a queue key
 *   for an item that is already running; admission finds its running record and deletes the key.
 */

export const WORK_GROUP = 'work';
const QUEUE_PREFIX = 'q#';
const RUNNING_PREFIX = 'r#';
const AGENT_COUNT_PREFIX = 'c#a#';
const REPO_COUNT_PREFIX = 'c#r#';
const DISPATCH_PREFIX = 'd#';
const PARKED_PREFIX = 'p#';
const CLAIM_PREFIX = 'x#';
const WORKFLOW_RUN_PREFIX = 'w#';

export const MAX_PRIORITY = 999_999;
/** How far down the queue one admission pass looks. */
const SCAN_LIMIT = 500;
const DAY_S = 86_400;

/** A unit of agent work: one attempt at one task (or one consultation) of one run. */
export interface WorkItem {
  /** `<runId>.<taskId>.<try>`: unique, and never contains `#`. */
  id: string;
  runId: string;
  agent: string;
  agentType: string;
  /** The repository the agent works on (its per-repository limit applies). */
  repo: string;
  priority: number;
  /** ISO instant that orders items of equal priority (a retry keeps its task's first time). */
  createdAt: string;
  /** The agent's concurrency limit when the item was queued (the registry's current limit wins). */
  limit: number;
  task?: string;
  title?: string;
  purpose?: 'task' | 'consult';
}

export interface RunningItem extends WorkItem {
  admittedAt: string;
}

/** What was sent to an agent for a run's current item (one per run; overwritten by the next item). */
export interface DispatchRecord {
  runId: string;
  item: string;
  correlation: string;
  agent: string;
  executor: string;
  /** `dispatching` is written before the executor is called, so a fast reply can find the run. */
  state: 'dispatching' | 'dispatched' | 'finished';
  repo?: string;
  workflow?: string;
  ref?: string;
  url?: string;
  dryRun?: boolean;
  startedAt: string;
  dispatchedAt?: string;
  expiresAt: string;
  workflowRunId?: number;
  workflowRunUrl?: string;
  finishedAt?: string;
}

/** An agent's answer to a work item, as the hub delivers it to the item's run. */
export interface AgentResult {
  runId: string;
  item: string;
  correlation: string;
  ok: boolean;
  /** Who answered (the agent, `github-actions`, ...). */
  by: string;
  payload: Record<string, unknown>;
}

/** A result that arrived while its run was still mid-step; it is delivered once the run waits. */
export interface ParkedResult extends AgentResult {
  at: string;
}

export function queueKey(item: Pick<WorkItem, 'priority' | 'createdAt' | 'id'>): string {
  const p = Math.max(-MAX_PRIORITY, Math.min(MAX_PRIORITY, Math.round(item.priority)));
  // 0 … 1_999_998: seven digits sort as numbers, and a higher priority sorts first.
  const inverted = String(MAX_PRIORITY - p).padStart(7, '0');
  return `${QUEUE_PREFIX}${inverted}#${item.createdAt}#${item.id}`;
}

export interface WorkQueueOptions {
  /**
   * At most this many items run at once on one repository (across agents); a function is read at
   * each admission (config `workQueue.repoConcurrency` of the active config version).
   */
  repoLimit?: number | (() => number);
  /** The current concurrency limit of an agent (from the registry); the item's own limit otherwise. */
  limitOf?: (agent: string) => number | undefined;
  now?: () => Date;
  /** Attempts at a release whose transaction keeps conflicting, before a retryable WorkContentionError. */
  maxAttempts?: number;
}

export const DEFAULT_REPO_LIMIT = 4;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class AgentWorkQueue {
  private readonly repoLimitOf: () => number;
  private readonly limitOf: (agent: string) => number | undefined;
  private readonly now: () => Date;
  private readonly maxAttempts: number;

  constructor(
    readonly store: RunStore,
    opts: WorkQueueOptions = {},
  ) {
    const repoLimit = opts.repoLimit ?? DEFAULT_REPO_LIMIT;
    this.repoLimitOf = typeof repoLimit === 'function' ? repoLimit : () => repoLimit;
    this.limitOf = opts.limitOf ?? (() => undefined);
    this.now = opts.now ?? (() => new Date());
    this.maxAttempts = opts.maxAttempts ?? 10;
  }

  private get repoLimit(): number {
    return this.repoLimitOf();
  }

  private async backoff(attempt: number): Promise<void> {
    // Jittered, growing: contending workers spread out instead of colliding again in lockstep.
    await sleep(Math.round(Math.random() * Math.min(200, 5 * 2 ** Math.min(attempt, 6))));
  }

  private agentCounter(agent: string): string {
    return `${AGENT_COUNT_PREFIX}${agent}`;
  }

  private repoCounter(repo: string): string {
    // GitHub names are case-insensitive: `Acme/Widget` and `acme/widget` share one limit.
    return `${REPO_COUNT_PREFIX}${repo.toLowerCase()}`;
  }

  private async count(key: string): Promise<number> {
    const v = (await this.store.kvGet<number>(WORK_GROUP, key))?.value;
    return typeof v === 'number' ? v : 0;
  }

  /** Put an item in the queue. Idempotent: an item already queued or running is left as it is. */
  async enqueue(item: WorkItem): Promise<'queued' | 'running'> {
    if (await this.isRunning(item.id)) return 'running';
    // Same key, same value: a repeated enqueue (a re-run step) writes the same item again.
    await this.store.kvPut(WORK_GROUP, queueKey(item), item);
    return 'queued';
  }

  /**
   * Admit waiting items, in priority order, while their agent and their repository have free
   * slots. Returns the items this call admitted (another worker's admissions are theirs to
   * announce). Safe to call from any number of workers at once.
   */
  async admit(): Promise<RunningItem[]> {
    const waiting = await this.store.kvList<WorkItem>(WORK_GROUP, {
      prefix: QUEUE_PREFIX,
      limit: SCAN_LIMIT,
    });
    if (waiting.length === 0) return [];
    // The counters as they are now, so that items of a full agent or repository cost no write.
    // They are only a hint: each admission's transaction checks the limits itself.
    const counts = new Map<string, number>();
    const keys = new Set<string>();
    for (const { value: item } of waiting) {
      keys.add(this.agentCounter(item.agent));
      keys.add(this.repoCounter(item.repo));
    }
    await Promise.all([...keys].map(async (k) => counts.set(k, await this.count(k))));

    // The plan: what fits by those counts, in queue order (priority, then FIFO). Everything in it
    // may run now, so the order of the admissions inside it does not matter; each worker starts
    // at its own random place in it, so that a burst of workers admitting at once mostly admit
    // different items instead of all racing for the queue's head. An item whose agent or
    // repository filled meanwhile fails its transaction and is skipped.
    const plan: Array<{ key: string; item: WorkItem; limit: number }> = [];
    const planned = new Map(counts);
    for (const { key, value: item } of waiting) {
      const agentKey = this.agentCounter(item.agent);
      const repoKey = this.repoCounter(item.repo);
      const limit = this.limitOf(item.agent) ?? item.limit;
      if ((planned.get(agentKey) ?? 0) >= limit) continue;
      if ((planned.get(repoKey) ?? 0) >= this.repoLimit) continue;
      planned.set(agentKey, (planned.get(agentKey) ?? 0) + 1);
      planned.set(repoKey, (planned.get(repoKey) ?? 0) + 1);
      plan.push({ key, item, limit });
    }
    const start = Math.floor(Math.random() * plan.length);
    const admitted: RunningItem[] = [];
    const full = new Set<string>();
    for (let n = 0; n < plan.length; n++) {
      const { key, item, limit } = plan[(start + n) % plan.length]!;
      const agentKey = this.agentCounter(item.agent);
      const repoKey = this.repoCounter(item.repo);
      if (full.has(agentKey) || full.has(repoKey)) continue;
      const running: RunningItem = { ...item, admittedAt: this.now().toISOString() };
      let out: Awaited<ReturnType<RunStore['kvTransact']>>;
      try {
        out = await this.store.kvTransact([
          {
            op: 'put',
            group: WORK_GROUP,
            key: `${RUNNING_PREFIX}${item.id}`,
            value: running,
            expectedVersion: 0,
          },
          { op: 'delete', group: WORK_GROUP, key, mustExist: true },
          { op: 'add', group: WORK_GROUP, key: agentKey, by: 1, below: limit },
          { op: 'add', group: WORK_GROUP, key: repoKey, by: 1, below: this.repoLimit },
        ]);
      } catch (err) {
        // Other workers' admissions keep conflicting with ours: they are walking the same plan,
        // so leave the rest to them (and to the next pump) rather than fail the caller's step.
        if (err instanceof ConcurrencyError) break;
        throw err;
      }
      if (out.ok) {
        admitted.push(running);
        continue;
      }
      // Nothing was written. Learn why, so the rest of the pass skips what cannot fit.
      if (out.failed.includes(0)) await this.store.kvDelete(WORK_GROUP, key); // already running
      if (out.failed.includes(2)) full.add(agentKey);
      if (out.failed.includes(3)) full.add(repoKey);
      // Index 1 alone: withdrawn, or admitted by another worker just now.
    }
    // Queue order among what this call admitted (the caller wakes them in this order).
    admitted.sort((a, b) => queueKey(a).localeCompare(queueKey(b)));
    return admitted;
  }

  private async deleteKeys(keys: string[]): Promise<void> {
    await Promise.all(keys.map((k) => this.store.kvDelete(WORK_GROUP, k)));
  }

  /** Whether the item holds a slot. */
  async isRunning(id: string): Promise<boolean> {
    return (await this.store.kvGet(WORK_GROUP, `${RUNNING_PREFIX}${id}`)) !== undefined;
  }

  /**
   * Take an item out of the queue and free its slot (done, failed, timed out, or its run ended).
   * Idempotent. Returns the running entry that was released, if it held a slot.
   */
  async release(id: string): Promise<RunningItem | undefined> {
    const waiting = await this.store.kvList<WorkItem>(WORK_GROUP, {
      prefix: QUEUE_PREFIX,
      limit: SCAN_LIMIT,
    });
    await this.deleteKeys(waiting.filter((w) => w.value.id === id).map((w) => w.key));
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const entry = (await this.store.kvGet<RunningItem>(WORK_GROUP, `${RUNNING_PREFIX}${id}`))?.value;
      if (!entry) return undefined;
      try {
        const out = await this.store.kvTransact([
          { op: 'delete', group: WORK_GROUP, key: `${RUNNING_PREFIX}${id}`, mustExist: true },
          { op: 'add', group: WORK_GROUP, key: this.agentCounter(entry.agent), by: -1 },
          { op: 'add', group: WORK_GROUP, key: this.repoCounter(entry.repo), by: -1 },
        ]);
        // Not ok: another worker released it first.
        return out.ok ? entry : undefined;
      } catch (err) {
        if (!(err instanceof ConcurrencyError)) throw err;
        await this.backoff(attempt);
      }
    }
    throw new WorkContentionError(`work queue: could not release ${id}`);
  }

  /** Everything queued and running, for status pages and the sweeper. */
  async snapshot(): Promise<{ running: RunningItem[]; waiting: WorkItem[] }> {
    const [runningItems, waiting] = await Promise.all([
      this.store.kvList<RunningItem>(WORK_GROUP, { prefix: RUNNING_PREFIX }),
      this.store.kvList<WorkItem>(WORK_GROUP, { prefix: QUEUE_PREFIX, limit: SCAN_LIMIT }),
    ]);
    const ids = new Set(runningItems.map((r) => r.value.id));
    const waitingItems = waiting.map((w) => w.value).filter((w) => !ids.has(w.id));
    const running = runningItems.map((r) => r.value).sort((a, b) => a.admittedAt.localeCompare(b.admittedAt));
    return { running, waiting: waitingItems };
  }

  /** Running items per agent (from the counters: one small read). */
  async runningByAgent(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const c of await this.store.kvList<number>(WORK_GROUP, { prefix: AGENT_COUNT_PREFIX }))
      if (typeof c.value === 'number' && c.value > 0)
        counts.set(c.key.slice(AGENT_COUNT_PREFIX.length), c.value);
    return counts;
  }

  // ------------------------------------------------------------------- dispatch records

  async getDispatch(runId: string): Promise<{ value: DispatchRecord; version: number } | undefined> {
    const item = await this.store.kvGet<DispatchRecord>(WORK_GROUP, `${DISPATCH_PREFIX}${runId}`);
    return item ? { value: item.value, version: item.version } : undefined;
  }

  /**
   * Record a run's new item before it is dispatched. A record for the same item is kept as it is:
   * it was written by an earlier attempt of a retried step, which may already have dispatched
   * (the effect journal then replays that dispatch), so its `startedAt` is the time the agent's
   * work can date from. Overwriting it with a later time made a completion of that dispatch look
   * older than its dispatch, and it was ignored; overwriting its state lost a linked workflow run.
   */
  async putDispatch(record: DispatchRecord): Promise<void> {
    const key = `${DISPATCH_PREFIX}${record.runId}`;
    const prior = await this.store.kvGet<DispatchRecord>(WORK_GROUP, key);
    if (prior?.value.item === record.item) return;
    // Conditional on what we read: a concurrent attempt at the same item (a lease takeover) that
    // wrote first keeps its record.
    const written = await this.store.kvPut(WORK_GROUP, key, record, {
      expectedVersion: prior?.version ?? 0,
      ttl: this.ttl(30),
    });
    if (!written) {
      const now = await this.store.kvGet<DispatchRecord>(WORK_GROUP, key);
      if (now?.value.item !== record.item)
        throw new WorkContentionError(`work queue: the dispatch record of ${record.runId} changed meanwhile`);
    }
  }

  /** Conditional read-modify-write of a run's dispatch record; `change` returns undefined to leave it. */
  async updateDispatch(
    runId: string,
    change: (current: DispatchRecord) => DispatchRecord | undefined,
  ): Promise<DispatchRecord | undefined> {
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const cur = await this.getDispatch(runId);
      if (!cur) return undefined;
      const next = change(cur.value);
      if (!next) return cur.value;
      const ok = await this.store.kvPut(WORK_GROUP, `${DISPATCH_PREFIX}${runId}`, next, {
        expectedVersion: cur.version,
        ttl: this.ttl(30),
      });
      if (ok) return next;
      await this.backoff(attempt);
    }
    throw new WorkContentionError(`work queue: could not update the dispatch record of ${runId}`);
  }

  /**
   * Bind a GitHub workflow run to the work item it was first matched to. Returns the binding in
   * force: ours, or the earlier one (then the workflow run belongs to another item).
   */
  async bindWorkflowRun(
    workflowRunId: number,
    runId: string,
    item: string,
  ): Promise<{ runId: string; item: string }> {
    const key = `${WORKFLOW_RUN_PREFIX}${workflowRunId}`;
    // Read first: every later event of the workflow run (in progress, completed, the callback)
    // finds the binding, and a read costs a fifth of the write DynamoDB bills even when refused.
    const bound = await this.store.kvGet<{ runId: string; item: string }>(WORK_GROUP, key);
    if (bound) return bound.value;
    if (await this.store.kvPut(WORK_GROUP, key, { runId, item }, { expectedVersion: 0, ttl: this.ttl(30) }))
      return { runId, item };
    const existing = await this.store.kvGet<{ runId: string; item: string }>(WORK_GROUP, key);
    return existing?.value ?? { runId, item };
  }

  // -------------------------------------------------------------------- parked results

  /** Keep a result for a run that is mid-step. False if one is already parked for this correlation. */
  async park(result: ParkedResult): Promise<boolean> {
    return this.store.kvPut(WORK_GROUP, `${PARKED_PREFIX}${result.correlation}`, result, {
      expectedVersion: 0,
      ttl: this.ttl(7),
    });
  }

  async parked(correlation: string): Promise<ParkedResult | undefined> {
    return (await this.store.kvGet<ParkedResult>(WORK_GROUP, `${PARKED_PREFIX}${correlation}`))?.value;
  }

  async unpark(correlation: string): Promise<void> {
    await this.store.kvDelete(WORK_GROUP, `${PARKED_PREFIX}${correlation}`);
  }

  /** A once-only claim (e.g. "cancel this run's workflow run"): true for the first caller only. */
  async claimOnce(key: string, days = 30): Promise<boolean> {
    return this.store.kvPut(
      WORK_GROUP,
      `${CLAIM_PREFIX}${key}`,
      { at: this.now().toISOString() },
      { expectedVersion: 0, ttl: this.ttl(days) },
    );
  }

  async unclaim(key: string): Promise<void> {
    await this.store.kvDelete(WORK_GROUP, `${CLAIM_PREFIX}${key}`);
  }

  private ttl(days: number): number {
    return Math.floor(this.now().getTime() / 1000) + days * DAY_S;
  }
}

// ----------------------------------------------------------------------------- workloads

export interface AgentWorkload {
  name: string;
  type: string;
  running: number;
  limit: number;
  queued: number;
  items: Array<{
    id: string;
    runId: string;
    repo: string;
    task?: string;
    title?: string;
    purpose?: string;
    since: string;
  }>;
}

/** A type (not an interface) so it fits `RunsApiDeps.workloads` (`Record<string, unknown>`). */
export type Workloads = {
  queue: { depth: number; byAgent: Record<string, number> };
  agents: AgentWorkload[];
};

/**
 * Agent availability and workloads, for `GET /runs` and Discord `/status`: the queue depth (per
 * agent) and what each agent is doing. With `config`, idle agents are listed too.
 */
export async function workloads(store: RunStore, config?: SwitchyardConfig): Promise<Workloads> {
  const { running, waiting } = await new AgentWorkQueue(store).snapshot();
  const byAgent: Record<string, number> = {};
  for (const w of waiting) byAgent[w.agent] = (byAgent[w.agent] ?? 0) + 1;
  const agents = new Map<string, AgentWorkload>();
  const entry = (name: string, type: string, limit: number): AgentWorkload => {
    let a = agents.get(name);
    if (!a) {
      a = { name, type, running: 0, limit, queued: byAgent[name] ?? 0, items: [] };
      agents.set(name, a);
    }
    return a;
  };
  for (const [name, a] of Object.entries(config?.agents ?? {})) entry(name, a.type, a.concurrency);
  for (const r of running) {
    const a = entry(r.agent, r.agentType, config?.agents[r.agent]?.concurrency ?? r.limit);
    a.running++;
    a.items.push({
      id: r.id,
      runId: r.runId,
      repo: r.repo,
      ...(r.task !== undefined ? { task: r.task } : {}),
      ...(r.title !== undefined ? { title: r.title } : {}),
      ...(r.purpose !== undefined ? { purpose: r.purpose } : {}),
      since: r.admittedAt,
    });
  }
  for (const w of waiting) entry(w.agent, w.agentType, config?.agents[w.agent]?.concurrency ?? w.limit);
  return {
    queue: { depth: waiting.length, byAgent },
    agents: [...agents.values()].sort((a, b) => a.name.localeCompare(b.name)),
  };
}

/** Workloads as a few lines of text (Discord `/status`). */
export function formatWorkloads(w: Workloads): string {
  const lines = [`Agent queue: ${w.queue.depth} waiting`];
  for (const a of w.agents) {
    const doing = a.items.map((i) => `${i.runId}${i.task ? `/${i.task}` : ''}`).join(', ');
    lines.push(
      `• ${a.name} (${a.type}): ${a.running}/${a.limit} running${a.queued ? `, ${a.queued} queued` : ''}${doing ? ` — ${doing}` : ''}`,
    );
  }
  return lines.join('\n');
}
