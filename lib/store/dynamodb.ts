import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import {
  type AttributeValue,
  CreateTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  ResourceInUseException,
  TransactionCanceledException,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
  TransactWriteCommand,
  type TransactWriteCommandInput,
  UpdateCommand,
  type UpdateCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import { logger } from '../common/observability.ts';
import type { EventType } from '../engine/events.ts';
import type {
  ActivePage,
  CommitInput,
  CreateRunInput,
  CreateRunResult,
  EffectClaim,
  EffectRef,
  KvItem,
  KvSwap,
  KvWrite,
  LeaseFence,
  ListEventsOptions,
  ListRunsQuery,
  ReportNotes,
  ReportState,
  RunStore,
} from '../engine/ports.ts';
import {
  ConcurrencyError,
  RunNotFoundError,
  RunTooLargeError,
  StoreError,
  StoreValidationError,
  SubjectLockedError,
  ThrottledError,
} from '../engine/store-errors.ts';
import { isPending } from '../engine/transitions.ts';
import { isTerminal, type Lease, type NewEvent, type Run, type RunEvent } from '../engine/types.ts';
import { dynamoItemBytes, EVENTS_ITEM_BUDGET_BYTES, itemBytes, RUN_ITEM_BUDGET_BYTES } from './budget.ts';
import { type Chunk, ChunkCache, chunkOf, joinData, pack, splitData, unpack } from './packing.ts';
import {
  DEFAULT_RETENTION_DAYS,
  effectKeys,
  INDEXES,
  itemKeys,
  normalizeKey,
  sortKeys,
  TABLE_KEYS,
} from './schema.ts';

type Item = Record<string, unknown>;
/** A history event as stored: in a history item's packed list, or pending in the run item. */
type StoredEvent = Item & { seq: number };

const RUN_SK = sortKeys.run;
/** The run item's packed attribute (everything but keys and what conditions read). */
const BODY = 'body';
/** Inside a packed run body: the chunk of each large data key, and the data's key order. */
const REFS = '$chunks';
const ORDER = '$order';
/**
 * Inside a packed run body: the newest committed events, not yet in a history item (see commit).
 * Always the tail of the run's history: every event before the first of them is in an item.
 */
const PENDING = '$events';
/** A commit's events over this (JSON bytes) go in an item of their own, in its transaction. */
const PENDING_MAX_BYTES = 16 * 1024;
/** Run items this process remembers (see KnownItems). */
const KNOWN_RUNS = 1000;
/** Stale subject locks (their run ended) one write frees before it gives up and reports the holder. */
const MAX_STALE_LOCKS = 3;
/**
 * How long a subject lock whose run is not written yet is taken for a creation under way (createRun
 * writes the lock, then the listing and chunks, then the run: milliseconds apart, seconds when
 * throttled). Past it the creator stopped, and the next creation abandons that run and frees the
 * lock (freeStaleLock). Safety does not rest on it: an abandoned run can never be written.
 */
export const LOCK_CREATION_GRACE_MS = 60_000;
/** Reads of a run whose idempotency key another creation holds, while that creation may be under way. */
const KEY_WAITS = 5;
/**
 * The marker under the run key of a run abandoned before it was written (see freeStaleLock): its
 * creator's put of the run is refused, and every read takes the run for absent.
 */
const ABANDONED = 'abandoned';
const isAbandoned = (item: Item) => item[ABANDONED] !== undefined;

/**
 * A run item's fields as the run has them, chunks not resolved: its packed body (or, written
 * before runs were packed, its plain attributes) and its top-level attributes; a lease taken by
 * `leaseStep` (`la`, over a body that still holds the status before it) makes it running.
 */
function runFields(item: Item): Item {
  const run: Item = {};
  const packed = item[BODY];
  if (packed instanceof Uint8Array) Object.assign(run, unpack<Item>(packed));
  for (const [k, v] of Object.entries(item)) if (!NON_RUN_FIELDS.has(k) && k !== BODY) run[k] = v;
  if (typeof item[LEASED_AT] === 'number') {
    run.status = 'running';
    run.updatedAt = new Date(item[LEASED_AT]).toISOString();
  }
  // Never part of the run (a worker of the previous version packed it into the body as one).
  delete run[LEASED_AT];
  return run;
}
const chunkSk = sortKeys.chunk;
/**
 * A chunk homed in the history item its commit flushed (see homeChunk): its id is `~` and the
 * item's first seq in base36 (a content hash is base64url, which has no `~`), its values packed
 * under this attribute of that item.
 */
const HOMED = '~';
const HOMED_VALUES = 'values';
/**
 * A chunk homed in the run's listing item, written once with the run (createRun): its id is `^`
 * (not base64url either), its values packed under `HOMED_VALUES` there.
 */
const LISTED = '^';
const isHomed = (chunk: string) => chunk.startsWith(HOMED);
/** Where a chunk's item is, and the attribute its packed values are under. */
const chunkHome = (chunk: string) =>
  chunk === LISTED
    ? { sk: sortKeys.listing, attribute: HOMED_VALUES }
    : isHomed(chunk)
      ? { sk: eventSk(Number.parseInt(chunk.slice(HOMED.length), 36)), attribute: HOMED_VALUES }
      : { sk: chunkSk(chunk), attribute: BODY };
/** How much longer than a finished run's retention a chunk is kept (a run may last this long). */
const CHUNK_TTL_MARGIN_SECONDS = 30 * 86_400;
const REPORT_SK = sortKeys.report;
const runPk = itemKeys.run;
const eventSk = sortKeys.events;
/** Audit events after committed event `last`: the n-th sorts `EVT#<last>#<n>`. */
const auditPrefix = sortKeys.auditPrefix;
const auditSk = sortKeys.audit;
/**
 * An audit event's sequence number: after committed event `last` and before the next one, and
 * unique, so `listEvents({after})` from any event seen never skips one (n-th: last + n/(n+1)).
 */
const auditSeq = (last: number, n: number) => last + n / (n + 1);
const month = (iso: string) => iso.slice(0, 7);
/** An effect journal item is claimed (`pending`, with its claim) before the effect, `done` after. */
const EFFECT_PENDING = 'pending';
const EFFECT_DONE = 'done';

/**
 * When a step was leased by `leaseStep` (epoch ms): a plain attribute over the packed body, which
 * that UpdateItem does not rewrite, saying the run is `running` as of then. The next write of the
 * whole item folds both back into the body and drops it.
 */
const LEASED_AT = 'la';

/** A run item as a step message carries it (`carriedRun`): its attributes, its packed body in base64. */
interface CarriedItem {
  a: Item;
  b?: string;
}

/** How items are marshalled: the document client's options, and the run item's own puts'. */
const MARSHALL = { removeUndefinedValues: true, convertClassInstanceToMap: false } as const;

/** Fields of the item that are index keys or bookkeeping, not part of the Run. */
const NON_RUN_FIELDS = new Set([
  'pk',
  'sk',
  'gsi1pk',
  'gsi1sk',
  'gsi2pk',
  'gsi2sk',
  'gsi3pk',
  'gsi3sk',
  'gsi4pk',
  'gsi4sk',
  LEASED_AT,
]);

export interface DynamoRunStoreOptions {
  tableName: string;
  /** Finished runs and history are kept this long (DynamoDB TTL). */
  retentionDays?: number;
  now?: () => Date;
  /** Called with the consumed capacity of every write (the bench reads write units from it). */
  onConsumedCapacity?: (op: string, writeUnits: number) => void;
}

/**
 * The DynamoDB adapter of the RunStore port. One table (see schema.ts); every run write is
 * conditional on its version; history events go in the same TransactWriteItems as the state
 * change; no Scan anywhere. SDK exceptions become domain errors here and nowhere else.
 */
export class DynamoRunStore implements RunStore {
  readonly doc: DynamoDBDocumentClient;
  readonly tableName: string;
  private readonly retentionSeconds: number;
  private readonly now: () => Date;
  private readonly onCapacity: ((op: string, units: number) => void) | undefined;
  /** Chunks of run data this process wrote or read (packing.ts). */
  private readonly chunkCache = new ChunkCache();
  /**
   * Whether a read of a run takes the chunks this process has already written or read from its
   * cache (the default), or reads them from the table every time, as a process that never saw
   * them does. Off only to measure that worst case (the cost bench's `…ChunksUncached` keys).
   */
  cacheChunkReads = true;
  /** What this process knows of the run items it wrote or read, by run and version. */
  private readonly known = new KnownItems(KNOWN_RUNS);

  constructor(
    private readonly client: DynamoDBClient,
    opts: DynamoRunStoreOptions,
  ) {
    // A copy: the document client sets options of its own on the object it is given.
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { ...MARSHALL } });
    this.tableName = opts.tableName;
    this.retentionSeconds = (opts.retentionDays ?? DEFAULT_RETENTION_DAYS) * 86_400;
    this.now = opts.now ?? (() => new Date());
    this.onCapacity = opts.onConsumedCapacity;
  }

  private get capacityMode() {
    return this.onCapacity ? ('TOTAL' as const) : undefined;
  }

  private record(
    op: string,
    cc: { CapacityUnits?: number | undefined }[] | { CapacityUnits?: number | undefined } | undefined,
  ) {
    if (!this.onCapacity || !cc) return;
    const list = Array.isArray(cc) ? cc : [cc];
    this.onCapacity(
      op,
      list.reduce((n, c) => n + (c.CapacityUnits ?? 0), 0),
    );
  }

  private expiresAt(): number {
    return Math.floor(this.now().getTime() / 1000) + this.retentionSeconds;
  }

  private nowSeconds(): number {
    return Math.floor(this.now().getTime() / 1000);
  }

  /**
   * The run as its items. The run item holds the index keys, the attributes that conditions and
   * DynamoDB read (`version`, `eventSeq`, `lease`, `ttl`) and everything else packed into `body`
   * (packing.ts: a write is billed per KB, and the run item is rewritten on every transition).
   * Large values of `data` are chunks (packing.ts `splitData`): items of their own, written once
   * (`stored`: the refs of the version this write replaces, whose values are not written again).
   * `itemWith(pending)`: the run item carrying those pending events (see commit).
   */
  private runItems(
    run: Run,
    listed: boolean,
    stored: Record<string, string>,
  ): {
    chunks: Chunk[];
    refs: Record<string, string>;
    itemWith: (pending: StoredEvent[], homedRefs?: Record<string, string>) => Item;
  } {
    const { version, eventSeq, lease, ttl, data, ...rest } = run;
    // Split once: a write may weigh the item with and without its pending events (layout).
    const { inline, refs, order, chunks } = splitData(data ?? {}, stored);
    const attributes = {
      ...this.keysOf(run, listed),
      version,
      eventSeq,
      ...(lease !== undefined ? { lease } : {}),
      ...(ttl !== undefined ? { ttl } : {}),
    };
    const itemWith = (pending: StoredEvent[], homedRefs?: Record<string, string>): Item => ({
      ...attributes,
      [BODY]: pack({
        ...rest,
        data: inline,
        ...(order ? { [REFS]: homedRefs ?? refs, [ORDER]: order } : {}),
        ...(pending.length > 0 ? { [PENDING]: pending } : {}),
      }),
    });
    return { chunks, refs, itemWith };
  }

  /**
   * The run item's keys. `listed`: with the listing indexes' keys too, as runs created before the
   * listing item were written (they keep them; see listingItem).
   */
  private keysOf(run: Run, listed = false): Item {
    return {
      pk: runPk(run.id),
      sk: RUN_SK,
      // Every write keeps the run in the sparse active index; retire() takes it out once the run
      // is finished AND reported, so the sweeper also finds finished-but-unreported runs.
      gsi1pk: itemKeys.active,
      gsi1sk: `${run.createdAt}#${run.id}`,
      ...(listed ? this.listingKeys(run) : {}),
    };
  }

  /** The keys that list a run by subject, by repository and by month (never change). */
  private listingKeys(run: Run): Item {
    const sortKey = `${run.createdAt}#${run.id}`;
    return {
      gsi2pk: itemKeys.subject(run.subject.key),
      gsi2sk: sortKey,
      gsi4pk: itemKeys.recent(month(run.createdAt)),
      gsi4sk: sortKey,
      ...(run.subject.repo ? { gsi3pk: itemKeys.repo(run.subject.repo), gsi3sk: sortKey } : {}),
    };
  }

  /**
   * The item that lists a run in the subject, repository and month indexes (`RUN#<id> / LIST`),
   * written once with the run: their keys never change, and on the run item they were ~230 bytes
   * of every write of it. The indexes give the partition key, and the run item is read by it, so
   * a listing finds the run the same way from either item. It expires like a chunk (a run item
   * never outlives it).
   */
  private listingItem(run: Run): Item {
    return { pk: runPk(run.id), sk: sortKeys.listing, ...this.listingKeys(run), ttl: this.chunkExpiresAt() };
  }

  /**
   * The listing item, with the values of a chunk homed in it (`values`: see homeChunk). False when
   * refused: a listing of this run id holding homed values is there already, written by another
   * creation of the same reserved id (reserveKey), whose run item may refer to them. It is never
   * written over (it lists this run id as well as this one would).
   */
  private async putListing(run: Run, values?: Uint8Array): Promise<boolean> {
    try {
      const out = await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...this.listingItem(run), ...(values ? { [HOMED_VALUES]: values } : {}) },
          ConditionExpression: 'attribute_not_exists(#values)',
          ExpressionAttributeNames: { '#values': HOMED_VALUES },
          ReturnConsumedCapacity: this.capacityMode,
        }),
      );
      this.record('listing', out.ConsumedCapacity);
      return true;
    } catch (err) {
      if (isConditionalFailure(err)) return false;
      throw this.translate(err, run.id);
    }
  }

  /**
   * Write the chunks this process has not written or read yet (a chunk is immutable and
   * content-addressed, so one known is one that exists). Before the run's own write: a run item
   * never refers to a chunk that is not there. A chunk of a write that then loses its race stays
   * unreferenced until TTL removes it.
   */
  private async putChunks(runId: string, chunks: Chunk[]): Promise<void> {
    const missing = chunks.filter((c) => !this.chunkCache.get(runId, c.hash));
    await Promise.all(
      missing.map(async (c) => {
        try {
          const out = await this.doc.send(
            new PutCommand({
              TableName: this.tableName,
              Item: this.chunkItem(runId, c),
              ReturnConsumedCapacity: this.capacityMode,
            }),
          );
          this.record('chunk', out.ConsumedCapacity);
        } catch (err) {
          throw this.translate(err, runId);
        }
        this.chunkCache.set(runId, c.hash, c.bytes);
      }),
    );
  }

  private chunkItem(runId: string, c: Chunk): Item {
    return { pk: runPk(runId), sk: chunkSk(c.hash), [BODY]: c.bytes, ttl: this.chunkExpiresAt() };
  }

  /**
   * A chunk outlives the retention a finished run gets from its last write by a margin, since it
   * may have been written when the run started: a run item never outlives its chunks.
   */
  private chunkExpiresAt(): number {
    return this.expiresAt() + CHUNK_TTL_MARGIN_SECONDS;
  }

  /**
   * Runs from their items: packed or plain (written before runs were packed), their chunks from
   * memory or read in batches (eventually consistent, and strongly for any such a read missed).
   */
  private async fromItems(items: Item[]): Promise<Run[]> {
    const parsed = items.map((item) => {
      const run = runFields(item);
      const refs = run[REFS] as Record<string, string> | undefined;
      const order = run[ORDER] as string[] | undefined;
      delete run[REFS];
      delete run[ORDER];
      this.known.set(
        run.id as string,
        run.version as number,
        {
          events: (run[PENDING] ?? []) as StoredEvent[],
          listed: item.gsi2pk !== undefined,
          eventSeq: run.eventSeq as number,
          refs: refs ?? {},
        },
        item,
      );
      delete run[PENDING];
      return { run, refs, order };
    });
    const fetched = new Map<string, Uint8Array>();
    const wanted = new Map<string, { key: Item; id: string; chunk: string; attribute: string }>();
    for (const { run, refs } of parsed)
      for (const ref of Object.values(refs ?? {})) {
        const id = run.id as string;
        const { chunk } = chunkOf(ref);
        const cached = this.cacheChunkReads ? this.chunkCache.get(id, chunk) : undefined;
        if (cached) fetched.set(`${id}/${chunk}`, cached);
        else {
          const { sk, attribute } = chunkHome(chunk);
          wanted.set(`${runPk(id)}|${sk}`, { key: { pk: runPk(id), sk }, id, chunk, attribute });
        }
      }
    // Eventually consistent first, at half the read units: a chunk never changes once a run item
    // refers to it (content-addressed, or homed in a history item written once with it). One
    // written just before the run item may not have reached that read yet, and a history item may
    // still show a shorter flush from before its values: those are read again, strongly.
    for (const consistent of [false, true]) {
      if (wanted.size === 0) break;
      const keys = [...wanted.values()].map((w) => w.key);
      for (const item of await this.batchGet('chunks', keys, { consistent })) {
        const at = `${item.pk as string}|${item.sk as string}`;
        const w = wanted.get(at);
        const bytes = w && item[w.attribute];
        if (!w || !(bytes instanceof Uint8Array)) continue;
        this.chunkCache.set(w.id, w.chunk, bytes);
        fetched.set(`${w.id}/${w.chunk}`, bytes);
        wanted.delete(at);
      }
    }
    return parsed.map(({ run, refs, order }) => {
      if (!refs) return run as unknown as Run;
      const id = run.id as string;
      // A shared chunk is unpacked once for all the values it holds.
      const shared = new Map<string, Record<string, unknown>>();
      run.data = joinData((run.data ?? {}) as Record<string, unknown>, refs, order, (ref) => {
        const { chunk, value } = chunkOf(ref);
        const bytes = fetched.get(`${id}/${chunk}`);
        if (!bytes) throw new StoreError(`run ${id}: a chunk of its data (${chunk}) is missing`);
        if (value === undefined) return unpack(bytes);
        let values = shared.get(chunk);
        if (!values) {
          values = unpack<Record<string, unknown>>(bytes);
          shared.set(chunk, values);
        }
        if (!(value in values))
          throw new StoreError(`run ${id}: chunk ${chunk} does not hold value ${value}`);
        return values[value];
      });
      return run as unknown as Run;
    });
  }

  /** The run's size as the budget counts it: its unpacked JSON (what the workflow put in it). */
  private budgetItem(run: Run): Item {
    return { ...this.keysOf(run), ...run };
  }

  /** A commit's events as stored, numbered from `firstSeq`. */
  private storedEvents(run: Run, events: NewEvent[], firstSeq: number): StoredEvent[] {
    const at = run.updatedAt;
    return events.map((e, i) => ({
      seq: firstSeq + i,
      at: e.at ?? at,
      type: e.type,
      ...(e.node !== undefined ? { node: e.node } : {}),
      ...(e.by !== undefined ? { by: e.by } : {}),
      detail: e.detail,
    }));
  }

  /**
   * A history item: consecutive events in ONE item (`EVT#<first seq>` holding the list, packed),
   * whatever their number, since a write is billed per item and per KB, and a step that routes an
   * issue emits half a dozen events. `last` is its last event's seq (see flush).
   */
  private historyItem(runId: string, events: StoredEvent[]): Item {
    const first = events[0]!.seq;
    return {
      pk: runPk(runId),
      sk: eventSk(first),
      seq: first,
      last: events[events.length - 1]!.seq,
      [BODY]: pack(events),
      ttl: this.expiresAt(),
    };
  }

  /** Refuse a write over the run's size budget before it is sent (DynamoDB would refuse it anyway). */
  private checkBudget(runId: string, runItem: Item, events: StoredEvent[]): void {
    const measure = (what: string, item: Item, limit: number) => {
      let bytes: number;
      try {
        bytes = itemBytes(item);
      } catch (err) {
        // JSON.stringify gives up on very deep nesting long after DynamoDB's 32 levels would.
        throw new StoreValidationError(`${what} of run ${runId} is nested too deeply to store`, {
          runId: runId,
          cause: err,
        });
      }
      if (bytes > limit) throw new RunTooLargeError({ what, bytes, limit, runId });
    };
    measure('the run', runItem, RUN_ITEM_BUDGET_BYTES);
    if (events.length > 0) measure("one commit's events", { events }, EVENTS_ITEM_BUDGET_BYTES);
  }

  /**
   * Where a write of the run puts its commit's events (`added`) and the pending ones before them
   * (`before`): the cheapest of
   * - all of them pending in the run item, when that costs no write unit more than `added` alone
   *   (a write is billed per KB of the item, and the events pack with the state), counting the
   *   lease a step message adds to the item next and the step's commit over it (runWriteCost);
   * - `before` flushed first to a history item of their own, and `added` pending;
   * - `added` too large to carry (over PENDING_MAX_BYTES): in a history item written in the
   *   commit's transaction (`direct`), and nothing pending.
   */
  private layout(
    run: Run,
    was: KnownItem,
    added: StoredEvent[],
  ): {
    item: Item;
    chunks: Chunk[];
    refs: Record<string, string>;
    pending: StoredEvent[];
    flush: StoredEvent[];
    direct: StoredEvent[];
    itemWith: (pending: StoredEvent[], homedRefs?: Record<string, string>) => Item;
  } {
    const { events: before, listed } = was;
    const { chunks, refs, itemWith } = this.runItems(run, listed, was.refs);
    if (added.length > 0 && itemBytes(added) > PENDING_MAX_BYTES) {
      return { item: itemWith([]), chunks, refs, pending: [], flush: before, direct: added, itemWith };
    }
    const all = [...before, ...added];
    const carried = itemWith(all);
    const cost = runWriteCost(run);
    // A carried item of one unit costs no more than any other: no need to pack the other one.
    if (before.length === 0 || cost(carried) === cost.least)
      return { item: carried, chunks, refs, pending: all, flush: [], direct: [], itemWith };
    const alone = itemWith(added);
    return cost(carried) <= cost(alone)
      ? { item: carried, chunks, refs, pending: all, flush: [], direct: [], itemWith }
      : { item: alone, chunks, refs, pending: added, flush: before, direct: [], itemWith };
  }

  /**
   * A write of the run that writes another item of it anyway, and a new chunk, writes them as ONE
   * item when they fit in a KB together: the chunk's values go in that item (`HOMED_VALUES`), and
   * the run item refers to them as `<id>:<value hash>`. A write is billed per KB however little
   * the item holds. Two such items:
   * - a commit's flush (a history item; id `~<first seq in base36>`): on the issue pipeline an
   *   agent's result is both (the signal's commit flushes the events before it, and the result is
   *   a chunk). A history item is written once with the committed events it holds: a later flush
   *   of the same first seq is refused unless it holds more events, which only a write that lost
   *   its race to this commit's lineage can have (see flush);
   * - a creation's listing item (id `^`): the trigger's event and its routing are a chunk, and the
   *   listing is written once, never over homed values (putListing).
   * So a homed chunk that a committed run item refers to is never overwritten. Only where the run
   * item's write costs no more with the new refs, and the chunk is one this process has not stored
   * (a known one is not written at all).
   */
  private homeChunk(
    run: Run,
    laid: ReturnType<DynamoRunStore['layout']>,
    home: { item: Item; id: string },
  ):
    | { home: { id: string; bytes: Uint8Array }; item: Item; chunks: Chunk[]; refs: Record<string, string> }
    | undefined {
    const { chunks, refs, pending, itemWith, item } = laid;
    if (chunks.length === 0) return undefined;
    const { item: history, id } = home;
    const cost = runWriteCost(run);
    for (const c of chunks) {
      if (this.chunkCache.get(run.id, c.hash)) continue;
      // Its values by value hash: a lone value's hash is its chunk's (packing.ts splitData).
      const keys = Object.entries(refs).filter(([, ref]) => chunkOf(ref).chunk === c.hash);
      const lone = keys.some(([, ref]) => chunkOf(ref).value === undefined);
      const bytes = lone ? pack({ [c.hash]: unpack(c.bytes) }) : c.bytes;
      if (writeUnits({ ...history, [HOMED_VALUES]: bytes }) > 1) continue;
      const homedRefs = { ...refs };
      for (const [key, ref] of keys) homedRefs[key] = `${id}:${chunkOf(ref).value ?? c.hash}`;
      const homed = itemWith(pending, homedRefs);
      if (cost(homed) > cost(item)) continue;
      return { home: { id, bytes }, item: homed, chunks: chunks.filter((x) => x !== c), refs: homedRefs };
    }
    return undefined;
  }

  /**
   * Write pending events to their history item, before the run write that drops them from the
   * run item: they are committed (read from a committed run item), so writing them again is
   * harmless, and a write that then loses its race leaves nothing wrong behind. Pending events
   * only grow at their end until they are flushed, so two flushes of the same first event hold
   * one list and a prefix of it: the longer one is kept (a stale worker's flush never shortens it).
   */
  private async flush(runId: string, events: StoredEvent[], home?: { bytes: Uint8Array }): Promise<boolean> {
    const item = this.historyItem(runId, events);
    // A homed chunk lives as long as any chunk (a run item never outlives its chunks).
    if (home) Object.assign(item, { [HOMED_VALUES]: home.bytes, ttl: this.chunkExpiresAt() });
    try {
      const out = await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: item,
          ConditionExpression: 'attribute_not_exists(sk) OR #last < :last',
          ExpressionAttributeNames: { '#last': 'last' },
          ExpressionAttributeValues: { ':last': item.last },
          ReturnConsumedCapacity: this.capacityMode,
        }),
      );
      this.record('flush', out.ConsumedCapacity);
      return true;
    } catch (err) {
      if (isConditionalFailure(err)) return false; // the same events or more are there already
      throw this.translate(err, runId);
    }
  }

  /**
   * What a write over the run item at `version` needs of it (its pending events, its layout, its
   * `eventSeq`): known to this process when it read or wrote that version (the step runner always
   * has), else read. A version is written once, so what is known of it never changes.
   * ConcurrencyError when the run is no longer at `version` (the write would lose its race
   * anyway); StoreError when the run written does not go on from that version's `eventSeq`.
   */
  private async knownItem(runId: string, version: number, eventSeq: number): Promise<KnownItem> {
    const known = this.known.get(runId, version) ?? (await this.readKnown(runId, version));
    // A run that does not go on from the version's events would give two events one seq (a
    // history item's key no longer refuses it): the caller's mistake, said as such.
    if (eventSeq !== known.eventSeq) {
      throw new StoreError(
        `a write of run ${runId} over version ${version} starts its events at ${eventSeq}, not ${known.eventSeq}`,
      );
    }
    return known;
  }

  private async readKnown(runId: string, version: number): Promise<KnownItem> {
    const item = await this.item(runId, { pk: runPk(runId), sk: RUN_SK }, [
      'version',
      'eventSeq',
      BODY,
      'gsi2pk',
    ]);
    if (item && item.version === version) {
      const body = item[BODY] instanceof Uint8Array ? unpack<Item>(item[BODY]) : {};
      return {
        events: (body[PENDING] ?? []) as StoredEvent[],
        listed: item.gsi2pk !== undefined,
        eventSeq: item.eventSeq as number,
        refs: (body[REFS] ?? {}) as Record<string, string>,
      };
    }
    throw new ConcurrencyError(`run ${runId} changed since version ${version}`, { runId });
  }

  /**
   * A transaction cancelled because an item is invalid (too large, nested too deeply): no retry
   * can fix it, and it is not a lost race. Throws StoreValidationError with DynamoDB's reason.
   */
  private refuseInvalid(reasons: CancellationReason[], runId: string, cause: unknown): void {
    const bad = reasons.find((r) => r.Code === 'ValidationError');
    if (bad) {
      throw new StoreValidationError(
        `DynamoDB refused a write of run ${runId}: ${bad.Message ?? 'validation error'}`,
        { runId, cause },
      );
    }
  }

  /**
   * A transaction cancelled by throttling: wait (exponential backoff, longer than a conflict's)
   * and say so; past the retries, a retryable ThrottledError. Never read as a lost race.
   */
  private async retryLater(
    reasons: CancellationReason[],
    attempt: number,
    runId: string,
    cause: unknown,
  ): Promise<boolean> {
    if (!reasons.some((r) => r.Code === 'ThrottlingError' || r.Code === 'ProvisionedThroughputExceeded'))
      return false;
    if (attempt >= THROTTLE_RETRIES) {
      throw new ThrottledError(`DynamoDB throttled a transaction of run ${runId} after retries`, { cause });
    }
    await throttleBackoff(attempt);
    return true;
  }

  /**
   * A new run, with no transaction: single conditional writes in an order that makes each step's
   * refusal its answer (a transaction billed every item twice: 8 write units for the idempotency
   * key, the lock and the run, where these are 4).
   *
   * 1. The idempotency key, put only if absent (or already ours): it reserves this run id for the
   *    delivery. Held by another id: that run is the answer (`duplicate`) once it exists; one that
   *    is not written after a short wait was left by a creator that stopped, and the key's run id
   *    is handed back (`reserved`) for the caller to create that run under it. One abandoned
   *    (step 2) gives the key up to this run.
   * 2. The subject lock, put only if free (or already this run's), stamped with the time: held by
   *    another run, the answer is `locked` (and the reservation of step 1 is given back). A lock
   *    whose run is not written yet belongs to a creation under way; past `LOCK_CREATION_GRACE_MS`
   *    its creator stopped, and the next creation abandons that run (a marker under its key, so
   *    the stopped creator can never write it) and frees the lock (freeStaleLock).
   * 3. The listing item and the chunks (as before).
   * 4. The run item, put only if absent: the run exists from here. Refused, another creation of
   *    the same reserved id wrote it first (`duplicate`), or it was abandoned (`abandoned`: the
   *    caller tries again under a new id).
   *
   * A creation that stops between the steps leaves a reservation, a lock or a listing without a
   * run: the key's next delivery creates the run under the reserved id, the lock is freed past its
   * grace, and a listing without its run is skipped by listings (and expires).
   */
  async createRun(input: CreateRunInput): Promise<CreateRunResult> {
    const { run, events, idempotencyKey, lockKey } = input;
    const stored: Run = { ...run, eventSeq: run.eventSeq + events.length };
    const added = this.storedEvents(stored, events, run.eventSeq);
    this.checkBudget(run.id, this.budgetItem(stored), added);
    // Its events pending in the run item (see commit), unless too large to carry.
    const laid = this.layout(stored, { events: [], listed: false, eventSeq: run.eventSeq, refs: {} }, added);
    const { pending, direct, chunks } = laid;
    let { item: runItem, refs } = laid;

    if (idempotencyKey !== undefined) {
      const reserved = await this.reserveKey(idempotencyKey, run.id);
      if (reserved) return reserved;
    }
    if (lockKey !== undefined) {
      const holder = await this.takeLock(lockKey, run.id, run.version);
      if (holder !== undefined) {
        if (idempotencyKey !== undefined) await this.giveUpKey(idempotencyKey, run.id);
        return { outcome: 'locked', activeRunId: holder };
      }
    }
    // A chunk that fits in the listing item goes in it (homeChunk): one write, not two.
    const homed = this.homeChunk(stored, laid, { item: this.listingItem(stored), id: LISTED });
    const [listedHomed] = await Promise.all([
      this.putListing(stored, homed?.home.bytes),
      this.putChunks(run.id, homed ? homed.chunks : chunks),
      // Events too large to carry: their history item, written once (harmless without its run).
      ...(direct.length > 0 ? [this.putIfAbsent('history', this.historyItem(run.id, direct), run.id)] : []),
    ]);
    if (homed && listedHomed) {
      ({ item: runItem, refs } = homed);
      this.chunkCache.set(run.id, homed.home.id, homed.home.bytes);
    } else if (homed) await this.putChunks(run.id, chunks); // refused: the one homed, as a chunk
    if (!(await this.putIfAbsent('createRun', runItem, run.id))) {
      // Another creation of the same reserved id wrote it first: its run is the answer. Nothing
      // written above is deleted: it is that run's too (its keys are the run id's).
      const existing = await this.getRun(run.id);
      if (existing) return { outcome: 'duplicate', run: existing };
      // Abandoned while this creation stalled: its key and listing are taken over by the next try.
      logger.warn('a run was abandoned before its stalled creation wrote it', { runId: run.id });
      return { outcome: 'abandoned' };
    }
    this.known.set(
      run.id,
      stored.version,
      { events: pending, listed: false, eventSeq: stored.eventSeq, refs },
      runItem,
    );
    return { outcome: 'created', run: stored };
  }

  /**
   * Step 1 of createRun: undefined when the key is this run's now; else the answer. Another run
   * id's key: that run once it exists (a few reads while its creation may be under way), its id
   * to create the run under when it does not come, the key taken over when that run was abandoned.
   */
  private async reserveKey(key: string, runId: string): Promise<CreateRunResult | undefined> {
    for (let attempt = 0; ; attempt++) {
      const reservation = {
        pk: itemKeys.idempotency(key),
        sk: sortKeys.idempotency,
        runId,
        ttl: this.expiresAt(),
      };
      const held = await this.putIfOurs('reserveKey', reservation, runId, key);
      if (held === undefined) return undefined;
      const holder = held.runId;
      for (let look = 0; look < KEY_WAITS; look++) {
        const item = await this.runItemOf(holder);
        if (item && isAbandoned(item)) break;
        if (item) {
          const [existing] = await this.fromItems([item]);
          return { outcome: 'duplicate', run: existing! };
        }
        if (look < KEY_WAITS - 1) await backoff(look + 3);
        else return { outcome: 'reserved', runId: holder };
      }
      // Abandoned: the key is taken over, only as it was read (another creation may take it first).
      const other = await this.putIfOurs('reserveKey', reservation, holder, key);
      if (other === undefined) return undefined;
      if (attempt >= 3) throw new ConcurrencyError(`idempotency key ${key} keeps changing hands`, { runId });
    }
  }

  /**
   * Put `item` if its key is absent (or expired) or names `owner` (its `runId`). Undefined when
   * written; else the item there, which names another run.
   */
  private async putIfOurs(
    op: 'reserveKey' | 'takeLock',
    item: Item,
    owner: string,
    what: string,
  ): Promise<(Item & { runId: string }) | undefined> {
    try {
      const out = await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: item,
          ConditionExpression: 'attribute_not_exists(pk) OR runId = :owner OR #ttl < :now',
          ExpressionAttributeNames: { '#ttl': 'ttl' },
          ExpressionAttributeValues: { ':owner': owner, ':now': this.nowSeconds() },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          ReturnConsumedCapacity: this.capacityMode,
        }),
      );
      this.record(op, out.ConsumedCapacity);
      return undefined;
    } catch (err) {
      if (!isConditionalFailure(err)) throw this.translate(err, what);
      const old =
        oldItem(err as { Item?: Record<string, AttributeValue> }) ??
        (await this.item(what, { pk: item.pk, sk: item.sk }));
      // Gone between the put and the read: try again.
      return typeof old?.runId === 'string'
        ? (old as Item & { runId: string })
        : this.putIfOurs(op, item, owner, what);
    }
  }

  /** Give the key reserved for a run that will not be created back (a creation refused by the lock). */
  private async giveUpKey(key: string, runId: string): Promise<void> {
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: { pk: itemKeys.idempotency(key), sk: sortKeys.idempotency },
          ConditionExpression: 'runId = :me',
          ExpressionAttributeValues: { ':me': runId },
          ReturnConsumedCapacity: this.capacityMode,
        }),
      );
    } catch (err) {
      if (!isConditionalFailure(err)) throw this.translate(err, runId);
    }
  }

  /**
   * Step 2 of createRun: undefined when the subject lock is this run's now; else the run that holds
   * it (stale locks freed first, at most MAX_STALE_LOCKS).
   */
  private async takeLock(lockKey: string, runId: string, version: number): Promise<string | undefined> {
    for (let freed = 0; ; freed++) {
      const item = {
        pk: itemKeys.lock(lockKey),
        sk: sortKeys.lock,
        runId,
        acquired: version,
        at: this.now().getTime(),
        // Nothing deletes it when its run ends (freeStaleLock): it goes when no run can outlast it.
        ttl: this.chunkExpiresAt(),
      };
      const held = await this.putIfOurs('takeLock', item, runId, lockKey);
      if (held === undefined) return undefined;
      if (freed >= MAX_STALE_LOCKS) return held.runId;
      const stale = await this.freeStaleLock(lockKey, held, item);
      if (stale === 'taken') return undefined;
      if (stale === 'held') return held.runId;
    }
  }

  /** Put `item` if its key is absent: false (nothing written) when the item is there already. */
  private async putIfAbsent(op: string, item: Item, id: string): Promise<boolean> {
    try {
      const out = await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: item,
          ConditionExpression: 'attribute_not_exists(pk)',
          ReturnConsumedCapacity: this.capacityMode,
        }),
      );
      this.record(op, out.ConsumedCapacity);
      return true;
    } catch (err) {
      if (isConditionalFailure(err)) return false;
      throw this.translate(err, id);
    }
  }

  /** The run item under `runId`'s key as stored (an abandoned marker included), if live. */
  private async runItemOf(runId: string): Promise<Item | undefined> {
    const item = await this.item(runId, { pk: runPk(runId), sk: RUN_SK });
    return item && !this.expired(item) ? item : undefined;
  }

  /**
   * One item by its key, strongly consistent (`attrs`: only these attributes; the read is billed
   * for the whole item all the same). Undefined when it does not exist.
   */
  private async item(id: string, Key: Item, attrs?: string[], consistent = true): Promise<Item | undefined> {
    const names = attrs && Object.fromEntries(attrs.map((a, i) => [`#a${i}`, a]));
    const out = await this.read(id, () =>
      this.doc.send(
        new GetCommand({
          TableName: this.tableName,
          Key,
          ConsistentRead: consistent,
          ...(names
            ? { ProjectionExpression: Object.keys(names).join(', '), ExpressionAttributeNames: names }
            : {}),
        }),
      ),
    );
    return out.Item;
  }

  private async keyTarget(key: string): Promise<string | undefined> {
    const item = await this.item(key, { pk: itemKeys.idempotency(key), sk: sortKeys.idempotency });
    return typeof item?.runId === 'string' ? item.runId : undefined;
  }

  /**
   * A subject lock whose holder has ended (or is gone) is free. An ending run does not delete its
   * lock (a write per run, where most subjects never get another run): the next run that wants the
   * lock finds it here, by one read of the holder's run item, and takes it over (`take`: in one
   * conditional put, its own lock item) or deletes it (without `take`): 'taken', or 'freed' (try
   * to take it again). Either write is conditional on the lock being the one read: a holder that
   * was retried meanwhile took it again under a later version (`acquired`), and keeps it. 'held':
   * the holder is active (or its creation may still be under way).
   */
  private async freeStaleLock(
    lockKey: string,
    lock: Item | undefined,
    take?: Item,
  ): Promise<'taken' | 'freed' | 'held'> {
    const holder = typeof lock?.runId === 'string' ? lock.runId : undefined;
    if (!holder) return 'held';
    const ended = await this.runEnded(holder);
    if (ended === false) return 'held';
    // Taken by a creation (it stamps `at`) whose run is not written: under way until the grace
    // has passed; then its creator stopped, and its run is abandoned before the lock is freed, so
    // a creator that only stalled can never write it after the lock went to another run.
    const at = typeof lock?.at === 'number' ? lock.at : undefined;
    if (ended === undefined && at !== undefined) {
      if (this.now().getTime() - at < LOCK_CREATION_GRACE_MS) return 'held';
      if (!(await this.abandon(holder))) return 'held';
    }
    const acquired = typeof lock?.acquired === 'number' ? lock.acquired : undefined;
    const Key = { pk: itemKeys.lock(lockKey), sk: sortKeys.lock };
    const condition = {
      ConditionExpression:
        acquired === undefined
          ? 'runId = :holder AND attribute_not_exists(acquired)'
          : 'runId = :holder AND acquired = :acquired',
      ExpressionAttributeValues: {
        ':holder': holder,
        ...(acquired === undefined ? {} : { ':acquired': acquired }),
      },
      ReturnConsumedCapacity: this.capacityMode,
    };
    try {
      const out = take
        ? await this.doc.send(new PutCommand({ TableName: this.tableName, Item: take, ...condition }))
        : await this.doc.send(new DeleteCommand({ TableName: this.tableName, Key, ...condition }));
      this.record('takeLock', out.ConsumedCapacity);
      return take ? 'taken' : 'freed';
    } catch (err) {
      // Taken again meanwhile (its run retried, or another creation took it first): look again.
      if (!isConditionalFailure(err)) throw this.translate(err, holder);
      return 'freed';
    }
  }

  /**
   * Whether the run has ended, from its run item alone (no chunk of its data is read): undefined
   * when there is no such run (never written, abandoned, or expired).
   */
  private async runEnded(runId: string): Promise<boolean | undefined> {
    const item = await this.runItemOf(runId);
    if (!item || isAbandoned(item)) return undefined;
    return isTerminal(runFields(item).status as Run['status']);
  }

  /**
   * Mark a run that was never written as abandoned (the marker under its key refuses its
   * creator's put). False when the run was written meanwhile: its creation was under way after all.
   */
  private async abandon(runId: string): Promise<boolean> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            pk: runPk(runId),
            sk: RUN_SK,
            [ABANDONED]: this.now().toISOString(),
            ttl: this.expiresAt(),
          },
          ConditionExpression: 'attribute_not_exists(pk) OR attribute_exists(#a)',
          ExpressionAttributeNames: { '#a': ABANDONED },
          ReturnConsumedCapacity: this.capacityMode,
        }),
      );
      logger.warn('abandoned a run whose creation stopped before writing it', { runId });
      return true;
    } catch (err) {
      if (isConditionalFailure(err)) return false;
      throw this.translate(err, runId);
    }
  }

  async rememberKey(idempotencyKey: string, runId: string): Promise<string> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            pk: itemKeys.idempotency(idempotencyKey),
            sk: sortKeys.idempotency,
            runId,
            ttl: this.expiresAt(),
          },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return runId;
    } catch (err) {
      if (isConditionalFailure(err)) return (await this.keyTarget(idempotencyKey)) ?? runId;
      throw this.translate(err, runId);
    }
  }

  /**
   * The run item's read and its conditional put (`putRun`) are the two calls of every step: they go
   * through the DynamoDB client itself, (un)marshalled by util-dynamodb as the document client
   * would. The document client resolves a middleware stack of its own on every command, about
   * 0.13 ms of CPU a call on this machine, which every step paid twice.
   */
  async getRun(id: string): Promise<Run | null> {
    try {
      const out = await this.client.send(
        new GetItemCommand({
          TableName: this.tableName,
          Key: marshall({ pk: runPk(id), sk: RUN_SK }),
          ConsistentRead: true,
        }),
      );
      const item = out.Item && unmarshall(out.Item);
      if (!item || this.expired(item) || isAbandoned(item)) return null;
      const [run] = await this.fromItems([item]);
      return run!;
    } catch (err) {
      throw this.translate(err, id);
    }
  }

  carriedRun(runId: string, version: number, maxBytes: number): string | undefined {
    const item = this.known.item(runId, version);
    if (!item) return undefined;
    const { [BODY]: body, ...attributes } = item;
    const carried: CarriedItem = {
      a: attributes,
      ...(body instanceof Uint8Array ? { b: Buffer.from(body).toString('base64') } : {}),
    };
    const encoded = JSON.stringify(carried);
    return encoded.length <= maxBytes ? encoded : undefined;
  }

  async runFromCarried(runId: string, carried: string): Promise<Run | null> {
    try {
      const { a, b } = JSON.parse(carried) as CarriedItem;
      const item: Item = b === undefined ? a : { ...a, [BODY]: new Uint8Array(Buffer.from(b, 'base64')) };
      if (item.pk !== runPk(runId) || item.sk !== RUN_SK || this.expired(item)) return null;
      const [run] = await this.fromItems([item]);
      return run ?? null;
    } catch (err) {
      // Not an item this store encoded (or its chunks unreadable): read the run instead.
      logger.warn('a step message carried a run item that could not be used', {
        runId,
        error: (err as Error).message,
      });
      return null;
    }
  }

  private expired(item: Item): boolean {
    return typeof item.ttl === 'number' && item.ttl < this.nowSeconds();
  }

  /**
   * A commit is one conditional write of the run item when it can be: its events go in the run
   * item, pending, until a later write finds that carrying them costs a write unit more; that
   * write flushes them to their history item first (layout, flush). A history item is thus only
   * ever written with committed events, so no transaction is needed to keep history and state in
   * step, and a commit costs 1 write unit per KB of the run instead of 2 per KB of the run and
   * of its events. A transaction remains for a commit that takes or releases a subject lock, or
   * whose events are too large to carry.
   */
  async commit(input: CommitInput): Promise<Run> {
    const { run, expectedVersion, events } = input;
    // Up by one a transition; a fused commit of chained steps (transitions.ts `fused`) by one each.
    if (!Number.isInteger(run.version) || run.version <= expectedVersion) {
      throw new StoreError(`commit of run ${run.id} must raise version ${expectedVersion}`);
    }
    const stored: Run = { ...run, eventSeq: run.eventSeq + events.length };
    if (isTerminal(stored.status) && stored.ttl === undefined) stored.ttl = this.expiresAt();
    const added = this.storedEvents(stored, events, run.eventSeq);
    // Checked before each commit: an over-budget run fails with a reason, not as a lost race.
    this.checkBudget(run.id, this.budgetItem(stored), added);
    const was = await this.knownItem(run.id, expectedVersion, run.eventSeq);
    const laid = this.layout(stored, was, added);
    const { pending, flush, direct } = laid;
    let { item: runItem, chunks, refs } = laid;
    const homed =
      flush.length > 0
        ? this.homeChunk(stored, laid, {
            item: this.historyItem(run.id, flush),
            id: `${HOMED}${flush[0]!.seq.toString(36)}`,
          })
        : undefined;
    // Refused, the flush's events are there already (another worker's write of this version):
    // the chunk is written as a chunk of its own, and the run item refers to it as such.
    if (homed && (await this.flush(run.id, flush, homed.home))) {
      ({ item: runItem, chunks, refs } = homed);
      this.chunkCache.set(run.id, homed.home.id, homed.home.bytes);
    } else if (flush.length > 0 && !homed) await this.flush(run.id, flush);
    await this.putChunks(run.id, chunks);
    // An ending run's subject lock (`releaseLock`) is not written at all: a lock whose run has
    // ended is free, and the next run that wants it takes it over (freeStaleLock).
    if (direct.length === 0 && input.acquireLock === undefined) {
      await this.putRun(run.id, runItem, expectedVersion, 'commit');
      this.known.set(
        run.id,
        stored.version,
        { events: pending, listed: was.listed, eventSeq: stored.eventSeq, refs },
        runItem,
      );
      return stored;
    }
    const items: NonNullable<TransactWriteCommandInput['TransactItems']> = [
      {
        Put: {
          TableName: this.tableName,
          Item: runItem,
          ConditionExpression: '#v = :expected',
          ExpressionAttributeNames: { '#v': 'version' },
          ExpressionAttributeValues: { ':expected': expectedVersion },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        },
      },
    ];
    if (direct.length > 0) {
      items.push({
        Put: {
          TableName: this.tableName,
          Item: this.historyItem(run.id, direct),
          ConditionExpression: 'attribute_not_exists(pk)',
        },
      });
    }
    let lockIndex = -1;
    if (input.acquireLock !== undefined) {
      lockIndex = items.length;
      items.push({
        Put: {
          TableName: this.tableName,
          Item: {
            pk: itemKeys.lock(input.acquireLock),
            sk: sortKeys.lock,
            runId: run.id,
            acquired: run.version,
            ttl: this.chunkExpiresAt(),
          },
          ConditionExpression: 'attribute_not_exists(pk) OR runId = :me',
          ExpressionAttributeValues: { ':me': run.id },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        },
      });
    }
    let freed = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        const out = await this.doc.send(
          new TransactWriteCommand({ TransactItems: items, ReturnConsumedCapacity: this.capacityMode }),
        );
        this.record('commit', out.ConsumedCapacity);
        this.known.set(
          run.id,
          stored.version,
          { events: pending, listed: was.listed, eventSeq: stored.eventSeq, refs },
          runItem,
        );
        return stored;
      } catch (err) {
        if (!(err instanceof TransactionCanceledException)) throw this.translate(err, run.id);
        const reasons = err.CancellationReasons ?? [];
        if (reasons[0]?.Code === 'ConditionalCheckFailed') {
          this.known.delete(run.id);
          throw new ConcurrencyError(`run ${run.id} changed since version ${expectedVersion}`, {
            runId: run.id,
            cause: err,
          });
        }
        if (lockIndex >= 0 && reasons[lockIndex]?.Code === 'ConditionalCheckFailed') {
          const old = oldItem(reasons[lockIndex]) ?? {};
          if (freed < MAX_STALE_LOCKS && (await this.freeStaleLock(input.acquireLock!, old)) === 'freed') {
            freed++;
            continue;
          }
          throw new SubjectLockedError(
            `subject ${input.acquireLock} already has an active run ${String(old.runId)}`,
            { activeRunId: String(old.runId) },
          );
        }
        this.refuseInvalid(reasons, run.id, err);
        if (await this.retryLater(reasons, attempt, run.id, err)) continue;
        if (attempt < 8 && reasons.some((r) => r.Code === 'TransactionConflict')) {
          await backoff(attempt);
          continue;
        }
        throw new ConcurrencyError(`could not commit run ${run.id}: ${describe(reasons)}`, {
          runId: run.id,
          cause: err,
        });
      }
    }
  }

  /** A write of the run that adds no events (a lease): its pending events stay as they are. */
  async update(run: Run, expectedVersion: number): Promise<Run> {
    const was = await this.knownItem(run.id, expectedVersion, run.eventSeq);
    const { chunks, refs, itemWith } = this.runItems(run, was.listed, was.refs);
    const item = itemWith(was.events);
    await this.putChunks(run.id, chunks);
    await this.putRun(run.id, item, expectedVersion, 'update');
    this.known.set(run.id, run.version, { ...was, refs }, item);
    return run;
  }

  /**
   * Lease step `seq` of the run at `version` in one conditional UpdateItem, with no read of the run
   * first: the version goes up by one and `lease` is set; the run is `running` as of `at` (one
   * plain attribute over the packed body, `la`, until the next write of the whole item). The
   * condition is what `onArrival` would find for a first try of a step scheduled by `version`: the
   * run is still at that version (so the step is its pending step, as that version wrote it), and
   * holds no lease of this step (a takeover, or a step under way, is `onArrival`'s to judge).
   * Returns the run as it is after the write (`leased`), or as the refused condition found it (not
   * leased: the caller judges it as a read), or null when there is no run. A try of this very
   * write, applied but unanswered and retried by the SDK, counts as leased.
   */
  async leaseStep(
    runId: string,
    step: { seq: number; version: number; lease: Lease; at: string },
  ): Promise<{ run: Run; leased: boolean } | null> {
    const at = Date.parse(step.at);
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: runPk(runId), sk: RUN_SK },
          UpdateExpression: 'SET #v = :next, #lease = :lease, #la = :at',
          ConditionExpression: '#v = :v AND (attribute_not_exists(#lease) OR #lease.#seq <> :seq)',
          ExpressionAttributeNames: { '#v': 'version', '#lease': 'lease', '#la': LEASED_AT, '#seq': 'seq' },
          ExpressionAttributeValues: {
            ':v': step.version,
            ':next': step.version + 1,
            ':lease': step.lease,
            ':at': at,
            ':seq': step.seq,
          },
          ReturnValues: 'ALL_NEW',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          ReturnConsumedCapacity: this.capacityMode,
        }),
      );
      this.record('update', out.ConsumedCapacity);
      const [run] = await this.fromItems([out.Attributes!]);
      return { run: run!, leased: true };
    } catch (err) {
      if (!isConditionalFailure(err)) throw this.translate(err, runId);
      const old = oldItem(err as { Item?: Record<string, AttributeValue> });
      if (!old || this.expired(old)) return null;
      const [run] = await this.fromItems([old]);
      // Our own earlier try: the version it wrote, with our lease and time (a lease's owner is
      // unique to it, steps.ts `leaseOwner`).
      const mine =
        old.version === step.version + 1 && isDeepStrictEqual(old.lease, step.lease) && old[LEASED_AT] === at;
      return { run: run!, leased: mine };
    }
  }

  /**
   * Put the run item, conditional on the version it replaces: ConcurrencyError when the run is
   * no longer at that version, unless what is there is this very item (isOwnWrite: an earlier
   * try of this put, applied but unanswered).
   */
  private async putRun(runId: string, item: Item, expectedVersion: number, op: string): Promise<void> {
    try {
      // Through the client itself, as getRun reads.
      const out = await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: marshall(item, MARSHALL),
          ConditionExpression: '#v = :expected',
          ExpressionAttributeNames: { '#v': 'version' },
          ExpressionAttributeValues: marshall({ ':expected': expectedVersion }),
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          ReturnConsumedCapacity: this.capacityMode,
        }),
      );
      this.record(op, out.ConsumedCapacity);
    } catch (err) {
      if (!isConditionalFailure(err)) throw this.translate(err, runId);
      if (isOwnWrite(err, item)) return;
      this.known.delete(runId);
      throw new ConcurrencyError(`run ${runId} changed since version ${expectedVersion}`, {
        runId,
        cause: err,
      });
    }
  }

  async retire(run: Run): Promise<void> {
    await this.indexActive(run, false);
  }

  async unretire(run: Run): Promise<void> {
    await this.indexActive(run, true);
  }

  /**
   * Take the run at this version out of the active index, or put it back (only when it is out):
   * nothing when it moved on (a retried run is active again; a newer version is reported as any).
   */
  private async indexActive(run: Run, active: boolean): Promise<void> {
    const { gsi1pk, gsi1sk } = this.keysOf(run);
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: runPk(run.id), sk: RUN_SK },
          UpdateExpression: active ? 'SET gsi1pk = :pk, gsi1sk = :sk' : 'REMOVE gsi1pk, gsi1sk',
          ConditionExpression: active ? '#v = :v AND attribute_not_exists(gsi1pk)' : '#v = :v',
          ExpressionAttributeNames: { '#v': 'version' },
          ExpressionAttributeValues: {
            ':v': run.version,
            ...(active ? { ':pk': gsi1pk, ':sk': gsi1sk } : {}),
          },
          ReturnConsumedCapacity: this.capacityMode,
        }),
      );
      this.record(active ? 'unretire' : 'retire', out.ConsumedCapacity);
    } catch (err) {
      if (isConditionalFailure(err)) return;
      throw this.translate(err, run.id);
    }
  }

  /**
   * An audit event goes after the last committed event and before the next (auditSeq), so a
   * reader that has seen any committed event and lists after it never skips one. It is one put of
   * its own item, and the run is read again after it: a commit that added events between the first
   * read and the put may have let a reader page past the event's place. Then the event is written
   * again after them and the first copy deleted; both copies carry the same `aid`, and listEvents
   * keeps only the later one (a crash between the two writes, or a failed delete, leaves both, and
   * a reader sees one).
   * A commit never waits for or loses to an audit event. (The transaction this replaces, the put
   * and a condition check of the run item's eventSeq, was billed twice the run item's size and
   * the event's, 4-6 write units, and again whenever a commit landed first.)
   */
  async appendEvent(runId: string, event: NewEvent): Promise<void> {
    const at = event.at ?? this.now().toISOString();
    const aid = randomUUID();
    /** The sort key of the copy written last, and the committed event it follows. */
    let placed: { sk: string; last: number } | undefined;
    for (let attempt = 0; ; attempt++) {
      const runItem = await this.item(runId, { pk: runPk(runId), sk: RUN_SK }, [
        'eventSeq',
        'ttl',
        ABANDONED,
      ]);
      if (!runItem || this.expired(runItem) || isAbandoned(runItem)) throw new RunNotFoundError({ runId });
      const last = (runItem.eventSeq as number) - 1;
      if (placed?.last === last) return;
      if (attempt >= 10) {
        // Kept where it is, when commits keep landing: only a reader that paged past its place in
        // the meantime misses it (on its next full read it is there).
        if (placed) return;
        throw new ConcurrencyError(`could not append an event to run ${runId}: its place kept being taken`, {
          runId,
        });
      }
      // The n-th audit event after `last` (a read, not a counter write): the put below is
      // conditional on its key, so two concurrent writers cannot take the same n.
      const prev = await this.read(runId, () =>
        this.doc.send(
          new QueryCommand({
            TableName: this.tableName,
            KeyConditionExpression: 'pk = :pk AND begins_with(sk, :p)',
            ExpressionAttributeValues: { ':pk': runPk(runId), ':p': auditPrefix(last) },
            ScanIndexForward: false,
            Limit: 1,
            ConsistentRead: true,
            ProjectionExpression: 'sk',
          }),
        ),
      );
      const prevSk = prev.Items?.[0]?.sk;
      const n = typeof prevSk === 'string' ? Number(prevSk.slice(auditPrefix(last).length)) + 1 : 1;
      const sk = auditSk(last, n);
      const item: Item = {
        pk: runPk(runId),
        sk,
        seq: auditSeq(last, n),
        audit: true,
        aid,
        at,
        type: event.type,
        ...(event.node !== undefined ? { node: event.node } : {}),
        ...(event.by !== undefined ? { by: event.by } : {}),
        detail: event.detail,
        ttl: this.expiresAt(),
      };
      try {
        await this.doc.send(
          new PutCommand({
            TableName: this.tableName,
            Item: item,
            ConditionExpression: 'attribute_not_exists(sk)',
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          }),
        );
      } catch (err) {
        if (!isConditionalFailure(err)) throw this.translate(err, runId);
        // Unless it is this put's own earlier try (applied, its answer lost), another audit event
        // took n: again.
        if (!isOwnWrite(err, item)) {
          await backoff(attempt);
          continue;
        }
      }
      if (placed) await this.deleteAudit(runId, placed.sk);
      placed = { sk, last };
    }
  }

  /**
   * Delete an audit event's earlier copy (it has been written again, later). Best effort: a copy
   * left behind is listed once all the same (`aid`), while failing here would have the caller
   * append the event again, as a second event.
   */
  private async deleteAudit(runId: string, sk: string): Promise<void> {
    await this.doc
      .send(new DeleteCommand({ TableName: this.tableName, Key: { pk: runPk(runId), sk } }))
      .catch(() => undefined);
  }

  /**
   * Where to read from for events after `after`: the commit item that holds event `floor(after)`
   * (a commit's events share one item, keyed by its first event), found by reading backwards over
   * at most a page of audit items. Everything after `after` sorts after that item: the audit events
   * written after event `floor(after)` (`EVT#<floor(after)>#<n>`) sort BEFORE the commit item of
   * `floor(after) + 1`, so starting there would skip them (the `/hold` line missing from a status
   * comment). The item found is returned whole (the backward read paid for it already) and the
   * forward read starts after it, so a reader reads each item once.
   */
  private async eventsFrom(runId: string, after: number | undefined): Promise<{ head?: Item; from: string }> {
    if (after === undefined || after < 0) return { from: eventSk(0) };
    const res = await this.read(runId, () =>
      this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk AND sk BETWEEN :from AND :to',
          ExpressionAttributeValues: {
            ':pk': runPk(runId),
            ':from': eventSk(0),
            ':to': eventSk(Math.floor(after)),
          },
          ScanIndexForward: false,
          Limit: 50,
          ConsistentRead: true,
        }),
      ),
    );
    // Audit items met on the way down hold events before `floor(after)`: already read.
    const head = (res.Items ?? []).find((i) => i.audit !== true);
    return typeof head?.sk === 'string' ? { head, from: head.sk } : { from: eventSk(0) };
  }

  /**
   * The run's events after `after`, in order: its history items and the events pending in its run
   * item (see commit). The run item is read FIRST: its pending events are the newest committed,
   * and a flush after that read writes them (or more) to history, which is read next; read the
   * other way round, events flushed in between would be in neither. An event in both is one.
   *
   * History items sort by their first event, and a list of flushed events can span audit events
   * written meanwhile (`EVT#<last>#<n>`, after the list's item): what is read is sorted by seq.
   * Every event of an item not yet read has a seq above the leading number of the last item's key,
   * so with a `limit` the read stops once that many events are known up to there.
   */
  async listEvents(runId: string, opts: ListEventsOptions = {}): Promise<RunEvent[]> {
    const limit = opts.limit ?? Number.POSITIVE_INFINITY;
    if (limit <= 0) return [];
    const { after } = opts;
    // The run item as of one read: its pending events, and the seq its next event would take.
    // A version the caller has just read is often known here already (the read or write of it
    // kept its pending events): the run item is then not read again.
    const known = opts.version !== undefined ? this.known.get(runId, opts.version) : undefined;
    let pending: StoredEvent[] = [];
    let nextSeq = Number.POSITIVE_INFINITY;
    if (known) {
      pending = known.events;
      nextSeq = known.eventSeq;
    } else {
      const runItem = await this.item(runId, { pk: runPk(runId), sk: RUN_SK }, [BODY, 'ttl', 'eventSeq']);
      if (runItem && !this.expired(runItem)) {
        pending = pendingIn(runItem);
        if (typeof runItem.eventSeq === 'number') nextSeq = runItem.eventSeq;
      }
    }
    const found = new Map<number, Item>();
    // Events the run had not committed when it was read are left out, audit events placed after
    // them too: listing one without the commit before it would let the reader's next read, which
    // goes on after it, skip that commit's events.
    const add = (e: Item) => {
      const seq = e.seq as number;
      if ((after === undefined || seq > after) && seq < nextSeq && !found.has(seq)) found.set(seq, e);
    };
    for (const e of pending) add(e);
    let readThrough = Number.NEGATIVE_INFINITY;
    const take = (item: Item) => {
      if (!this.expired(item)) for (const e of eventsIn(item)) add(e);
      readThrough = leadingSeq(item.sk as string);
    };
    const enough = () => {
      let n = 0;
      for (const seq of found.keys()) if (seq <= readThrough) n++;
      return n >= limit;
    };
    const result = (partial: boolean) =>
      latestCopies([...found.values()])
        .filter((e) => !partial || (e.seq as number) <= readThrough)
        .sort((a, b) => (a.seq as number) - (b.seq as number))
        .slice(0, limit)
        .map(toRunEvent);

    // Every committed event after `after` is pending: only audit events, and events flushed since
    // the run item was read, can be in history after it.
    const tail =
      after !== undefined && after >= 0 && pending.length > 0 && pending[0]!.seq <= Math.floor(after) + 1;
    const { head, from } = tail
      ? { head: undefined, from: auditPrefix(Math.floor(after)) }
      : await this.eventsFrom(runId, after);
    if (head) {
      take(head);
      if (enough()) return result(true);
    }
    // With a head item, the forward read starts just after it (it was read on the way down).
    let startKey: Record<string, unknown> | undefined = head ? { pk: head.pk, sk: head.sk } : undefined;
    do {
      const res = await this.read(runId, () =>
        this.doc.send(
          new QueryCommand({
            TableName: this.tableName,
            // '~' sorts after '#', so audit events after the last committed one are included
            KeyConditionExpression: 'pk = :pk AND sk BETWEEN :from AND :to',
            // Start at the item holding `after` (an item holds several events): a page after a
            // cursor reads only what follows it, not the whole history again.
            ExpressionAttributeValues: { ':pk': runPk(runId), ':from': from, ':to': sortKeys.eventsEnd },
            ConsistentRead: true,
            ExclusiveStartKey: startKey,
          }),
        ),
      );
      for (const item of res.Items ?? []) {
        take(item);
        if (enough()) return result(true);
      }
      startKey = res.LastEvaluatedKey;
    } while (startKey);
    return result(false);
  }

  async listRuns(query: ListRunsQuery): Promise<Run[]> {
    const limit = Math.min(Math.max(query.limit ?? 50, 1), 500);
    const wanted = (r: Run) =>
      (query.status === undefined || r.status === query.status) &&
      (query.repo === undefined || r.subject.repo?.toLowerCase() === query.repo.toLowerCase()) &&
      (query.subject === undefined || normalizeKey(r.subject.key) === normalizeKey(query.subject));

    let partitions: Array<{ index: string; pkName: string; pk: string }>;
    if (query.subject !== undefined) {
      partitions = [{ index: INDEXES.subject.name, pkName: 'gsi2pk', pk: itemKeys.subject(query.subject) }];
    } else if (query.repo !== undefined) {
      partitions = [{ index: INDEXES.repo.name, pkName: 'gsi3pk', pk: itemKeys.repo(query.repo) }];
    } else if (query.status !== undefined && !isTerminal(query.status)) {
      partitions = [{ index: INDEXES.active.name, pkName: 'gsi1pk', pk: itemKeys.active }];
    } else {
      // Newest first across monthly partitions of the "recent" index, back as far as retention.
      const months: string[] = [];
      const d = this.now();
      const count = Math.ceil(this.retentionSeconds / (86_400 * 28)) + 1;
      for (let i = 0; i < count; i++) {
        months.push(new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - i, 1)).toISOString().slice(0, 7));
      }
      partitions = months.map((m) => ({
        index: INDEXES.recent.name,
        pkName: 'gsi4pk',
        pk: itemKeys.recent(m),
      }));
    }

    const out: Run[] = [];
    for (const p of partitions) {
      let startKey: Record<string, unknown> | undefined;
      // Bounded paging: a filter (status) may skip items, but never read without limit.
      for (let page = 0; page < 20 && out.length < limit; page++) {
        const res = await this.read('listRuns', () =>
          this.doc.send(
            new QueryCommand({
              TableName: this.tableName,
              IndexName: p.index,
              KeyConditionExpression: '#pk = :pk',
              ExpressionAttributeNames: { '#pk': p.pkName },
              ExpressionAttributeValues: { ':pk': p.pk },
              ScanIndexForward: false,
              Limit: Math.min(100, limit * 2),
              ExclusiveStartKey: startKey,
            }),
          ),
        );
        const runs = await this.batchGetRuns((res.Items ?? []).map((i) => i.pk as string));
        for (const r of runs) if (wanted(r) && out.length < limit) out.push(r);
        startKey = res.LastEvaluatedKey;
        if (!startKey) break;
      }
      if (out.length >= limit) break;
    }
    return out;
  }

  async listActive(limit = 1000): Promise<Run[]> {
    const keys = await this.queryAll(
      {
        TableName: this.tableName,
        IndexName: INDEXES.active.name,
        KeyConditionExpression: 'gsi1pk = :a',
        ExpressionAttributeValues: { ':a': itemKeys.active },
      },
      limit,
    );
    return this.batchGetRuns(keys.map((k) => k.pk as string));
  }

  async listActivePage(opts: { limit?: number; cursor?: string } = {}): Promise<ActivePage> {
    const limit = Math.min(Math.max(opts.limit ?? 200, 1), 1000);
    let startKey: Record<string, unknown> | undefined;
    if (opts.cursor) {
      try {
        startKey = JSON.parse(Buffer.from(opts.cursor, 'base64url').toString('utf8')) as Record<
          string,
          unknown
        >;
      } catch {
        throw new StoreError('malformed active-run cursor');
      }
    }
    const res = await this.read('listActivePage', () =>
      this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: INDEXES.active.name,
          KeyConditionExpression: 'gsi1pk = :a',
          ExpressionAttributeValues: { ':a': itemKeys.active },
          Limit: limit,
          ExclusiveStartKey: startKey,
        }),
      ),
    );
    const runs = await this.batchGetRuns((res.Items ?? []).map((i) => i.pk as string));
    return {
      runs,
      ...(res.LastEvaluatedKey
        ? { cursor: Buffer.from(JSON.stringify(res.LastEvaluatedKey), 'utf8').toString('base64url') }
        : {}),
    };
  }

  /** Read runs by partition key, in the order given (index order), 100 at a time. */
  private async batchGetRuns(listed: string[]): Promise<Run[]> {
    const pks = [...new Set(listed)];
    const found = new Map<string, Item>();
    for (const item of await this.batchGet(
      'runs',
      pks.map((pk) => ({ pk, sk: RUN_SK })),
    ))
      found.set(item.pk as string, item);
    const items = pks
      .map((pk) => found.get(pk))
      .filter((i): i is Item => !!i && !this.expired(i) && !isAbandoned(i));
    return this.fromItems(items);
  }

  /** Items by key, 100 a request, strongly consistent unless `consistent` is false, in no particular order. */
  private async batchGet(what: string, keys: Item[], opts: { consistent?: boolean } = {}): Promise<Item[]> {
    const out: Item[] = [];
    for (let i = 0; i < keys.length; i += 100) {
      let batch: Item[] | undefined = keys.slice(i, i + 100);
      for (let attempt = 0; batch && batch.length > 0; attempt++) {
        const res = await this.read(what, () =>
          this.doc.send(
            new BatchGetCommand({
              RequestItems: { [this.tableName]: { Keys: batch, ConsistentRead: opts.consistent ?? true } },
            }),
          ),
        );
        out.push(...(res.Responses?.[this.tableName] ?? []));
        batch = res.UnprocessedKeys?.[this.tableName]?.Keys as Item[] | undefined;
        if (batch?.length) await backoff(attempt);
      }
    }
    return out;
  }

  private async queryAll(input: QueryCommandInput, limit?: number): Promise<Item[]> {
    const out: Item[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const res = await this.read(String(input.IndexName ?? input.TableName), () =>
        this.doc.send(
          new QueryCommand({
            ...input,
            ExclusiveStartKey: startKey,
            ...(limit !== undefined ? { Limit: limit - out.length } : {}),
          }),
        ),
      );
      out.push(...(res.Items ?? []));
      startKey = res.LastEvaluatedKey;
    } while (startKey && (limit === undefined || out.length < limit));
    return out;
  }

  /**
   * The report item, and the run item beside it in ONE strongly consistent Query (the two sort
   * next to each other, `REPORT` and `RUN`; a read is billed per 4 KB of what it returns, so it
   * costs what the report item's GetItem did while the run item is small): a retired run's version
   * counts as reported, since retiring completes the report of a final state (Reporting).
   */
  async getReportState(runId: string): Promise<ReportState> {
    const items = await this.queryAll({
      TableName: this.tableName,
      KeyConditionExpression: 'pk = :pk AND sk BETWEEN :report AND :run',
      ExpressionAttributeValues: { ':pk': runPk(runId), ':report': REPORT_SK, ':run': RUN_SK },
      ConsistentRead: true,
    });
    const item = items.find((i) => i.sk === REPORT_SK);
    const runItem = items.find((i) => i.sk === RUN_SK && !this.expired(i) && !isAbandoned(i));
    const retired = runItem !== undefined && runItem.gsi1pk === undefined;
    const completed = typeof item?.reported === 'number' ? item.reported : 0;
    const failed = item?.failedReporters;
    return {
      reported: retired ? Math.max(completed, runItem.version as number) : completed,
      // A retired run holds no claim: the report that retired it leaves its claim to lapse.
      ...(retired ? { retired } : {}),
      ...(!retired && typeof item?.claimUntil === 'string' ? { claimUntil: item.claimUntil } : {}),
      ...(!retired && typeof item?.claimOwner === 'string' ? { claimOwner: item.claimOwner } : {}),
      ...(failed instanceof Set && failed.size > 0
        ? { failedReporters: [...failed].map(String).sort() }
        : {}),
      ...this.notesOf(item?.notes),
    };
  }

  /** The reporters' notes as stored (a map of strings), or nothing. */
  private notesOf(value: unknown): { notes?: ReportNotes } {
    if (!value || typeof value !== 'object') return {};
    const notes = Object.fromEntries(
      Object.entries(value as Record<string, unknown>).filter(
        (e): e is [string, string] => typeof e[1] === 'string',
      ),
    );
    return Object.keys(notes).length > 0 ? { notes } : {};
  }

  async claimReport(
    runId: string,
    version: number,
    owner: string,
    until: string,
    now: string,
    opts: { ifReported?: number } = {},
  ): Promise<boolean> {
    // `ifReported`: the caller read the state (and its notes) with no claim on it, and the notes
    // hold only while nothing was claimed or completed since (a lapsed claim stays on the item).
    const unchanged = opts.ifReported !== undefined;
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: runPk(runId), sk: REPORT_SK },
          UpdateExpression: 'SET claimOwner = :o, claimUntil = :u, #ttl = :ttl',
          ConditionExpression: `(attribute_not_exists(reported) OR reported < :v) AND (attribute_not_exists(claimUntil) OR claimUntil < :now)${
            unchanged ? ' AND reported = :r AND attribute_not_exists(claimOwner)' : ''
          }`,
          ExpressionAttributeNames: { '#ttl': TABLE_KEYS.ttl },
          ExpressionAttributeValues: {
            ':o': owner,
            ':u': until,
            ':v': version,
            ':now': now,
            ':ttl': this.expiresAt(),
            ...(unchanged ? { ':r': opts.ifReported } : {}),
          },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionalFailure(err)) return false;
      throw this.translate(err, runId);
    }
  }

  async completeReport(
    runId: string,
    version: number,
    owner: string,
    opts: {
      notes?: ReportNotes;
      next?: { version: number; until: string };
      unclaimed?: { reported: number };
    } = {},
  ): Promise<boolean> {
    const { notes, next, unclaimed } = opts;
    if (next && next.version <= version)
      throw new StoreValidationError(`report claim must move forward: ${next.version} after ${version}`, {
        runId,
      });
    // One write for what used to be two: the completion of `version` and, with `next`, the claim
    // of the newer version (the claim never leaves the owner, so nobody can report in between).
    const set = ['reported = :v'];
    const remove: string[] = [];
    // `:o` only where an expression names it (DynamoDB refuses a value no expression uses).
    const values: Record<string, unknown> = { ':v': version, ...(unclaimed && !next ? {} : { ':o': owner }) };
    const names: Record<string, string> = {};
    if (next) {
      set.push('claimUntil = :u');
      values[':u'] = next.until;
      if (unclaimed) set.push('claimOwner = :o');
    } else if (!unclaimed) remove.push('claimOwner', 'claimUntil');
    let condition = 'claimOwner = :o';
    if (unclaimed) {
      // Claimed in the run's commit: nobody claimed or completed a report since the state was read
      // (a claim stays on the item until completed or reopened, and either moves `reported`). The
      // item may be new: it expires as a claimed one does.
      condition = `attribute_not_exists(claimOwner) AND ${
        unclaimed.reported === 0 ? '(attribute_not_exists(reported) OR reported = :r)' : 'reported = :r'
      }`;
      values[':r'] = unclaimed.reported;
      set.push('#ttl = :ttl');
      names['#ttl'] = TABLE_KEYS.ttl;
      values[':ttl'] = this.expiresAt();
    }
    if (notes && Object.keys(notes).length > 0) {
      set.push('notes = :n');
      values[':n'] = notes;
    } else if (notes) remove.push('notes');
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: runPk(runId), sk: REPORT_SK },
          UpdateExpression: `SET ${set.join(', ')}${remove.length > 0 ? ` REMOVE ${remove.join(', ')}` : ''}`,
          ConditionExpression: condition,
          ...(Object.keys(names).length > 0 ? { ExpressionAttributeNames: names } : {}),
          ExpressionAttributeValues: values,
        }),
      );
      return true;
    } catch (err) {
      if (isConditionalFailure(err)) return false; // our claim lapsed; whoever holds it now reports
      throw this.translate(err, runId);
    }
  }

  async reopenReport(runId: string, version: number): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: runPk(runId), sk: REPORT_SK },
          // The notes described what a newer report showed; a stalled writer may have replaced it.
          UpdateExpression: 'SET reported = :v REMOVE claimOwner, claimUntil, notes',
          ConditionExpression:
            'attribute_exists(pk) AND (attribute_not_exists(reported) OR reported > :v OR attribute_exists(claimOwner))',
          ExpressionAttributeValues: { ':v': version },
        }),
      );
    } catch (err) {
      if (isConditionalFailure(err)) return; // nothing newer was reported: nothing to reopen
      throw this.translate(err, runId);
    }
  }

  async markReporterFailed(runId: string, reporter: string): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: runPk(runId), sk: REPORT_SK },
          UpdateExpression: 'ADD failedReporters :r SET #ttl = :ttl',
          ExpressionAttributeNames: { '#ttl': TABLE_KEYS.ttl },
          ExpressionAttributeValues: { ':r': new Set([reporter]), ':ttl': this.expiresAt() },
        }),
      );
    } catch (err) {
      throw this.translate(err, runId);
    }
  }

  async getEffect(runId: string, effect: EffectRef): Promise<{ result: unknown } | undefined> {
    const item = await this.effectItem(runId, effectKeys.of(effect));
    return item?.state === EFFECT_DONE ? { result: item.result ?? null } : undefined;
  }

  private effectItem(runId: string, key: string): Promise<Item | undefined> {
    return this.item(runId, { pk: runPk(runId), sk: key });
  }

  /**
   * Claim an effect: ONE conditional put of the journal item, then a strongly consistent read of
   * the run that checks the step's lease is still the fence's. Not a transaction with a check of
   * the run item: that check is billed like a write of the whole run item, twice (a transaction),
   * and the claim's own condition orders claimants already.
   *
   * - The claim carries its lease's version (`claimVersion`), and only replaces a pending claim of
   *   the same or an older lease: a takeover (a newer lease) can claim over a worker that stopped,
   *   and a worker whose lease was taken over can never claim over the takeover's claim.
   * - The lease is checked AFTER the claim is in place. A worker that lost its lease before that
   *   read never acts (its claim stays pending, and the next claimant is told it was
   *   interrupted, which only makes it look up what was done). One that loses it after the read is
   *   the case the transaction had too: its lease held when it claimed, and a takeover that claims
   *   next is told the effect was interrupted.
   * - A recorded effect refuses the put and comes back with it (`ALL_OLD` on failure), so the
   *   claim needs no read of the journal item first.
   */
  async claimEffect(
    runId: string,
    effect: EffectRef,
    fence: LeaseFence,
    claim: string,
  ): Promise<EffectClaim> {
    const key = effectKeys.of(effect);
    let replaced: Item | undefined;
    try {
      const out = await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            pk: runPk(runId),
            sk: key,
            state: EFFECT_PENDING,
            claim,
            claimVersion: fence.version,
            ttl: this.expiresAt(),
          },
          // Claims written before claimVersion existed are replaced as any older claim is.
          ConditionExpression:
            'attribute_not_exists(pk) OR (#state = :pending AND (attribute_not_exists(#cv) OR #cv <= :v))',
          ExpressionAttributeNames: { '#state': 'state', '#cv': 'claimVersion' },
          ExpressionAttributeValues: { ':pending': EFFECT_PENDING, ':v': fence.version },
          ReturnValues: 'ALL_OLD',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          ReturnConsumedCapacity: this.capacityMode,
        }),
      );
      this.record('effect.claim', out.ConsumedCapacity);
      replaced = out.Attributes;
    } catch (err) {
      if (!isConditionalFailure(err)) throw this.translate(err, runId);
      const seen = oldItem(err as { Item?: Record<string, AttributeValue> });
      if (seen?.state === EFFECT_DONE) return { outcome: 'done', result: seen.result ?? null };
      throw new ConcurrencyError(
        `effect ${key} not claimed: a newer lease of run ${runId}'s step claimed it`,
        {
          runId,
          cause: err,
        },
      );
    }
    if (!(await this.leaseHolds(runId, fence))) {
      throw new ConcurrencyError(`effect ${key} not claimed: run ${runId} lost the step's lease`, { runId });
    }
    return { outcome: 'claimed', interrupted: replaced !== undefined };
  }

  /** Whether the run is still at the fence's version, leased by its owner past its `now`. */
  async leaseHolds(runId: string, fence: LeaseFence): Promise<boolean> {
    const item = await this.item(runId, { pk: runPk(runId), sk: RUN_SK }, ['version', 'lease']);
    const lease = item?.lease as { owner?: unknown; until?: unknown } | undefined;
    return (
      item?.version === fence.version &&
      lease?.owner === fence.owner &&
      typeof lease.until === 'string' &&
      lease.until > fence.now
    );
  }

  /**
   * One conditional update of the journal item, fenced by the claim alone (no lease check, no
   * transaction): a takeover claims again with its own claim, so a worker whose claim was taken
   * cannot record; a worker that acted and lost only its lease records what it did, which the
   * next attempt then finds instead of acting again.
   */
  async recordEffect(runId: string, effect: EffectRef, claim: string, result: unknown): Promise<void> {
    const key = effectKeys.of(effect);
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: runPk(runId), sk: key },
          UpdateExpression: 'SET #state = :done, #result = :r REMOVE #claim',
          ConditionExpression: '#state = :pending AND #claim = :claim',
          ExpressionAttributeNames: { '#state': 'state', '#result': 'result', '#claim': 'claim' },
          ExpressionAttributeValues: {
            ':done': EFFECT_DONE,
            ':pending': EFFECT_PENDING,
            ':claim': claim,
            ':r': result ?? null,
          },
          ReturnConsumedCapacity: this.capacityMode,
        }),
      );
      this.record('effect.record', out.ConsumedCapacity);
    } catch (err) {
      if (isConditionalFailure(err)) {
        throw new ConcurrencyError(`effect ${key} not recorded: run ${runId}'s claim was taken over`, {
          runId,
          cause: err,
        });
      }
      throw this.translate(err, runId);
    }
  }

  async kvGet<T>(
    group: string,
    key: string,
    opts: { consistent?: boolean } = {},
  ): Promise<KvItem<T> | undefined> {
    const item = await this.item(
      `${group}/${key}`,
      { pk: itemKeys.kv(group), sk: itemKeys.kvKey(key) },
      undefined,
      opts.consistent ?? true,
    );
    if (!item || this.expired(item)) return undefined;
    return toKv<T>(item);
  }

  async kvPut<T>(
    group: string,
    key: string,
    value: T,
    opts: { expectedVersion?: number; ttl?: number } = {},
  ): Promise<boolean> {
    const expected = opts.expectedVersion;
    const version = (expected ?? 0) + 1;
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            pk: itemKeys.kv(group),
            sk: itemKeys.kvKey(key),
            value,
            version,
            ...(opts.ttl !== undefined ? { ttl: opts.ttl } : {}),
          },
          ...(expected === undefined
            ? {}
            : expected === 0
              ? // "must not exist" also accepts an item whose TTL has passed but is not yet deleted
                {
                  ConditionExpression: 'attribute_not_exists(pk) OR #ttl < :now',
                  ExpressionAttributeNames: { '#ttl': TABLE_KEYS.ttl },
                  ExpressionAttributeValues: { ':now': this.nowSeconds() },
                }
              : {
                  ConditionExpression: '#v = :v',
                  ExpressionAttributeNames: { '#v': 'version' },
                  ExpressionAttributeValues: { ':v': expected },
                }),
        }),
      );
      return true;
    } catch (err) {
      if (isConditionalFailure(err)) return false;
      throw this.translate(err, `${group}/${key}`);
    }
  }

  async kvDelete(group: string, key: string, opts: { expectedVersion?: number } = {}): Promise<boolean> {
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: { pk: itemKeys.kv(group), sk: itemKeys.kvKey(key) },
          ...(opts.expectedVersion !== undefined
            ? {
                ConditionExpression: '#v = :v',
                ExpressionAttributeNames: { '#v': 'version' },
                ExpressionAttributeValues: { ':v': opts.expectedVersion },
              }
            : {}),
        }),
      );
      return true;
    } catch (err) {
      if (isConditionalFailure(err)) return false;
      throw this.translate(err, `${group}/${key}`);
    }
  }

  async kvList<T>(
    group: string,
    opts: { limit?: number; prefix?: string } = {},
  ): Promise<Array<{ key: string } & KvItem<T>>> {
    const items = await this.queryAll(
      {
        TableName: this.tableName,
        KeyConditionExpression: opts.prefix ? 'pk = :pk AND begins_with(sk, :p)' : 'pk = :pk',
        ExpressionAttributeValues: {
          ':pk': itemKeys.kv(group),
          ...(opts.prefix ? { ':p': itemKeys.kvKey(opts.prefix) } : {}),
        },
        ConsistentRead: true,
      },
      opts.limit,
    );
    return items.filter((i) => !this.expired(i)).map((i) => ({ key: i.sk as string, ...toKv<T>(i) }));
  }

  async kvTransact(writes: KvWrite[]): Promise<{ ok: true } | { ok: false; failed: number[] }> {
    if (writes.length === 0) return { ok: true };
    const items: NonNullable<TransactWriteCommandInput['TransactItems']> = writes.map((w) => {
      const Key = { pk: itemKeys.kv(w.group), sk: itemKeys.kvKey(w.key) };
      if (w.op === 'put') {
        const expected = w.expectedVersion;
        return {
          Put: {
            TableName: this.tableName,
            Item: {
              ...Key,
              value: w.value,
              version: (expected ?? 0) + 1,
              ...(w.ttl !== undefined ? { ttl: w.ttl } : {}),
            },
            ...(expected === undefined
              ? {}
              : expected === 0
                ? {
                    ConditionExpression: 'attribute_not_exists(pk) OR #ttl < :now',
                    ExpressionAttributeNames: { '#ttl': TABLE_KEYS.ttl },
                    ExpressionAttributeValues: { ':now': this.nowSeconds() },
                  }
                : {
                    ConditionExpression: '#v = :v',
                    ExpressionAttributeNames: { '#v': 'version' },
                    ExpressionAttributeValues: { ':v': expected },
                  }),
          },
        };
      }
      if (w.op === 'delete')
        return {
          Delete: {
            TableName: this.tableName,
            Key,
            ...(w.mustExist ? { ConditionExpression: 'attribute_exists(pk)' } : {}),
          },
        };
      // A counter is a plain number in `value`; absent counts as 0. The version moves with it, as
      // with every KV write.
      return {
        Update: {
          TableName: this.tableName,
          Key,
          UpdateExpression: 'SET #val = if_not_exists(#val, :zero) + :by ADD #v :one',
          ExpressionAttributeNames: { '#val': 'value', '#v': 'version' },
          ExpressionAttributeValues: {
            ':zero': 0,
            ':by': w.by,
            ':one': 1,
            ...(w.below !== undefined ? { ':below': w.below } : {}),
          },
          ...(w.below !== undefined
            ? { ConditionExpression: 'attribute_not_exists(#val) OR #val < :below' }
            : {}),
        },
      };
    });
    const id = `${writes[0]!.group}/${writes[0]!.key}`;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.doc.send(new TransactWriteCommand({ TransactItems: items }));
        return { ok: true };
      } catch (err) {
        // DynamoDB Local answers a transaction that waited too long for an item lock with
        // InternalServerError ("will succeed in actual DynamoDB"); DynamoDB's own 500s are
        // retryable too. Both are treated like a conflict.
        const internal = (err as { name?: string }).name === 'InternalServerError';
        if (!internal && !(err instanceof TransactionCanceledException)) throw this.translate(err, id);
        const reasons = err instanceof TransactionCanceledException ? (err.CancellationReasons ?? []) : [];
        const failed = reasons.flatMap((r, i) => (r.Code === 'ConditionalCheckFailed' ? [i] : []));
        if (failed.length > 0) return { ok: false, failed };
        if (reasons.some((r) => r.Code === 'ThrottlingError'))
          throw new ThrottledError(`DynamoDB throttled a KV transaction on ${id}`, { cause: err });
        if (reasons.some((r) => r.Code === 'ValidationError'))
          throw new StoreError(`KV transaction on ${id} is invalid: ${describe(reasons)}`, { cause: err });
        // A conflict with a concurrent transaction on the same keys: try again shortly.
        if (attempt < 8) {
          await backoff(attempt);
          continue;
        }
        throw new ConcurrencyError(`KV transaction on ${id} kept conflicting: ${describe(reasons)}`, {
          runId: id,
          cause: err,
        });
      }
    }
  }

  // Bounded sets in one item (kvJoin/kvLeave/kvMembers): each member is an attribute `m#<member>`
  // holding its note, each set a string set `s#<name>`. One UpdateItem, not a transaction: 1 WRU
  // per KB where a transaction bills 2 per KB per item; and DynamoDB applies concurrent updates of
  // one item one after the other, each judged by its condition, so no version is read or retried.
  // DELETE of a set's last element removes the attribute: an idle set costs no bytes.
  async kvJoin(
    group: string,
    key: string,
    member: string,
    sets: Array<{ name: string; below?: number }>,
    note = '1',
  ): Promise<boolean> {
    const names: Record<string, string> = { '#m': `m#${member}` };
    const values: Record<string, unknown> = { ':note': note };
    const adds: string[] = [];
    const conds = ['attribute_not_exists(#m)'];
    sets.forEach((s, i) => {
      names[`#s${i}`] = `s#${s.name}`;
      adds.push(`#s${i} :mem`);
      if (s.below !== undefined) {
        values[`:b${i}`] = s.below;
        conds.push(`(attribute_not_exists(#s${i}) OR size(#s${i}) < :b${i})`);
      }
    });
    if (adds.length > 0) values[':mem'] = new Set([member]);
    return this.kvUpdate(group, key, {
      UpdateExpression: `SET #m = :note${adds.length > 0 ? ` ADD ${adds.join(', ')}` : ''}`,
      ConditionExpression: conds.join(' AND '),
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    });
  }

  async kvLeave(group: string, key: string, member: string, sets: string[]): Promise<boolean> {
    const names: Record<string, string> = { '#m': `m#${member}` };
    sets.forEach((name, i) => {
      names[`#s${i}`] = `s#${name}`;
    });
    return this.kvUpdate(group, key, {
      UpdateExpression: `REMOVE #m${sets.length > 0 ? ` DELETE ${sets.map((_, i) => `#s${i} :mem`).join(', ')}` : ''}`,
      ConditionExpression: 'attribute_exists(#m)',
      ExpressionAttributeNames: names,
      ...(sets.length > 0 ? { ExpressionAttributeValues: { ':mem': new Set([member]) } } : {}),
    });
  }

  async kvSwap(group: string, key: string, swap: KvSwap): Promise<boolean> {
    // A member cannot take its own place (the update would name its path twice).
    if (swap.from === swap.to) return false;
    const names: Record<string, string> = { '#from': `m#${swap.from}`, '#to': `m#${swap.to}` };
    const values: Record<string, unknown> = { ':note': swap.note };
    const conds = ['attribute_exists(#from)', 'attribute_not_exists(#to)'];
    const sets = ['#to = :note'];
    const removes = ['#from'];
    swap.sets.forEach((s, i) => {
      names[`#s${i}`] = `s#${s.name}`;
      // Exactly as read: as many members, each of them there (a set holds no member twice).
      if (s.was.length === 0) conds.push(`attribute_not_exists(#s${i})`);
      else {
        values[`:n${i}`] = s.was.length;
        conds.push(`size(#s${i}) = :n${i}`);
        s.was.forEach((m, j) => {
          values[`:w${i}_${j}`] = m;
          conds.push(`contains(#s${i}, :w${i}_${j})`);
        });
      }
      if (s.now.length === 0) removes.push(`#s${i}`);
      else {
        values[`:v${i}`] = new Set(s.now);
        sets.push(`#s${i} = :v${i}`);
      }
    });
    return this.kvUpdate(group, key, {
      UpdateExpression: `SET ${sets.join(', ')} REMOVE ${removes.join(', ')}`,
      ConditionExpression: conds.join(' AND '),
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    });
  }

  async kvMembers(
    group: string,
    key: string,
  ): Promise<{ members: Record<string, string>; sets: Record<string, string[]> }> {
    const item = await this.item(`${group}/${key}`, { pk: itemKeys.kv(group), sk: itemKeys.kvKey(key) });
    const members: Record<string, string> = {};
    const sets: Record<string, string[]> = {};
    for (const [name, v] of Object.entries(item ?? {})) {
      if (name.startsWith('m#')) members[name.slice(2)] = String(v);
      else if (name.startsWith('s#') && v instanceof Set) sets[name.slice(2)] = [...v].map(String).sort();
    }
    return { members, sets };
  }

  private async kvUpdate(
    group: string,
    key: string,
    update: Pick<
      UpdateCommandInput,
      'UpdateExpression' | 'ConditionExpression' | 'ExpressionAttributeNames' | 'ExpressionAttributeValues'
    >,
  ): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: itemKeys.kv(group), sk: itemKeys.kvKey(key) },
          ...update,
        }),
      );
      return true;
    } catch (err) {
      if (isConditionalFailure(err)) return false;
      throw this.translate(err, `${group}/${key}`);
    }
  }

  /** Reads translate SDK exceptions too (a throttled read is a ThrottledError, like a throttled write). */
  private async read<T>(id: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw this.translate(err, id);
    }
  }

  /** Turn SDK exceptions into domain errors (the one place that knows SDK error names). */
  private translate(err: unknown, id: string): Error {
    if (err instanceof StoreError) return err;
    const name = (err as { name?: string }).name ?? '';
    if (
      name === 'ProvisionedThroughputExceededException' ||
      name === 'ThrottlingException' ||
      name === 'RequestLimitExceeded'
    ) {
      return new ThrottledError(`DynamoDB throttled a request for ${id} after retries`, { cause: err });
    }
    if (name === 'ValidationException') {
      return new StoreValidationError(`DynamoDB refused a request for ${id}: ${(err as Error).message}`, {
        runId: id,
        cause: err,
      });
    }
    return err instanceof Error ? err : new StoreError(String(err));
  }
}

