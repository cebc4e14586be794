import type { RunStore } from '../engine/ports.ts';
import { ConcurrencyError } from '../engine/store-errors.ts';
import type { SwitchyardConfig } from '../routing/config.ts';
import { WorkContentionError } from './errors.ts';

/**
 * The agents' work queue, in the store's KV (group `work`), so it survives restarts and is shared
 * by every worker.
 *
 * - Each item has a queue record keyed `q#<inverted priority>#<createdAt>#<id>`: a `kvList` over
 *   the prefix returns them highest priority first, FIFO within a priority. The record stays while
 *   the item runs (it is what status pages show of it) and goes when the item is released.
 * - What runs is ONE small record (`n#running`, `kvJoin`/`kvLeave`/`kvMembers`): the running item
 *   ids, in one set per agent (`a:<agent>`) and one per repository (`r:<repo>`, lower-cased), with
 *   each item's admission time. Admitting an item is one conditional single-item write: join both
 *   sets, only if the item is in neither and each holds fewer than its limit. DynamoDB applies the
 *   writes to one item one after another, each judged by its condition, so the limits hold exactly
 *   under any number of workers, with nothing read first and nothing retried; a refused admission
 *   is a full set or an item someone else admitted. Releasing is the reverse write. Running equals
 *   "in the sets" by construction: no counter can drift from the running records in a crash.
 * - Cost (why not the transaction it replaced): an admission was a 4-item transaction (running
 *   record, queue delete, two counters: 8 WRU) and a release a 3-item one (6 WRU). Now an admission
 *   is 1 WRU and a release 2 (the set write and the queue record's delete) while the sets are under
 *   1 KB (about eight running items; each adds ~110 bytes, so 64 running items bill 7 WRU a write).
 *   The old `slots` record (every running item in one versioned record, read-modify-write) is not
 *   back: nothing here is read to be rewritten, so concurrent admissions never conflict.
 * - Withdrawal: releasing a waiting item deletes its queue record, then leaves the sets if it got
 *   in. An admission joins the sets, then checks (one strongly consistent read) that the queue
 *   record is still there, and leaves again if not. Whichever order those four steps interleave in,
 *   a withdrawn item does not keep a slot. A crash between the two steps of either leaves an item
 *   running without its queue record: the sweeper's reconcile releases it when its run has ended or
 *   moved on (snapshot lists it), as it does for a crash between an admission and its wake-up.
 */

export const WORK_GROUP = 'work';
const QUEUE_PREFIX = 'q#';
/** The running items' sets (see above). */
export const RUNNING_KEY = 'n#running';
const AGENT_SET = 'a:';
const REPO_SET = 'r:';
/**
 * The layout before the running sets (issue 13): a running record `r#<id>` per admitted item and
 * counters `c#…`. An item admitted by a worker of the previous version is adopted into the sets by
 * the sweeper (`adoptLegacy`), so it counts against the limits and is released as any other.
 */
const LEGACY_RUNNING_PREFIX = 'r#';
const LEGACY_COUNTER_PREFIX = 'c#';
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
  /** The rest of what the executor answered (executors/types.ts `DispatchOutcome.details`). */
  status?: number;
  runUrl?: string;
  runDetails?: 'returned' | 'absent' | 'refused' | 'dry-run';
  finishedAt?: string;
  /**
   * The workflow runs of this run's earlier items, newest first (at most `EARLIER_RUNS`), carried
   * over by `putDispatch` when the next item replaces the record. A workflow run GitHub returned
   * at dispatch is named by the record alone (no binding of its own): once the record moves on,
   * this list is what makes a late event or token of that run stale for the new item.
   */
  earlier?: number[];
  /**
   * The lease version of the execute step whose attempt claimed the dispatch (`putDispatch`'s
   * `claim`): the record is the dispatch effect's claim as well as its journal.
   */
  claimVersion?: number;
}

