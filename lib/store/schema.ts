import type { EffectRef } from '../engine/ports.ts';

/**
 * The one DynamoDB table behind Switchyard. The CDK stack (infra/) and the local stack
 * (scripts/local-stack.ts) both create it from this description, so they cannot drift.
 *
 * Items (pk / sk):
 *   RUN#<id>      / RUN              the run (versioned; every write conditional)
 *   RUN#<id>      / LIST             the run's keys in the subject, repo and recent indexes, written
 *                                    once when it is created (runs created before keep them on RUN);
 *                                    with its first data chunk's values when they fit (`values`)
 *   RUN#<id>      / EVT#<seq:8>      history events from <seq> on (a packed list), written once they
 *                                    are committed: a commit's events are pending in the run item
 *                                    until a later write of it flushes them here (dynamodb.ts
 *                                    commit); audit events sort after as EVT#<seq>#...
 *   RUN#<id>      / FX#S#<seq:8>#<node>#<name>  effect journal, scope 'step': a side effect of one step
 *                                    (<seq>: the step's first attempt; retries keep it)
 *   RUN#<id>      / FX#R#<name>      effect journal, scope 'run': a side effect shared by the run's steps
 *                                    (both: claimed, then recorded, each write fenced by the step's lease;
 *                                    see `effectKeys` below and lib/engine/effects.ts)
 *   RUN#<id>      / REPORT           the highest version reported, and any live claim on reporting
 *   IDEM#<key>    / IDEM             idempotency key -> run id (delivery id, interaction id)
 *   LOCK#<subject>#<workflow> / LOCK the active run of a subject (exists only while one is active)
 *   KV#<group>    / <key>            small records of other modules: guard state, repo config cache,
 *                                    Discord tokens (15-min TTL) and message bindings, agent work items
 *
 * Keys that carry a repository name use it lowercased (see `itemKeys` below): GitHub names are
 * case-insensitive, so one issue is one subject however a trigger spells it.
 *
 * GSIs (all KEYS_ONLY, written once at creation except gsi1 which is removed when a run is
 * finished and reported; so a transition never pays for index writes). gsi1 is on the run item;
 * gsi2-4 on its LIST item (on the run item for runs created before it):
 *   gsi1 active:  gsi1pk = "ACTIVE" (sparse)        gsi1sk = <createdAt>#<id>
 *   gsi2 subject: gsi2pk = "SUBJ#<subject key>"     gsi2sk = <createdAt>#<id>
 *   gsi3 repo:    gsi3pk = "REPO#<owner/name>"      gsi3sk = <createdAt>#<id>
 *   gsi4 recent:  gsi4pk = "RUNS#<yyyy-mm>"         gsi4sk = <createdAt>#<id>
 */
export const TABLE_KEYS = { partitionKey: 'pk', sortKey: 'sk', ttl: 'ttl' } as const;

export interface IndexDefinition {
  name: string;
  partitionKey: string;
  sortKey: string;
}

export const INDEXES = {
  active: { name: 'gsi1-active', partitionKey: 'gsi1pk', sortKey: 'gsi1sk' },
  subject: { name: 'gsi2-subject', partitionKey: 'gsi2pk', sortKey: 'gsi2sk' },
  repo: { name: 'gsi3-repo', partitionKey: 'gsi3pk', sortKey: 'gsi3sk' },
  recent: { name: 'gsi4-recent', partitionKey: 'gsi4pk', sortKey: 'gsi4sk' },
} as const satisfies Record<string, IndexDefinition>;

/** Finished runs (and their history) are kept this long, then DynamoDB TTL removes them. */
export const DEFAULT_RETENTION_DAYS = 90;

/**
 * GitHub compares repository names case-insensitively, so `Acme/Widget#12` and `acme/widget#12`
 * are one subject. Every key that carries a repository (idempotency, lock, subject and repository
 * indexes, KV records) goes through these builders, which lowercase the repository part (the
 * first `owner/name` field, at the start or after `#` or `:`) and leave the rest as it is:
 * branch names and ids are case-sensitive. The run keeps the name as given, for display.
 */
const REPO_PART = /(^|[#:])([A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+)(?=#|$)/;

/** A key with its repository part lowercased. */
export function normalizeKey(key: string): string {
  return key.replace(REPO_PART, (_, sep: string, repo: string) => `${sep}${repo.toLowerCase()}`);
}

const seq8 = (n: number) => String(n).padStart(8, '0');
const eventsKey = (firstSeq: number) => `EVT#${seq8(firstSeq)}`;
const auditPrefix = (last: number) => `${eventsKey(last)}#`;

/** The partition keys of the table's items and indexes. Those naming a subject or a repository are normalised. */
export const itemKeys = {
  run: (id: string) => `RUN#${id}`,
  idempotency: (key: string) => `IDEM#${normalizeKey(key)}`,
  lock: (key: string) => `LOCK#${normalizeKey(key)}`,
  subject: (key: string) => `SUBJ#${normalizeKey(key)}`,
  repo: (repo: string) => `REPO#${repo.toLowerCase()}`,
  /** The recent-runs index partition of a month (`yyyy-mm`). */
  recent: (month: string) => `RUNS#${month}`,
  /** The active index's one partition. */
  active: 'ACTIVE',
  kv: (group: string) => `KV#${group}`,
  /** A KV record's sort key (its key within the group). */
  kvKey: (key: string) => normalizeKey(key),
} as const;

/** Sort keys of the items that share a partition with others (see the item list above). */
export const sortKeys = {
  run: 'RUN',
  /** The item that lists a run in the subject, repository and month indexes. */
  listing: 'LIST',
  report: 'REPORT',
  idempotency: 'IDEM',
  lock: 'LOCK',
  /** One commit's events, by the sequence number of its first event. */
  events: eventsKey,
  /** Audit events after committed event `last` all sort under this prefix... */
  auditPrefix,
  /** ...the n-th of them (from 1) as this. */
  audit: (last: number, n: number) => `${auditPrefix(last)}${seq8(n)}`,
  /** Sorts after every event item of a run ('~' sorts after the digits and '#'). */
  eventsEnd: 'EVT#~',
  /** A chunk of a run's data (lib/store/packing.ts), by its hash: of its value, or of the values it shares. */
  chunk: (hash: string) => `DATA#${hash}`,
} as const;

/**
 * Sort keys of the effect journal (under the run's partition `RUN#<id>`), from the engine's
 * `EffectRef` (lib/engine/ports.ts): a 'step' effect is keyed by its node and the sequence number
 * of the step's FIRST attempt (which a retry keeps), a 'run' effect by its name alone.
 */
export const effectKeys = {
  step: (node: string, firstSeq: number, name: string) => `FX#S#${seq8(firstSeq)}#${node}#${name}`,
  run: (name: string) => `FX#R#${name}`,
  of: (ref: EffectRef) =>
    ref.scope === 'run' ? effectKeys.run(ref.name) : effectKeys.step(ref.node, ref.firstSeq, ref.name),
} as const;

/**
 * `dynamodb:LeadingKeys` patterns (IAM StringLike) for each kind of partition, so a function's
 * policy can name the item kinds it touches (infra/functions.ts `tableKeys`). A KV group is one
 * partition, `KV#<group>`, named exactly.
 */
export const leadingKeys = {
  runs: 'RUN#*',
  idempotency: 'IDEM#*',
  locks: 'LOCK#*',
  kv: (group: string) => itemKeys.kv(group),
} as const;
