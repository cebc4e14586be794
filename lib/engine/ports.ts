import type { Lease, NewEvent, Run, RunEvent, RunStatus } from './types.ts';

/*
 * The ports the engine needs from storage, owned here where their user lives: lib/store/ holds
 * adapters that implement them, and nothing in lib/engine/ imports lib/store/ (test/engine/ports.test.ts).
 */

/** What a second start does while a run of the same workflow is active on the same subject. */
export type ConcurrencyPolicy = 'reject' | 'attach' | 'supersede';

export interface CreateRunInput {
  run: Run;
  events: NewEvent[];
  /** Delivery id or interaction id: the same key returns the existing run. */
  idempotencyKey?: string;
  /** Subject lock key (subject#workflow). Absent: no per-subject concurrency control. */
  lockKey?: string;
}

export type CreateRunResult =
  | { outcome: 'created'; run: Run }
  /** The idempotency key was seen before: this is the run it made (or attached to). */
  | { outcome: 'duplicate'; run: Run }
  /** Another run holds the subject lock. */
  | { outcome: 'locked'; activeRunId: string }
  /**
   * The idempotency key is reserved for a run id whose run was never written (its creation
   * stopped): create the run again under that id (`Run.id`), as the key's delivery asks.
   */
  | { outcome: 'reserved'; runId: string }
  /**
   * This run's id was abandoned before its run was written (its creation stalled past the lock's
   * grace, and another creation freed the lock): create it again under a new id.
   */
  | { outcome: 'abandoned' };

export interface CommitInput {
  /** The new state; its `version` must be above `expectedVersion` (one above, but for a fused commit: transitions.ts `fused`). */
  run: Run;
  expectedVersion: number;
  events: NewEvent[];
  /**
   * The subject lock this run held (terminal commits): free once the run is written, since the
   * lock of an ended run is free. A store may leave the lock's item for the next run that wants it
   * to take over (DynamoRunStore does: one write fewer per run).
   */
  releaseLock?: string;
  /** Take the subject lock for this run (a retried run becomes active again). */
  acquireLock?: string;
}

export interface ListRunsQuery {
  status?: RunStatus;
  repo?: string;
  subject?: string;
  limit?: number;
}

export interface ReportState {
  reported: number;
  claimUntil?: string;
  /** Who holds the live claim (a reporter checks it is still theirs before each outbound write). */
  claimOwner?: string;
  /** Reporters that failed for good on this run (a 404/410/422/403): they are not called again. */
  failedReporters?: string[];
  /**
   * What each reporter noted at the last completed report (by reporter name), written with the
   * completion itself, so a reporter need not keep a record of its own. Only as true as the
   * completion it came with: a claim taken after this read (`claimReport`'s `ifReported`), a
   * lapsed claim or a reopen means someone may have shown something else since.
   */
  notes?: ReportNotes;
  /**
   * The run is out of the active index (`retire`), which only a report of its final state does:
   * `reported` is then at least the run's version, though no completion was written for it (the
   * report of a succeeded or cancelled run completes by retiring it).
   */
  retired?: boolean;
}

/** A reporter's note per reporter name (small: it rides on the report item, under 1 KB in all). */
export type ReportNotes = Record<string, string>;

/** One page of the active index, oldest first; `cursor` is absent on the last page. */
export interface ActivePage {
  runs: Run[];
  cursor?: string;
}

/**
 * The step lease a journal write is conditional on: the run item is still at `version` (the leased
 * version: any cancel, signal or takeover bumps it), leased by `owner` until after `now`.
 */
export interface LeaseFence {
  version: number;
  owner: string;
  /** ISO instant: the lease must run past it. */
  now: string;
}

/** What claiming an effect found. */
export type EffectClaim = { outcome: 'claimed'; interrupted: boolean } | { outcome: 'done'; result: unknown };

/** A small keyed record for other modules (guards, tokens, caches, work items). */
export interface KvItem<T = unknown> {
  value: T;
  version: number;
  /** Epoch seconds. Expired items are never returned, even before DynamoDB TTL removes them. */
  ttl?: number;
}