/** How many earlier items' workflow runs a dispatch record remembers (older ones are stale by date). */
export const EARLIER_RUNS = 8;

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
  /** Attempts at a dispatch-record update that keeps conflicting, before a retryable WorkContentionError. */
  maxAttempts?: number;
}

export const DEFAULT_REPO_LIMIT = 4;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The running sets as read: who runs (with the admission time), and who is in each set. */
interface Running {
  members: Record<string, string>;
  sets: Record<string, string[]>;
}

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

  private agentSet(agent: string): string {
    return `${AGENT_SET}${agent}`;
  }

  private repoSet(repo: string): string {
    // GitHub names are case-insensitive: `Acme/Widget` and `acme/widget` share one limit.
    return `${REPO_SET}${repo.toLowerCase()}`;
  }

  private running(): Promise<Running> {
    return this.store.kvMembers(WORK_GROUP, RUNNING_KEY);
  }

  /** Put an item in the queue. Idempotent: an item already queued or running is left as it is. */
  async enqueue(item: WorkItem): Promise<'queued' | 'running'> {
    if (await this.isRunning(item.id)) return 'running';
    // Same key, same value: a repeated enqueue (a re-run step) writes the same item again.
    await this.store.kvPut(WORK_GROUP, queueKey(item), item);
    return 'queued';
  }

  /**
   * Enqueue an item, admitting it at once when it is what an admission pass would admit now and
   * nothing else would: `enqueue` then `admit` for this item, for fewer writes. 'running': it holds
   * a slot (admitted now or before). 'queued': it waits, or other items may be admitted too (the
   * caller's pump admits them, in queue order, with it). Idempotent like `enqueue`.
   *
   * Admitted at once, the item has no queue record: its running record (the sets' note) carries it,
   * and it costs one write to admit and one to release, where the queue's way costs four. Only
   * while the running record stays within 1 KB (a write bills whole KBs of the item, so a bigger
   * note would cost every later admission); beyond, the item goes through the queue.
   */
  async offer(item: WorkItem): Promise<'queued' | 'running'> {
    const [running, listed] = await Promise.all([
      this.running(),
      this.store.kvList<WorkItem>(WORK_GROUP, { prefix: QUEUE_PREFIX, limit: SCAN_LIMIT }),
    ]);
    if (item.id in running.members) return 'running';
    const key = queueKey(item);
    const queued = listed.some((w) => w.value.id === item.id);
    const waiting = queued
      ? listed
      : [...listed, { key, value: item }].sort((a, b) => a.key.localeCompare(b.key));
    const plan = this.plan(this.waiting(waiting, running), running);
    if (!queued && plan.length === 1 && plan[0]!.item.id === item.id) {
      const note = this.note(item);
      const sets = [this.agentSet(item.agent), this.repoSet(item.repo)];
      if (recordBytes(running) + memberBytes(item.id, note, sets, running) <= 1024) {
        const joined = await this.store.kvJoin(
          WORK_GROUP,
          RUNNING_KEY,
          item.id,
          [
            { name: sets[0]!, below: plan[0]!.limit },
            { name: sets[1]!, below: this.repoLimit },
          ],
          note,
        );
        // Refused: a set filled meanwhile (then it waits), or another attempt of the same step
        // admitted it.
        if (joined || (await this.isRunning(item.id))) return 'running';
      }
    }
    // Same key, same value: a record already there (a re-run step) need not be written again.
    if (!listed.some((w) => w.key === key)) await this.store.kvPut(WORK_GROUP, key, item);
    return 'queued';
  }

  /**
   * Pass the slot of `previous` (an item of the same run that just ended) to `item`, in one write,
   * when that is what releasing `previous` and offering `item` would come to: `previous` holds a
   * slot and has no queue record, `item` is neither queued nor running, and with `previous`'s slot
   * free an admission pass would admit `item` and nothing else. A release and an admission are two
   * writes (and their reads); the slot passing is one (`kvSwap`), refused if a running set changed
   * since the read, so the limits hold as they do for `kvJoin`. 'running': `item` holds the slot
   * now and `previous` none. Undefined: nothing was written; release `previous`, then offer `item`.
   */
  async handOver(previous: string, item: WorkItem): Promise<'running' | undefined> {
    const [running, listed] = await Promise.all([
      this.running(),
      this.store.kvList<WorkItem>(WORK_GROUP, { prefix: QUEUE_PREFIX, limit: SCAN_LIMIT }),
    ]);
    if (!(previous in running.members) || item.id in running.members) return undefined;
    if (listed.some((w) => w.value.id === previous || w.value.id === item.id)) return undefined;
    const { [previous]: _gone, ...members } = running.members;
    const freed: Running = {
      members,
      sets: Object.fromEntries(
        Object.entries(running.sets)
          .map(([name, ids]) => [name, ids.filter((id) => id !== previous)] as const)
          .filter(([, ids]) => ids.length > 0),
      ),
    };
    const key = queueKey(item);
    const waiting = [...this.waiting(listed, freed), { key, value: item }].sort((a, b) =>
      a.key.localeCompare(b.key),
    );
    const plan = this.plan(waiting, freed);
    if (plan.length !== 1 || plan[0]!.item.id !== item.id) return undefined;
    const note = this.note(item);
    const joins = [this.agentSet(item.agent), this.repoSet(item.repo)];
    if (recordBytes(freed) + memberBytes(item.id, note, joins, freed) > 1024) return undefined;
    const names = new Set([
      ...Object.keys(running.sets).filter((n) => running.sets[n]!.includes(previous)),
      ...joins,
    ]);
    const swapped = await this.store.kvSwap(WORK_GROUP, RUNNING_KEY, {
      from: previous,
      to: item.id,
      note,
      sets: [...names].map((name) => ({
        name,
        was: running.sets[name] ?? [],
        now: [...(freed.sets[name] ?? []), ...(joins.includes(name) ? [item.id] : [])].sort(),
      })),
    });
    return swapped ? 'running' : undefined;
  }

  /** What the running record keeps of an item admitted without a queue record: its admission time and details. */
  private note(item: WorkItem): string {
    const { id: _id, runId: _run, agent: _agent, ...rest } = item;
    return JSON.stringify({ at: this.now().toISOString(), item: rest });
  }

  /** The listed queue records of items that wait (not running), one per item, in queue order. */
  private waiting(
    listed: Array<{ key: string; value: WorkItem }>,
    running: Running,
  ): Array<{ key: string; value: WorkItem }> {
    // Running items keep their queue record; a second record of the same item (queued again at
    // another priority) is not a second item.
    const seen = new Set<string>();
    return listed.filter(({ value: item }) => {
      if (item.id in running.members || seen.has(item.id)) return false;
      seen.add(item.id);
      return true;
    });
  }

  /**
   * What fits by the sets as read, in queue order (priority, then FIFO). The sets are only a hint,
   * so that items of a full agent or repository cost no write: each admission's write checks the
   * limits itself.
   */
  private plan(
    waiting: Array<{ key: string; value: WorkItem }>,
    running: Running,
  ): Array<{ key: string; item: WorkItem; limit: number }> {
    const size = (set: string) => running.sets[set]?.length ?? 0;
    const plan: Array<{ key: string; item: WorkItem; limit: number }> = [];
    const planned = new Map<string, number>();
    for (const { key, value: item } of waiting) {
      const agentSet = this.agentSet(item.agent);
      const repoSet = this.repoSet(item.repo);
      const limit = this.limitOf(item.agent) ?? item.limit;
      const inAgent = planned.get(agentSet) ?? size(agentSet);
      const inRepo = planned.get(repoSet) ?? size(repoSet);
      if (inAgent >= limit || inRepo >= this.repoLimit) continue;
      planned.set(agentSet, inAgent + 1);
      planned.set(repoSet, inRepo + 1);
      plan.push({ key, item, limit });
    }
    return plan;
  }

  /**
   * Admit waiting items, in priority order, while their agent and their repository have free
   * slots. Returns the items this call admitted (another worker's admissions are theirs to
   * announce). Safe to call from any number of workers at once.
   */
  async admit(): Promise<RunningItem[]> {
    const listed = await this.store.kvList<WorkItem>(WORK_GROUP, {
      prefix: QUEUE_PREFIX,
      limit: SCAN_LIMIT,
    });
    if (listed.length === 0) return [];
    let running = await this.running();
    const waiting = this.waiting(listed, running);
    if (waiting.length === 0) return [];
    // Everything in the plan may run now, so the order of the admissions inside it does not
    // matter; each worker starts at its own random place in it, so that a burst of workers
    // admitting at once mostly admit different items instead of all racing for the queue's head.
    const plan = this.plan(waiting, running);
    const size = (set: string) => running.sets[set]?.length ?? 0;
    const start = Math.floor(Math.random() * plan.length);
    const admitted: RunningItem[] = [];
    for (let n = 0; n < plan.length; n++) {
      const { key, item, limit } = plan[(start + n) % plan.length]!;
      const agentSet = this.agentSet(item.agent);
      const repoSet = this.repoSet(item.repo);
      if (item.id in running.members) continue;
      if (size(agentSet) >= limit || size(repoSet) >= this.repoLimit) continue;
      const admittedAt = this.now().toISOString();
      const joined = await this.store.kvJoin(
        WORK_GROUP,
        RUNNING_KEY,
        item.id,
        [
          { name: agentSet, below: limit },
          { name: repoSet, below: this.repoLimit },
        ],
        admittedAt,
      );
      if (!joined) {
        // Refused: another worker admitted it, or a set filled meanwhile. Look again (a read is a
        // fifth of a write), so the rest of the pass skips what cannot fit.
        running = await this.running();
        continue;
      }
      running.members[item.id] = admittedAt;
      for (const set of [agentSet, repoSet]) running.sets[set] = [...(running.sets[set] ?? []), item.id];
      // Withdrawn meanwhile (released while we admitted it)? Then it must not keep the slot.
      if (!(await this.store.kvGet(WORK_GROUP, key))) {
        await this.store.kvLeave(WORK_GROUP, RUNNING_KEY, item.id, [agentSet, repoSet]);
        running = await this.running();
        continue;
      }
      admitted.push({ ...item, admittedAt });
    }
    // Queue order among what this call admitted (the caller wakes them in this order).
    admitted.sort((a, b) => queueKey(a).localeCompare(queueKey(b)));
    return admitted;
  }

  /** Whether the item holds a slot. */
  async isRunning(id: string): Promise<boolean> {
    return id in (await this.running()).members;
  }

  /**
   * Take an item out of the queue and free its slot (done, failed, timed out, or its run ended).
   * Idempotent. Returns the running entry that was released, if it held a slot.
   */
  async release(id: string): Promise<RunningItem | undefined> {
    const listed = await this.store.kvList<WorkItem>(WORK_GROUP, {
      prefix: QUEUE_PREFIX,
      limit: SCAN_LIMIT,
    });
    const mine = listed.filter((w) => w.value.id === id);
    // The queue record first, then the slot: an admission that joins in between finds the record
    // gone and leaves again (see the module comment).
    await Promise.all(mine.map((w) => this.store.kvDelete(WORK_GROUP, w.key)));
    const running = await this.running();
    if (!(id in running.members)) {
      // Not in the sets: it may hold a slot under the previous layout, not adopted yet. Its old
      // running record goes, so `adoptLegacy` never adopts an item that ended (an adoption that
      // joined after the read above finds the record gone and leaves again). Only here: a delete
      // of an absent item is billed a write unit, and an item in the sets has no old record left
      // (adopting it deleted that, or it never had one).
      await this.store.kvDelete(WORK_GROUP, `${LEGACY_RUNNING_PREFIX}${id}`);
      return undefined;
    }
    const sets = Object.keys(running.sets).filter((s) => running.sets[s]!.includes(id));
    // Refused: another worker released it first.
    if (!(await this.store.kvLeave(WORK_GROUP, RUNNING_KEY, id, sets))) return undefined;
    return this.entry(id, running, mine[0]?.value);
  }

  /**
   * A running item: from its note (admitted at once by `offer`), or its queue record, or (that
   * record lost in a crash) from the sets alone.
   */
  private entry(id: string, running: Running, record?: WorkItem): RunningItem {
    const note = running.members[id] ?? '';
    let admittedAt = note;
    let carried: Omit<WorkItem, 'id' | 'runId' | 'agent'> | undefined;
    if (note.startsWith('{')) {
      const parsed = JSON.parse(note) as { at: string; item: Omit<WorkItem, 'id' | 'runId' | 'agent'> };
      admittedAt = parsed.at;
      carried = parsed.item;
    }
    const name = (prefix: string) =>
      Object.keys(running.sets)
        .find((s) => s.startsWith(prefix) && running.sets[s]!.includes(id))
        ?.slice(prefix.length) ?? '';
    const agent = record?.agent ?? name(AGENT_SET);
    const runId = id.split('.')[0]!;
    if (record) return { ...record, admittedAt };
    if (carried) return { id, runId, agent, ...carried, admittedAt };
    return {
      id,
      runId,
      agent,
      agentType: agent,
      repo: name(REPO_SET),
      priority: 0,
      createdAt: admittedAt,
      limit: 0,
      admittedAt,
    };
  }

  /**
   * Adopt items admitted under the previous layout (`r#<id>` running records), once after a deploy
   * (the sweeper calls it on every pass; with nothing left it is one empty Query). Each joins the
   * running sets without a limit check (it holds its slot already), carrying its details in its
   * note as an item `offer` admitted; then its old record is deleted, conditional on being the one
   * read. A release that deleted the record first (the item ended meanwhile) makes that delete
   * fail, and the join is undone. The old counters go in the pass that adopts the old records.
   * Returns how many were adopted.
   */
  async adoptLegacy(): Promise<number> {
    const legacy = await this.store.kvList<RunningItem>(WORK_GROUP, { prefix: LEGACY_RUNNING_PREFIX });
    let adopted = 0;
    for (const { key, value, version } of legacy) {
      const { id, runId: _run, agent, admittedAt, ...rest } = value;
      const sets = [this.agentSet(agent), this.repoSet(value.repo)];
      const joined = await this.store.kvJoin(
        WORK_GROUP,
        RUNNING_KEY,
        id,
        sets.map((name) => ({ name })),
        JSON.stringify({ at: admittedAt, item: rest }),
      );
      if (await this.store.kvDelete(WORK_GROUP, key, { expectedVersion: version })) {
        if (joined) adopted++;
      } else if (joined) {
        await this.store.kvLeave(WORK_GROUP, RUNNING_KEY, id, sets);
      }
    }
    if (legacy.length > 0) {
      const counters = await this.store.kvList(WORK_GROUP, { prefix: LEGACY_COUNTER_PREFIX });
      await Promise.all(counters.map((c) => this.store.kvDelete(WORK_GROUP, c.key)));
    }
    return adopted;
  }

  /** Everything queued and running, for status pages and the sweeper. */
  async snapshot(): Promise<{ running: RunningItem[]; waiting: WorkItem[] }> {
    const [running, listed] = await Promise.all([
      this.running(),
      this.store.kvList<WorkItem>(WORK_GROUP, { prefix: QUEUE_PREFIX, limit: SCAN_LIMIT }),
    ]);
    const records = new Map<string, WorkItem>();
    for (const { value } of listed) if (!records.has(value.id)) records.set(value.id, value);
    const waiting = [...records.values()].filter((w) => !(w.id in running.members));
    const runningItems = Object.entries(running.members)
      .map(([id]) => this.entry(id, running, records.get(id)))
      .sort((a, b) => a.admittedAt.localeCompare(b.admittedAt));
    return { running: runningItems, waiting };
  }

  /** Running items per agent (from the agents' sets: one small read). */
  async runningByAgent(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const [set, ids] of Object.entries((await this.running()).sets))
      if (set.startsWith(AGENT_SET) && ids.length > 0) counts.set(set.slice(AGENT_SET.length), ids.length);
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
  async putDispatch(
    fresh: DispatchRecord,
    /**
     * Claim the dispatch for the execute step leased at this version (the dispatch effect's claim,
     * lib/engine/effects.ts `EffectOptions.claim`): the record is written with it. This item's
     * record found still `dispatching` was claimed by an earlier attempt that never recorded the
     * dispatch: taken over when that attempt's lease was older (`interrupted`), refused with a
     * ConcurrencyError when it was later. Another item's record claimed by a later lease is never
     * replaced (ConcurrencyError): the run has gone on past this step.
     */
    claim?: { version: number },
  ): Promise<{ value: DispatchRecord; version: number; interrupted?: boolean } | undefined> {
    const key = `${DISPATCH_PREFIX}${fresh.runId}`;
    // The record this one replaces was written when the previous item was dispatched, well before
    // this item's turn: an eventually consistent read finds it (at half the read units). One that
    // missed a newer write makes the conditional put below refused, and is then read strongly;
    // this item's own record (a retried step's) is only trusted from a strong read.
    for (const consistent of [false, true]) {
      const prior = await this.store.kvGet<DispatchRecord>(WORK_GROUP, key, { consistent });
      if (prior?.value.item === fresh.item) {
        if (!consistent) continue;
        return claim
          ? this.takeClaim(key, prior, claim.version)
          : { value: prior.value, version: prior.version };
      }
      // Another item's record claimed under a later lease: the run went on to that item after this
      // step's lease (a worker that stalled past it, and was taken over). Its record stays; this
      // stale step must not replace it (the later item's answers would then look stale).
      if (claim && (prior?.value.claimVersion ?? 0) > claim.version)
        throw new ConcurrencyError(
          `dispatch of ${fresh.item} refused: the record names ${prior!.value.item}, claimed by a later lease (version ${prior!.value.claimVersion}, ours ${claim.version})`,
          { runId: fresh.runId },
        );
      const earlier = earlierRuns(prior?.value);
      const record: DispatchRecord = {
        ...fresh,
        ...(earlier.length > 0 ? { earlier } : {}),
        ...(claim ? { claimVersion: claim.version } : {}),
      };
      // Conditional on what we read: a concurrent attempt at the same item (a lease takeover) that
      // wrote first keeps its record.
      const version = prior?.version ?? 0;
      const written = await this.store.kvPut(WORK_GROUP, key, record, {
        expectedVersion: version,
        ttl: this.ttl(30),
      });
      if (written) return { value: record, version: version + 1 };
    }
    const now = await this.store.kvGet<DispatchRecord>(WORK_GROUP, key);
    if (now?.value.item !== fresh.item)
      throw new WorkContentionError(`work queue: the dispatch record of ${fresh.runId} changed meanwhile`);
    return claim ? this.takeClaim(key, now, claim.version) : { value: now.value, version: now.version };
  }

  /**
   * The dispatch claimed by the attempt leased at `version`, from its item's record as read: kept
   * when it is done (dispatched or finished) or already this attempt's, taken over from an older
   * lease's attempt that never recorded it (one conditional write), refused when a later lease's
   * attempt holds it.
   */
  private async takeClaim(
    key: string,
    found: { value: DispatchRecord; version: number },
    version: number,
  ): Promise<{ value: DispatchRecord; version: number; interrupted?: boolean }> {
    let cur = found;
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const held = cur.value.claimVersion ?? 0;
      if (cur.value.state !== 'dispatching' || held === version)
        return { value: cur.value, version: cur.version };
      if (held > version)
        throw new ConcurrencyError(
          `dispatch of ${cur.value.item} claimed by a later lease (version ${held}, ours ${version})`,
          { runId: cur.value.runId },
        );
      const taken = { ...cur.value, claimVersion: version };
      if (await this.store.kvPut(WORK_GROUP, key, taken, { expectedVersion: cur.version, ttl: this.ttl(30) }))
        return { value: taken, version: cur.version + 1, interrupted: true };
      const now = await this.store.kvGet<DispatchRecord>(WORK_GROUP, key);
      if (now?.value.item !== cur.value.item)
        throw new WorkContentionError(
          `work queue: the dispatch record of ${cur.value.runId} changed meanwhile`,
        );
      cur = { value: now.value, version: now.version };
    }
    throw new WorkContentionError(`work queue: could not claim the dispatch of ${found.value.item}`);
  }

  /**
   * Conditional read-modify-write of a run's dispatch record; `change` returns undefined to leave
   * it. `known`: the record as the caller just read or wrote it, tried first instead of a read (if
   * it moved on since, the write is refused and the record read as usual).
   */
  async updateDispatch(
    runId: string,
    change: (current: DispatchRecord) => DispatchRecord | undefined,
    known?: { value: DispatchRecord; version: number },
  ): Promise<DispatchRecord | undefined> {
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const fromKnown = attempt === 0 && known !== undefined;
      const cur = fromKnown ? known : await this.getDispatch(runId);
      if (!cur) return undefined;
      const next = change(cur.value);
      // "No change" judged on what the caller knew may be out of date: judge the record as it is.
      if (!next && fromKnown) continue;
      if (!next) return cur.value;
      const ok = await this.store.kvPut(WORK_GROUP, `${DISPATCH_PREFIX}${runId}`, next, {
        expectedVersion: cur.version,
        ttl: this.ttl(30),
      });
      if (ok) return next;
      if (!fromKnown) await this.backoff(attempt);
    }
    throw new WorkContentionError(`work queue: could not update the dispatch record of ${runId}`);
  }

  /**
   * Bind a GitHub workflow run to the work item it was first matched to. Returns the binding in
   * force: ours, or the earlier one (then the workflow run belongs to another item).
   *
   * Only for a workflow run the dispatch did not name: one GitHub returned at dispatch
   * (return_run_details) is named by the dispatch record, and by its `earlier` list once the
   * record moves on to the next item, so it needs no binding of its own.
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

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

/** The workflow runs a record replacing `prior` remembers: prior's own, then what prior remembered. */
function earlierRuns(prior: DispatchRecord | undefined): number[] {
  if (!prior) return [];
  const own = prior.workflowRunId === undefined ? [] : [prior.workflowRunId];
  return [...own, ...(prior.earlier ?? [])].slice(0, EARLIER_RUNS);
}

/** The running record's size as DynamoDB bills it, about: attribute names and values, keys. */
function recordBytes(running: Running): number {
  let n = 60; // pk, sk
  for (const [id, note] of Object.entries(running.members)) n += 2 + bytes(id) + bytes(note);
  for (const [set, ids] of Object.entries(running.sets))
    n += 2 + bytes(set) + ids.reduce((sum, id) => sum + bytes(id), 0);
  return n;
}

/** What one more member adds to the running record (a set new to it adds its name too). */
function memberBytes(id: string, note: string, sets: string[], running: Running): number {
  return (
    2 +
    bytes(id) +
    bytes(note) +
    sets.reduce((n, s) => n + bytes(id) + (running.sets[s] ? 0 : 2 + bytes(s)), 0)
  );
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