/** The number a history item's key leads with: `EVT#<seq:8>` or an audit event's `EVT#<seq:8>#<n>`. */
function leadingSeq(sk: string): number {
  return Number(sk.slice(eventSk(0).length - 8, eventSk(0).length));
}

/** The events pending in a run item (read whole, or with `body` projected). */
function pendingIn(item: Item): StoredEvent[] {
  const packed = item[BODY];
  if (!(packed instanceof Uint8Array)) return [];
  return (unpack<Item>(packed)[PENDING] ?? []) as StoredEvent[];
}

/**
 * The events of a history item: a list, packed (packing.ts) or plain (written before lists were
 * packed), or an audit event, which is an item of its own.
 */
function eventsIn(item: Item): Item[] {
  if (item[BODY] instanceof Uint8Array) return unpack<Item[]>(item[BODY]);
  if (Array.isArray(item.events)) return item.events as Item[];
  return [item];
}

function toRunEvent(e: Item): RunEvent {
  return {
    seq: e.seq as number,
    at: e.at as string,
    type: e.type as EventType,
    ...(e.node !== undefined ? { node: e.node as string } : {}),
    ...(e.by !== undefined ? { by: e.by as string } : {}),
    detail: (e.detail ?? {}) as Record<string, unknown>,
  };
}