export interface ListEventsOptions {
  /** At most this many events. */
  limit?: number;
  /** Only events after this seq (the last one a reader has). */
  after?: number;
  /**
   * The version of the run the caller has just read. A store that knows that version's events
   * lists them without reading the run again, events committed since left for a later read; one
   * that does not reads the run as it is now.
   */
  version?: number;
}

/**
 * Runs and their history: the engine's own record. Every write of a run is conditional on its
 * version; a state change and its events are written at once (one commit: both or neither).
 */
export interface RunLog {
  createRun(input: CreateRunInput): Promise<CreateRunResult>;
  /** Map an idempotency key to a run created earlier (used when a start attaches). */
  rememberKey(idempotencyKey: string, runId: string): Promise<string>;
  getRun(id: string): Promise<Run | null>;
  /** Conditional write of the new state plus its events, at once (both or neither). Throws ConcurrencyError. */
  commit(input: CommitInput): Promise<Run>;
  /** Conditional update of the run without history (leases, report marks). Throws ConcurrencyError. */
  update(run: Run, expectedVersion: number): Promise<Run>;
  /**
   * Lease step `seq` as a first try, of the run still at `version` (the version that scheduled it),
   * without reading the run first: the run one version on, `running` as of `at`, holding `lease`.
   * `leased: false` gives the run as the refused write found it, for the caller to judge as if
   * read (a takeover, a step under way or stale, a run moved on); null when there is no run.
   */
  leaseStep(
    runId: string,
    step: { seq: number; version: number; lease: Lease; at: string },
  ): Promise<{ run: Run; leased: boolean } | null>;
  /**
   * The run item this process wrote (or read) at `version`, encoded for a step message to carry
   * (`runFromCarried` reads it back): undefined when this process does not have that version, or
   * when it is over `maxBytes` encoded.
   */
  carriedRun(runId: string, version: number, maxBytes: number): string | undefined;
  /**
   * The run as a step message carried it (`carriedRun`): what `getRun` returns for that item,
   * with no read of the run item. It is the run as of the message's version, which may have moved
   * on since: a write conditional on that version finds out. Null when the encoding is not this
   * run's item (or has expired): the caller reads the run instead.
   */
  runFromCarried(runId: string, carried: string): Promise<Run | null>;
  /**
   * An audit event outside a state change (a refusal, a dry-run call): written after the run's
   * latest event without touching the run item, so it never races a step's commit.
   */
  appendEvent(runId: string, event: NewEvent): Promise<void>;
  /**
   * The run's events in order, as of one read of the run: none it had not committed then is
   * listed (a later read goes on from the last one listed without skipping any).
   */
  listEvents(runId: string, opts?: ListEventsOptions): Promise<RunEvent[]>;
  listRuns(query: ListRunsQuery): Promise<Run[]>;
  /** Runs not yet finished-and-reported (the sparse active index). Used by the sweeper. */
  listActive(limit?: number): Promise<Run[]>;
  /** The active index page by page, so a sweep reaches every run however many are active. */
  listActivePage(opts?: { limit?: number; cursor?: string }): Promise<ActivePage>;
  /** Take the run out of the active index once it is terminal and reported. */
  retire(run: Run): Promise<void>;
  /**
   * Put a retired run (at this version) back in the active index: the report that retired it may
   * have been covered by a late report of an older version, so its state is to be shown again.
   */
  unretire(run: Run): Promise<void>;
}

