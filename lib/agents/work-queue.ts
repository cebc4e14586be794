import type { SwitchyardConfig } from '../routing/config.ts';
import type { RunStore } from '../store/port.ts';
import { WorkContentionError } from './errors.ts';

/**
 * The agents' work queue, in the store's KV (group `work`), so it survives restarts and is shared
 * by every worker.
 *
 * - Waiting items are keyed `q#<inverted priority>#<createdAt>#<id>`: a `kvList` over the prefix
 *   returns them highest priority first, FIFO within a priority.
 * - ONE slot record (`slots`) lists the running items. The counts per agent and per repository
 *   are derived from it, so a claim that respects both limits is a single conditional write
 *   (`kvPut` with `expectedVersion`): of several workers claiming at once, exactly one wins each
 *   version and the others re-read and try again. No transaction across items is needed, and a
 *   crash between writes cannot leave a counter off by one.
 * - After a winning claim, the claimed items' queue keys are deleted. A crash in between leaves a
 *   queue key for an item that is already running; the next scan sees that and deletes it.
 *
 * Limits: the slot record holds every running item (~300 bytes each), which caps concurrent agent
 * work at about a thousand items per table. That is far beyond what one hub runs.
 */

export const WORK_GROUP = 'work';
const SLOTS_KEY = 'slots';
const QUEUE_PREFIX = 'q#';
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

interface SlotsRecord {
  running: Record<string, RunningItem>;
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
  /** At most this many items run at once on one repository (across agents). */
  repoLimit?: number;
  /** The current concurrency limit of an agent (from the registry); the item's own limit otherwise. */
  limitOf?: (agent: string) => number | undefined;
  now?: () => Date;
  /** Conditional-write attempts before giving up with a retryable WorkContentionError. */
  maxAttempts?: number;
}

export const DEFAULT_REPO_LIMIT = 4;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class AgentWorkQueue {
  private readonly repoLimit: number;
  private readonly limitOf: (agent: string) => number | undefined;
  private readonly now: () => Date;
  private readonly maxAttempts: number;

  constructor(
    readonly store: RunStore,
    opts: WorkQueueOptions = {},
  ) {
    this.repoLimit = opts.repoLimit ?? DEFAULT_REPO_LIMIT;
    this.limitOf = opts.limitOf ?? (() => undefined);
    this.now = opts.now ?? (() => new Date());
    this.maxAttempts = opts.maxAttempts ?? 25;
  }

  private async backoff(attempt: number): Promise<void> {
    // Jittered, growing: contending workers spread out instead of colliding again in lockstep.
    await sleep(Math.round(Math.random() * Math.min(200, 5 * 2 ** Math.min(attempt, 6))));
  }

  private async slots(): Promise<{ running: Record<string, RunningItem>; version: number }> {
    const item = await this.store.kvGet<SlotsRecord>(WORK_GROUP, SLOTS_KEY);
    return { running: { ...(item?.value.running ?? {}) }, version: item?.version ?? 0 };
  }

  /** Put an item in the queue. Idempotent: an item already queued or running is left as it is. */
  async enqueue(item: WorkItem): Promise<'queued' | 'running'> {
    const { running } = await this.slots();
    if (running[item.id]) return 'running';
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
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const slots = await this.slots();
      const waiting = await this.store.kvList<WorkItem>(WORK_GROUP, {
        prefix: QUEUE_PREFIX,
        limit: SCAN_LIMIT,
      });
      const byAgent = new Map<string, number>();
      const byRepo = new Map<string, number>();
      for (const r of Object.values(slots.running)) {
        byAgent.set(r.agent, (byAgent.get(r.agent) ?? 0) + 1);
        byRepo.set(r.repo, (byRepo.get(r.repo) ?? 0) + 1);
      }
      const admitted: RunningItem[] = [];
      const staleKeys: string[] = [];
      const at = this.now().toISOString();
      for (const { key, value: item } of waiting) {
        if (slots.running[item.id]) {
          staleKeys.push(key); // admitted earlier; its queue key outlived a crash
          continue;
        }
        const limit = this.limitOf(item.agent) ?? item.limit;
        if ((byAgent.get(item.agent) ?? 0) >= limit) continue;
        if ((byRepo.get(item.repo) ?? 0) >= this.repoLimit) continue;
        const running: RunningItem = { ...item, admittedAt: at };
        slots.running[item.id] = running;
        admitted.push(running);
        staleKeys.push(key);
        byAgent.set(item.agent, (byAgent.get(item.agent) ?? 0) + 1);
        byRepo.set(item.repo, (byRepo.get(item.repo) ?? 0) + 1);
      }
      if (admitted.length === 0) {
        await this.deleteKeys(staleKeys);
        return [];
      }
      const won = await this.store.kvPut<SlotsRecord>(
        WORK_GROUP,
        SLOTS_KEY,
        { running: slots.running },
        { expectedVersion: slots.version },
      );
      if (!won) {
        await this.backoff(attempt);
        continue;
      }
      await this.deleteKeys(staleKeys);
      return admitted;
    }
    throw new WorkContentionError('work queue: too much contention on the slot record');
  }

  private async deleteKeys(keys: string[]): Promise<void> {
    await Promise.all(keys.map((k) => this.store.kvDelete(WORK_GROUP, k)));
  }

  /** Whether the item holds a slot. */
  async isRunning(id: string): Promise<boolean> {
    return (await this.slots()).running[id] !== undefined;
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
      const slots = await this.slots();
      const entry = slots.running[id];
      if (!entry) return undefined;
      delete slots.running[id];
      const won = await this.store.kvPut<SlotsRecord>(
        WORK_GROUP,
        SLOTS_KEY,
        { running: slots.running },
        { expectedVersion: slots.version },
      );
      if (won) return entry;
      await this.backoff(attempt);
    }
    throw new WorkContentionError(`work queue: could not release ${id}`);
  }

  /** Everything queued and running, for status pages and the sweeper. */
  async snapshot(): Promise<{ running: RunningItem[]; waiting: WorkItem[] }> {
    const [slots, waiting] = await Promise.all([
      this.slots(),
      this.store.kvList<WorkItem>(WORK_GROUP, { prefix: QUEUE_PREFIX, limit: SCAN_LIMIT }),
    ]);
    const waitingItems = waiting.map((w) => w.value).filter((w) => !slots.running[w.id]);
    const running = Object.values(slots.running).sort((a, b) => a.admittedAt.localeCompare(b.admittedAt));
    return { running, waiting: waitingItems };
  }

  /** Running items per agent. */
  async runningByAgent(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const r of Object.values((await this.slots()).running))
      counts.set(r.agent, (counts.get(r.agent) ?? 0) + 1);
    return counts;
  }

  // ------------------------------------------------------------------- dispatch records

  async getDispatch(runId: string): Promise<{ value: DispatchRecord; version: number } | undefined> {
    const item = await this.store.kvGet<DispatchRecord>(WORK_GROUP, `${DISPATCH_PREFIX}${runId}`);
    return item ? { value: item.value, version: item.version } : undefined;
  }

  async putDispatch(record: DispatchRecord): Promise<void> {
    await this.store.kvPut(WORK_GROUP, `${DISPATCH_PREFIX}${record.runId}`, record, {
      ttl: this.ttl(30),
    });
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