/**
 * The events without the earlier copies of audit events written again later (appendEvent): of
 * those sharing an `aid`, the one with the highest seq.
 */
function latestCopies(events: Item[]): Item[] {
  const latest = new Map<string, number>();
  for (const e of events)
    if (typeof e.aid === 'string') latest.set(e.aid, Math.max(latest.get(e.aid) ?? -1, e.seq as number));
  if (latest.size === 0) return events;
  return events.filter((e) => typeof e.aid !== 'string' || latest.get(e.aid) === e.seq);
}

/** Write units of a single-item write of `item` (1 per KB, at least 1), `extra` bytes added. */
function writeUnits(item: Item, extra = 0): number {
  return Math.max(1, Math.ceil((dynamoItemBytes(item) + extra) / 1024));
}

/**
 * What a lease adds to a run item: the `lease` map (owner, until, seq) and `la`. Measured at 69
 * bytes with the engine's owners (`w-` and 8 hex digits, `.` and a count); this leaves room for a
 * longer owner.
 */
export const LEASE_BYTES = 80;

/**
 * The write units a layout of `run`'s item commits the run to: this write, and, when the run is
 * left with a step to lease (a step message leases it: leaseStep's UpdateItem adds the lease to
 * this item), that lease and the step's commit after it, both billed on the leased item's size
 * (a write is billed on the larger of the item it replaces and the item it writes). An item a few
 * bytes under a KB would make both of those writes cost two units: flushing its pending events
 * now (a history item written anyway, later) keeps them at one. `least`: the lowest cost there is.
 */