/** Which versions of a run were reported to GitHub/Discord, and who is reporting now. */
export interface ReportLedger {
  /** The highest run version reported to GitHub/Discord, and any live claim on reporting it. */
  getReportState(runId: string): Promise<ReportState>;
  /**
   * Claim the right to report `version` (only one reporter at a time, only forward). False if not
   * granted. With `ifReported`, granted only while the reported version is still that one and no
   * claim (live or lapsed) is on the item: the notes read with it still describe what is shown.
   */
  claimReport(
    runId: string,
    version: number,
    owner: string,
    until: string,
    now: string,
    opts?: { ifReported?: number },
  ): Promise<boolean>;
  /**
   * Mark `version` reported and drop the claim. False if the claim was no longer `owner`'s.
   * `notes` replace the stored notes (an empty map removes them). With `next`, the claim is not
   * dropped but moves on to the newer `next.version` until `next.until`, in the same write.
   * `unclaimed`: the report was claimed in the run's commit (Run.reporting), not here; it completes
   * only while the item is as read then: `unclaimed.reported` reported and no claim on it.
   */
  completeReport(
    runId: string,
    version: number,
    owner: string,
    opts?: {
      notes?: ReportNotes;
      next?: { version: number; until: string };
      unclaimed?: { reported: number };
    },
  ): Promise<boolean>;
  /**
   * A reporter that lost its claim mid-report may have overwritten a newer report: mark the
   * reported version back to `version` (only downwards), drop any claim and the notes, so the
   * latest state is reported again.
   */
  reopenReport(runId: string, version: number): Promise<void>;
  /** Remember that `reporter` failed for good on this run; it is skipped from now on. */
  markReporterFailed(runId: string, reporter: string): Promise<void>;
}

/**
 * Which side effect of a run a journal record is about (lib/engine/effects.ts). A 'step' effect
 * belongs to one step: its node and the sequence number of the step's FIRST attempt, which a
 * retry keeps, so a retried or taken-over step finds what an earlier attempt did. A 'run' effect
 * is shared by every step of the run (a Discord thread, an agent dispatch per work item). How a
 * ref becomes a storage key is the adapter's business (lib/store/schema.ts `effectKeys`).
 */
export type EffectRef =
  | { scope: 'step'; node: string; firstSeq: number; name: string }
  | { scope: 'run'; name: string };

/** The effect journal: exactly-once side effects, each claim fenced by the step's lease. */
export interface EffectLedger {
  /** The recorded result of a side effect, or undefined while it is not recorded (never done, or claimed and not finished). */
  getEffect(runId: string, effect: EffectRef): Promise<{ result: unknown } | undefined>;
  /**
   * Claim a side effect before doing it, fenced by the step's lease (`fence`): a claim only
   * replaces a pending claim of the same or an older lease, and the lease is checked once the
   * claim is in place, so a worker that lost its lease never goes on to act. Answers the recorded
   * result when the effect was done already; otherwise the claim is `claim`'s, and `interrupted`
   * says an earlier claim was never recorded (its worker may or may not have acted). Throws
   * ConcurrencyError when the lease is no longer the fence's.
   */
  claimEffect(runId: string, effect: EffectRef, fence: LeaseFence, claim: string): Promise<EffectClaim>;
  /**
   * Record the result of a claimed effect, conditional on the claim: throws ConcurrencyError when
   * the claim was taken (a takeover claims again). Not fenced by the lease: a worker that acted
   * records what it did as long as nobody took its claim over.
   */
  recordEffect(runId: string, effect: EffectRef, claim: string, result: unknown): Promise<void>;
  /**
   * Whether the run is still at the fence's version, leased by its owner past its `now`: the check
   * after a claim that a caller's own record made (effects.ts `EffectOptions.claim`).
   */
  leaseHolds(runId: string, fence: LeaseFence): Promise<boolean>;
}

/** One member of a KV item's sets for another (`KeyValueStore.kvSwap`). */
export interface KvSwap {
  from: string;
  to: string;
  /** `to`'s note. */
  note: string;
  /** Each set it touches: as read (empty: absent), and as it is to be. */
  sets: Array<{ name: string; was: string[]; now: string[] }>;
}

/** Small keyed records for other modules (guards, tokens, caches, work items), by group and key. */
export interface KeyValueStore {
  /**
   * Strongly consistent unless `consistent` is false: then at half the read units, and it may miss
   * a write of the last second or so (for a caller whose conditional write catches that).
   */
  kvGet<T>(group: string, key: string, opts?: { consistent?: boolean }): Promise<KvItem<T> | undefined>;
  /** Conditional put: `expectedVersion` 0 means "must not exist"; undefined means unconditional. False if the condition failed. */
  kvPut<T>(
    group: string,
    key: string,
    value: T,
    opts?: { expectedVersion?: number; ttl?: number },
  ): Promise<boolean>;
  /** Conditional delete (when `expectedVersion` is given). False if the condition failed. */
  kvDelete(group: string, key: string, opts?: { expectedVersion?: number }): Promise<boolean>;
  /** Items of one group in key order, optionally only keys starting with `prefix`. */
  kvList<T>(
    group: string,
    opts?: { limit?: number; prefix?: string },
  ): Promise<Array<{ key: string } & KvItem<T>>>;
  /**
   * Several KV writes as one atomic, all-or-nothing change (at most 25 writes, one per key). When
   * a condition failed nothing was written, and `failed` lists the indexes of the writes whose
   * condition failed. Throws ConcurrencyError when a concurrent transaction on the same keys kept
   * cancelling it (try again), ThrottledError when throttled.
   */
  kvTransact(writes: KvWrite[]): Promise<{ ok: true } | { ok: false; failed: number[] }>;
  /**
   * Bounded sets of members in ONE KV item (e.g. the running work items per agent and per
   * repository), changed by a single conditional write with no read first: concurrent joins never
   * conflict or retry, each is let in or refused by the sets as they are at that instant. Join adds
   * `member` to every named set and keeps `note` for it, only when it is not a member yet and each
   * set holds fewer than its `below` members. False (nothing written) when refused.
   */
  kvJoin(
    group: string,
    key: string,
    member: string,
    sets: Array<{ name: string; below?: number }>,
    note?: string,
  ): Promise<boolean>;
  /** Removes `member` and its note from the named sets, only when it is a member. False if it was not. */
  kvLeave(group: string, key: string, member: string, sets: string[]): Promise<boolean>;
  /**
   * `from` leaves and `to` joins, in one write: `to` gets `note`, and each named set becomes `now`,
   * only if each set is still exactly `was` (an empty `was`: absent), `from` is a member and `to` is
   * not. The caller computes `now` from a `kvMembers` read and checks the limits on it: the sets
   * being exactly as read, they hold. (A set cannot both gain and lose a member in one update, so
   * the sets are written whole.) False (nothing written) when refused.
   */
  kvSwap(group: string, key: string, swap: KvSwap): Promise<boolean>;
  /** The item's members with their notes, and its sets (an emptied set is absent). */
  kvMembers(
    group: string,
    key: string,
  ): Promise<{ members: Record<string, string>; sets: Record<string, string[]> }>;
}

/**
 * The run store: every port above, as one table provides them. The DynamoDB adapter
 * (lib/store/dynamodb.ts) is the real one; every implementation passes the same contract suite
 * (test/store/contract.ts). A module that needs one part takes that part (`Pick` or the small
 * interface), so a test or a second adapter can provide just it. Errors: lib/engine/store-errors.ts.
 */
export interface RunStore extends RunLog, ReportLedger, EffectLedger, KeyValueStore {}

/** One write of `kvTransact`. */
export type KvWrite =
  /** `expectedVersion`: as in `kvPut` (0: must not exist; undefined: unconditional). */
  | { op: 'put'; group: string; key: string; value: unknown; expectedVersion?: number; ttl?: number }
  /** `mustExist`: fail (and write nothing) when the key is absent. */
  | { op: 'delete'; group: string; key: string; mustExist?: boolean }
  /**
   * A numeric counter (its value a number, absent counts as 0): value += by. With `below`, only
   * while the value before the change is below it (a "count < limit" admission check).
   */
  | { op: 'add'; group: string; key: string; by: number; below?: number };