function runWriteCost(run: Run): ((item: Item) => number) & { least: number } {
  const leasedNext = run.step !== undefined && run.lease === undefined && isPending(run, run.step.seq);
  const cost = (item: Item) => writeUnits(item) + (leasedNext ? 2 * writeUnits(item, LEASE_BYTES) : 0);
  return Object.assign(cost, { least: leasedNext ? 3 : 1 });
}

/** What a write of a run item needs of the item it replaces. */
interface KnownItem {
  /** Its pending events. */
  events: StoredEvent[];
  /** Whether it carries the listing indexes' keys (a run created before the listing item). */
  listed: boolean;
  /** The seq its next event takes: a write must go on from it. */
  eventSeq: number;
  /** The refs of its data's chunks (packing.ts): values a write need not store again. */
  refs: Record<string, string>;
}

/**
 * What this process knows of the run items it read or wrote, by run, for the one version it saw
 * last: what the next write of that version needs, without reading the item again. A version is
 * written once, so what is known of it never changes. Least recently used runs go past `maxRuns`.
 */
class KnownItems {
  private readonly runs = new Map<string, { version: number; known: KnownItem; item: Item }>();

  constructor(private readonly maxRuns: number) {}

  get(runId: string, version: number): KnownItem | undefined {
    const hit = this.runs.get(runId);
    return hit?.version === version ? hit.known : undefined;
  }

  /** The item itself, as written or read at `version`. */
  item(runId: string, version: number): Item | undefined {
    const hit = this.runs.get(runId);
    return hit?.version === version ? hit.item : undefined;
  }

  set(runId: string, version: number, known: KnownItem, item: Item): void {
    this.runs.delete(runId);
    this.runs.set(runId, { version, known, item });
    if (this.runs.size > this.maxRuns) {
      const oldest = this.runs.keys().next().value;
      if (oldest !== undefined) this.runs.delete(oldest);
    }
  }

  delete(runId: string): void {
    this.runs.delete(runId);
  }
}

function toKv<T>(item: Item): KvItem<T> {
  return {
    value: item.value as T,
    version: typeof item.version === 'number' ? item.version : 0,
    ...(typeof item.ttl === 'number' ? { ttl: item.ttl } : {}),
  };
}

/** The item a failed condition saw (ReturnValuesOnConditionCheckFailure: ALL_OLD), spares a re-read. */
function oldItem(
  reason: { Item?: Record<string, AttributeValue> | undefined } | undefined,
): Item | undefined {
  return reason?.Item ? unmarshall(reason.Item) : undefined;
}

/**
 * Whether a conditional put refused for its version found the very item it writes: its own
 * earlier try, applied by DynamoDB but whose answer was lost, then retried by the SDK (a
 * transaction's retries share a ClientRequestToken and succeed again; a put's are refused by
 * the condition the first try made false). The item as it is comes with the refusal
 * (ReturnValuesOnConditionCheckFailure: ALL_OLD). Any other writer's item differs: its version
 * or, for the same version, its packed body (the state, its times and its events).
 */
function isOwnWrite(err: unknown, written: Item): boolean {
  const old = oldItem(err as { Item?: Record<string, AttributeValue> });
  // As DynamoDB keeps it (no undefined members), to compare like with like.
  const stored = unmarshall(marshall(written, MARSHALL));
  return old !== undefined && isDeepStrictEqual(old, stored);
}

function isConditionalFailure(err: unknown): boolean {
  return (err as { name?: string }).name === 'ConditionalCheckFailedException';
}

type CancellationReason = { Code?: string | undefined; Message?: string | undefined };

/** Tries of a throttled transaction before a ThrottledError (the SDK does not retry these itself). */
const THROTTLE_RETRIES = 4;

/** 50, 100, 200, 400 ms (±50%): a throttle needs longer than a conflict to clear. */
async function throttleBackoff(attempt: number): Promise<void> {
  const ms = 50 * 2 ** attempt * (0.5 + Math.random());
  await new Promise((r) => setTimeout(r, ms));
}

function describe(reasons: Array<{ Code?: string | undefined }>): string {
  return reasons.map((r) => r.Code ?? '?').join(',');
}

async function backoff(attempt: number): Promise<void> {
  const ms = Math.min(200, 5 * 2 ** attempt) * (0.5 + Math.random());
  await new Promise((r) => setTimeout(r, ms));
}

/** Create the table with its GSIs and TTL if it is missing (the local stack and tests). */
export async function createTable(client: DynamoDBClient, tableName: string): Promise<'created' | 'exists'> {
  const indexes = Object.values(INDEXES);
  let outcome: 'created' | 'exists' = 'created';
  try {
    await client.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: TABLE_KEYS.partitionKey, AttributeType: 'S' },
          { AttributeName: TABLE_KEYS.sortKey, AttributeType: 'S' },
          ...indexes.flatMap((i) => [
            { AttributeName: i.partitionKey, AttributeType: 'S' as const },
            { AttributeName: i.sortKey, AttributeType: 'S' as const },
          ]),
        ],
        KeySchema: [
          { AttributeName: TABLE_KEYS.partitionKey, KeyType: 'HASH' },
          { AttributeName: TABLE_KEYS.sortKey, KeyType: 'RANGE' },
        ],
        GlobalSecondaryIndexes: indexes.map((i) => ({
          IndexName: i.name,
          KeySchema: [
            { AttributeName: i.partitionKey, KeyType: 'HASH' as const },
            { AttributeName: i.sortKey, KeyType: 'RANGE' as const },
          ],
          Projection: { ProjectionType: 'KEYS_ONLY' as const },
        })),
      }),
    );
  } catch (err) {
    if (!(err instanceof ResourceInUseException)) throw err;
    outcome = 'exists';
  }
  await waitUntilTableExists({ client, maxWaitTime: 60 }, { TableName: tableName });
  if (outcome === 'created') {
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { AttributeName: TABLE_KEYS.ttl, Enabled: true },
      }),
    );
  }
  return outcome;
}
