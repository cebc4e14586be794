import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { type AttributeValue, type DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { FUNCTIONS } from '../infra/functions.ts';
import { recoverySweep } from '../lib/app/recovery.ts';
import type { RunEvent } from '../lib/engine/types.ts';
import { invokesDirectly } from '../lib/queue/invoke.ts';
import type { Consumer } from '../lib/queue/memory.ts';
import { InMemoryQueue } from '../lib/queue/memory.ts';
import type { Outgoing, WorkMessage } from '../lib/queue/port.ts';
import { dynamoClient } from '../lib/store/client.ts';
import { DynamoRunStore } from '../lib/store/dynamodb.ts';
import { unpack } from '../lib/store/packing.ts';
import { INDEXES, itemKeys, sortKeys } from '../lib/store/schema.ts';
import type { LocalStack } from '../scripts/local-stack.ts';
import type { RecordedRequest } from '../test/support/fake-github.ts';
import { FakeGitHubActions } from '../test/support/fake-github-actions.ts';
import { FakeOidcIssuer } from '../test/support/fake-oidc.ts';
import {
  configFile,
  issuePayload as githubIssuePayload,
  readyToCoder,
  startStack,
  until as untilWithin,
  webhookHeaders,
} from '../test/support/stack-harness.ts';
import { PRICES, perMillion } from './prices.ts';

/**
 * What one issue-pipeline run really consumes, and what it costs (issue 13, "Cost").
 *
 * The run: an issue with THREE tasks in its checklist is labelled `ready`; the planner plans it,
 * the run waits at the approval gate, is approved, dispatches the three agent workflows (GitHub
 * Actions played by test/support/fake-github-actions.ts), and each workflow does what the
 * reference workflow (examples/switchyard-agent.yml) and GitHub do: GitHub sends `workflow_run`
 * `requested` and `in_progress`, the job reports its result to POST /callbacks/actions with its
 * OIDC token (test/support/fake-oidc.ts), and GitHub sends `workflow_run` `completed`. The run
 * ends `succeeded`. Every comment or label write we make on the issue comes back as the
 * `issue_comment` / `issues` webhook GitHub would send (the app subscribes to both), and is
 * answered by the ingress like any other delivery. All of it on the local stack
 * (scripts/local-stack.ts): the real handlers, the in-process queue and worker, DynamoDB Local.
 * The sweeper is off for the run: on AWS it runs once a minute whatever the traffic, a fixed
 * cost priced separately (`cost.sweeperUsdPerMonth`, from one metered idle pass).
 *
 * What is counted:
 * - DynamoDB: every call through the stack's one DynamoDB client carries
 *   `ReturnConsumedCapacity: INDEXES` (a middleware added here, on the client the store was given;
 *   product code is unchanged). Reads and single-item writes are billed as DynamoDB Local
 *   reports them (it applies AWS's rules to them: 1 WRU per KB of the larger of the old and new
 *   item, 1 per index entry written, 0.5/1 RRU per 4 KB for eventually/strongly consistent reads).
 *   DynamoDB Local does NOT report transactions as AWS bills them (three 100-byte Puts report
 *   2 units, AWS bills 6), so every TransactWriteItems is billed here from the items themselves:
 *   before the call and after it, each item is read (a separate, unmetered client) and billed
 *   2 WRU per KB of the larger image (rounded up per item), plus 2 per KEYS_ONLY index entry
 *   added or removed (4 when an index key changes: delete + put). A ConditionCheck is billed
 *   like a write of the item it checks. A write refused by its condition still costs on AWS;
 *   Local returns no capacity with the error, so such writes are billed from the item's image
 *   before the call (single-item: 1 WRU per KB; transactional: 2 per KB per item). A read that
 *   finds nothing still costs 0.5/1 RRU on AWS, where Local reports 0 for an empty Query: the
 *   minimum is applied.
 * - SQS: every `send` of the queue port is what the deployed queue (lib/queue/invoke.ts) does
 *   with it. A message due now is one asynchronous invocation of the worker and no SQS request.
 *   The delayed ones go to SQS: one SendMessageBatch per 10 messages, each billed per 64 KB chunk
 *   of its payload, and one ReceiveMessage and one DeleteMessage per message the worker takes
 *   (the Lambda event source receives up to 5 at once and deletes in batches: per message is the
 *   upper bound). A direct invocation that fails reaches SQS through the on-failure destination
 *   (one SendMessage), and is received and deleted from there.
 * - Lambda: each message the worker handles is one worker invocation (again the upper bound for
 *   a batch size of 5), its duration the measured wall time of the handling; each HTTP request
 *   is one invocation of the function behind its route, its duration the wall time of the
 *   request on loopback. GB-s at the memory configured in infra/functions.ts; every request to
 *   an ingress function is one API Gateway HTTP API request. The approval is committed through
 *   the engine's `signal` (as the Discord button's handler does) and billed as one invocation of
 *   the Discord function and one API Gateway request, its duration the measured signal call.
 *   A warm-up run goes first, unmetered (a container serving a trickle of runs is warm). Then
 *   three runs (issues 7, 8, 9) are metered one by one, and the one of median engine cost is
 *   reported (`cost.meteredRuns`, with the spread in `cost.*Min` / `cost.*Max`): a run's writes
 *   vary with how the webhooks race its steps (an audit event refused by a commit that landed
 *   first is tried, and billed, again). A fourth run (issue 10) is metered with the store's chunk
 *   read cache off (`cost.readUnitsPerRunChunksUncached`, `cost.ratioVs*ChunksUncached`): the
 *   local stack's functions share one store and one cache, where on AWS an ingress container
 *   reads a run's chunks the first time it reads the run; with none cached is the worst case, and
 *   a deployment's reads sit between the two. A fifth (issue 12, after a warm-up run of its own,
 *   issue 11) is metered as deployed (`cost.*PerFunctionCaches`): each ingress function's
 *   requests go to a local stack of its own (the GitHub webhook, the Actions callback, Discord's
 *   approval), a warm container with its own store and chunk cache, and the main stack runs only
 *   the worker. Wall
 *   times on this shared 2-core machine are inflated by the load, and loopback stand-ins answer
 *   faster than GitHub does: GB-s is the least reliable figure here (hence `orchestration*`).
 *
 * The same graph elsewhere, modelled from the run's own history (same nodes, same loops, same
 * retries). Ingress (API Gateway and the ingress functions) is charged to all three alike, and so
 * is the work itself: the alternatives' task invocations get the measured duration of our steps
 * AND of our report messages (the reporting has to happen somewhere), but no invocation of
 * their own for reporting. Both alternatives are priced at their cheapest honest shape:
 * - Step Functions Standard: one state transition per node step (a node re-entered after a gate
 *   or a retry is entered again; a gate is the same Task with `.waitForTaskToken`, not another
 *   state), no Pass/Choice/Succeed states; one Lambda invocation per task.
 * - Lambda durable functions: one durable operation per node step (a retried or re-entered step
 *   is another) and one per callback waited for (each gate); invocations: the first, plus one
 *   replay per signal that resumed the execution (replays re-run nothing of cost).
 * Neither is charged for storing the task token or callback id that the ingress must look up to
 * resume them (we pay for our equivalent), nor for any DynamoDB or SQS: in their favour, so the
 * ratios are lower bounds.
 *
 * The ratios compare what differs: ours is the engine (DynamoDB, SQS, worker requests:
 * `cost.orchestrationUsdPerThousandRuns`), theirs the state transitions, or the durable
 * operations and invocations, with the invocations of their tasks. The ingress and the node work
 * are the same work in all three, and their GB-s (wall time on this loaded machine) would only
 * dilute the comparison with noise; `cost.totalRatioVs*` give the ratio of everything billed.
 *
 * Figures: cost.usdPerThousandRuns, cost.ratioVsStepFunctionsStandard (their cost ÷ ours),
 * cost.ratioVsDurableFunctions, engine.billedWriteUnitsPerTransition (every write unit the run
 * was billed, ingress and agents' work queue included, per engine transition: a committed step
 * or an accepted signal, `cost.transitionsPerRun`), and the breakdown in the other cost.* keys
 * (`writeUnitsBy.*` / `readUnitsBy.*`: by kind of item, see category()).
 *
 *   npx tsx bench/cost.ts        this suite alone (DYNAMODB_ENDPOINT, or a DynamoDB Local of its own)
 */

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

type Results = Record<string, Record<string, number>>;

const SECRET = 'bench-cost-secret';
const REPO = 'acme/widget';
const ISSUE = 7;
/** Runs metered one after another (issues 7, 8, 9); the one of median engine cost is reported. */
const METERED_RUNS = 3;
/** Three tasks: the planner makes one per unticked checklist item. */
const BODY = [
  '- [ ] Fix the parser in `src/parser.ts`',
  '- [ ] Update `docs/parser.md`',
  '- [ ] Tidy `src/lexer.ts`',
].join('\n');

const memoryGb = (name: string) => {
  const spec = FUNCTIONS.find((f) => f.name === name);
  if (!spec) throw new Error(`no function ${name} in infra/functions.ts`);
  return spec.memoryMb / 1024;
};

// ------------------------------------------------------------------------- DynamoDB meter

const SINGLE_WRITES = new Set(['PutItemCommand', 'UpdateItemCommand', 'DeleteItemCommand']);
const READS = new Set(['GetItemCommand', 'QueryCommand', 'BatchGetItemCommand', 'ScanCommand']);
const ALL = new Set([...SINGLE_WRITES, ...READS, 'TransactWriteItemsCommand', 'BatchWriteItemCommand']);

type Item = Record<string, AttributeValue>;

/**
 * AWS bills a read that finds nothing: a Query or a missing item costs 0.5 RRU (eventually
 * consistent) or 1 (strongly). DynamoDB Local reports 0 for an empty Query and a BatchGetItem of
 * missing items, so the minimum is applied here (per request; per key for BatchGetItem).
 */
function minimumReadUnits(command: string, input: unknown): number {
  const i = input as {
    ConsistentRead?: boolean;
    RequestItems?: Record<string, { Keys?: unknown[]; ConsistentRead?: boolean }>;
  };
  if (command === 'BatchGetItemCommand')
    return Object.values(i.RequestItems ?? {}).reduce(
      (n, t) => n + (t.Keys?.length ?? 0) * (t.ConsistentRead ? 1 : 0.5),
      0,
    );
  return i.ConsistentRead ? 1 : 0.5;
}

/** DynamoDB's item size: attribute names plus values (UTF-8 strings, numbers ~1 byte per 2 digits). */
function valueBytes(v: AttributeValue): number {
  if (v.S !== undefined) return Buffer.byteLength(v.S);
  if (v.N !== undefined) return Math.ceil(v.N.replace(/^-/, '').length / 2) + 1;
  if (v.B !== undefined) return v.B.byteLength;
  if (v.SS) return v.SS.reduce((n, s) => n + Buffer.byteLength(s), 0);
  if (v.NS) return v.NS.reduce((n, s) => n + Math.ceil(s.length / 2) + 1, 0);
  if (v.M) return 3 + itemBytes(v.M);
  if (v.L) return 3 + v.L.reduce((n, x) => n + 1 + valueBytes(x), 0);
  return 1;
}
const itemBytes = (item: Item) =>
  Object.entries(item).reduce((n, [k, v]) => n + Buffer.byteLength(k) + valueBytes(v), 0);
const kb = (bytes: number) => Math.max(1, Math.ceil(bytes / 1024));
const INDEX_KEYS = Object.values(INDEXES).map((i) => [i.partitionKey, i.sortKey] as const);

/** Index entries written when an item goes from `pre` to `post` (KEYS_ONLY: keys only matter). */
function indexWrites(pre: Item | undefined, post: Item | undefined): number {
  let n = 0;
  for (const [pk, sk] of INDEX_KEYS) {
    const before = pre?.[pk] && pre[sk] ? `${pre[pk].S}|${pre[sk].S}` : undefined;
    const after = post?.[pk] && post[sk] ? `${post[pk].S}|${post[sk].S}` : undefined;
    if (before === after) continue;
    n += before && after ? 2 : 1;
  }
  return n;
}

/**
 * The kind of item a key names, for the breakdown: `run` (the run item), `list` (its listing
 * item), `data` (chunks), `events`, `effects`, `report` (under RUN#), `kv.<group>`, and the other
 * partitions by prefix (`idem`, `lock`, ...).
 */
function category(key: Item): string {
  const pk = key.pk?.S ?? '';
  const sk = key.sk?.S ?? '';
  const prefix = pk.split('#')[0]!.toLowerCase();
  if (prefix === 'run') {
    const kind = sk.split('#')[0]!;
    return kind === 'RUN'
      ? 'run'
      : kind === 'EVT'
        ? 'events'
        : kind === 'FX'
          ? 'effects'
          : kind.toLowerCase();
  }
  if (prefix === 'kv') return `kv.${pk.slice(3).split('#')[0]}`;
  return prefix || 'other';
}

interface TxAction {
  table: string;
  key: Item;
  kind: 'Put' | 'Update' | 'Delete' | 'ConditionCheck';
  put?: Item;
}

function txActions(input: Record<string, unknown>): TxAction[] {
  const items = (input.TransactItems ?? []) as Array<Record<string, Record<string, unknown>>>;
  return items.map((t) => {
    const [kind, op] = Object.entries(t)[0] as [TxAction['kind'], Record<string, unknown>];
    const put = kind === 'Put' ? (op.Item as Item) : undefined;
    const key = put ? { pk: put.pk!, sk: put.sk! } : (op.Key as Item);
    return { table: String(op.TableName), key, kind, ...(put ? { put } : {}) };
  });
}

class DynamoMeter {
  on = false;
  readUnits = 0;
  /** Billed write units, by where the figure comes from. */
  reportedWriteUnits = 0;
  transactionWriteUnits = 0;
  refusedWriteUnits = 0;
  /** What DynamoDB Local itself reported for the transactions (for the note: it under-reports). */
  localReportedTransactionUnits = 0;
  calls: Record<string, number> = {};
  /** Billed units by the kind of item (category()), for the breakdown. */
  writesBy: Record<string, number> = {};
  readsBy: Record<string, number> = {};
  private readonly categoryOf = new WeakMap<object, string>();
  private readonly raw: DynamoDBClient;

  constructor(endpoint: string) {
    this.raw = dynamoClient(endpoint);
  }

  reset(): void {
    this.readUnits = 0;
    this.reportedWriteUnits = 0;
    this.transactionWriteUnits = 0;
    this.refusedWriteUnits = 0;
    this.localReportedTransactionUnits = 0;
    this.calls = {};
    this.writesBy = {};
    this.readsBy = {};
  }

  private add(to: Record<string, number>, category: string, units: number): void {
    to[category] = (to[category] ?? 0) + units;
    if (process.env.COST_TRACE && units > 0) {
      const where = (new Error().stack ?? '')
        .split('\n')
        .filter((l) => l.includes('/lib/') && !l.includes('node_modules'))
        .slice(0, Number(process.env.COST_TRACE_DEPTH ?? 3))
        .map((l) =>
          l
            .trim()
            .replace(/^at (async )?/, '')
            .replace(/\(.*\/lib\//, '(')
            .replace(/^.*\/lib\//, ''),
        )
        .join(' < ');
      console.error(`TRACE ${to === this.writesBy ? 'W' : 'R'} ${category} ${units} ${where}`);
    }
  }

  get writeUnits(): number {
    return this.reportedWriteUnits + this.transactionWriteUnits + this.refusedWriteUnits;
  }

  async image(table: string, key: Item): Promise<Item | undefined> {
    const out = await this.raw.send(new GetItemCommand({ TableName: table, Key: key, ConsistentRead: true }));
    return out.Item;
  }

  attach(client: { middlewareStack: DynamoDBClient['middlewareStack'] }): void {
    // Before the document client marshals: ask for the capacity, and read what came back.
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const command = String((context as { commandName?: string }).commandName);
        if (!this.on || !ALL.has(command)) return next(args);
        this.calls[command] = (this.calls[command] ?? 0) + 1;
        (args.input as { ReturnConsumedCapacity?: string }).ReturnConsumedCapacity = 'INDEXES';
        const out = await next(args);
        const cc = (out.output as { ConsumedCapacity?: unknown }).ConsumedCapacity;
        const units = ((Array.isArray(cc) ? cc : cc ? [cc] : []) as Array<{ CapacityUnits?: number }>).reduce(
          (n, c) => n + (c.CapacityUnits ?? 0),
          0,
        );
        const category = this.categoryOf.get(context) ?? 'other';
        if (READS.has(command)) {
          const billed = Math.max(units, minimumReadUnits(command, args.input));
          this.readUnits += billed;
          this.add(this.readsBy, category, billed);
        } else if (command === 'TransactWriteItemsCommand') this.localReportedTransactionUnits += units;
        else {
          this.reportedWriteUnits += units;
          this.add(this.writesBy, category, units);
        }
        return out;
      },
      { step: 'initialize', name: 'benchCostCapacity' },
    );
    // After marshalling: the items as sent, for what Local does not bill as AWS does.
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const command = String((context as { commandName?: string }).commandName);
        if (!this.on) return next(args);
        const input = args.input as Record<string, unknown>;
        if (command === 'TransactWriteItemsCommand') {
          const actions = txActions(input);
          const pre = await Promise.all(actions.map((a) => this.image(a.table, a.key)));
          try {
            const out = await next(args);
            const post = await Promise.all(
              actions.map((a) => (a.kind === 'ConditionCheck' ? undefined : this.image(a.table, a.key))),
            );
            actions.forEach((a, i) => {
              const before = pre[i];
              const after = a.kind === 'ConditionCheck' ? before : post[i];
              const size = Math.max(before ? itemBytes(before) : 0, after ? itemBytes(after) : 0);
              const units = 2 * (kb(size) + (a.kind === 'ConditionCheck' ? 0 : indexWrites(before, after)));
              this.transactionWriteUnits += units;
              this.add(this.writesBy, category(a.key), units);
            });
            return out;
          } catch (err) {
            actions.forEach((a, i) => {
              const size = Math.max(pre[i] ? itemBytes(pre[i]) : 0, a.put ? itemBytes(a.put) : 0);
              this.refusedWriteUnits += 2 * kb(size);
              this.add(this.writesBy, category(a.key), 2 * kb(size));
            });
            throw err;
          }
        }
        if (command === 'QueryCommand') {
          const name = /\bpk\s*=\s*(:\w+)/.exec(String(input.KeyConditionExpression ?? ''))?.[1] ?? '';
          const values = (input.ExpressionAttributeValues ?? {}) as Item;
          const sk = values[':p']?.S ?? values[':from']?.S ?? values[':report']?.S ?? '';
          this.categoryOf.set(
            context,
            input.IndexName
              ? `index.${input.IndexName}`
              : category({ pk: { S: values[name]?.S ?? '' }, sk: { S: sk } }),
          );
        }
        if (command === 'GetItemCommand') this.categoryOf.set(context, category(input.Key as Item));
        if (SINGLE_WRITES.has(command)) {
          const key =
            command === 'PutItemCommand'
              ? { pk: (input.Item as Item).pk!, sk: (input.Item as Item).sk! }
              : (input.Key as Item);
          this.categoryOf.set(context, category(key));
          try {
            return await next(args);
          } catch (err) {
            if ((err as { name?: string }).name === 'ConditionalCheckFailedException') {
              const before = await this.image(String(input.TableName), key);
              this.refusedWriteUnits += kb(before ? itemBytes(before) : 0);
              this.add(this.writesBy, category(key), kb(before ? itemBytes(before) : 0));
            }
            throw err;
          }
        }
        return next(args);
      },
      { step: 'build', name: 'benchCostTransactions' },
    );
  }
}

// ------------------------------------------------------------------------- SQS + worker meter

/** What MeteredQueue counted over one run. */
type QueueCount = Pick<MeteredQueue, 'sendRequests' | 'messagesSent' | 'receives' | 'deletes' | 'handled'>;

/** The in-process queue, counting what the SQS adapter and the Lambda event source would do. */
class MeteredQueue extends InMemoryQueue {
  on = false;
  sendRequests = 0;
  messagesSent = 0;
  receives = 0;
  deletes = 0;
  /** Wall time of each message handled (one worker invocation each), by message kind. */
  readonly handled: Array<{ kind: string; ms: number; ok: boolean; runId?: string; seq?: number }> = [];

  constructor() {
    super({ redeliveryMs: 500 });
  }

  /** What was counted since the last call, and a fresh count from here. */
  take(): QueueCount {
    const count: QueueCount = {
      sendRequests: this.sendRequests,
      messagesSent: this.messagesSent,
      receives: this.receives,
      deletes: this.deletes,
      handled: this.handled.splice(0),
    };
    this.sendRequests = this.messagesSent = this.receives = this.deletes = 0;
    return count;
  }

  /** The messages the production queue sends by direct invocation (lib/queue/invoke.ts). */
  private readonly invoked = new WeakSet<WorkMessage>();

  override async send(batch: Outgoing[]): Promise<void> {
    if (this.on) {
      // Due now: one asynchronous invocation each, no SQS request (counted as the worker's invocation).
      for (const o of batch) if (invokesDirectly(o)) this.invoked.add(o.message);
      const queued = batch.filter((o) => !invokesDirectly(o));
      for (let i = 0; i < queued.length; i += 10) {
        const bytes = queued
          .slice(i, i + 10)
          .reduce((n, o) => n + Buffer.byteLength(JSON.stringify(o.message)), 0);
        this.sendRequests += Math.ceil(bytes / PRICES.sqs.billedChunkBytes) || 1;
      }
      this.messagesSent += batch.length;
    }
    await super.send(batch);
  }

  override consume(consumer: Consumer): void {
    super.consume(async (message, delivery) => {
      if (!this.on) return consumer(message, delivery);
      const t0 = performance.now();
      // A direct invocation's first delivery takes no SQS request; a failed one is sent to the
      // queue by the on-failure destination (one SendMessage) and received from there.
      const direct = this.invoked.has(message);
      if (direct && delivery.receiveCount === 2) this.sendRequests++;
      const viaSqs = !direct || delivery.receiveCount > 1;
      let ok = false;
      try {
        await consumer(message, delivery);
        ok = true;
      } finally {
        if (viaSqs) {
          this.receives++;
          if (ok) this.deletes++;
        }
        this.handled.push({
          kind: message.kind,
          ms: performance.now() - t0,
          ok,
          ...(message.runId ? { runId: message.runId } : {}),
          ...(message.kind === 'step' ? { seq: message.seq } : {}),
        });
      }
    });
  }
}

/**
 * The queue of an ingress function's stack (`perFunctionRun`): what it sends goes to the metered
 * queue, whose consumer is the worker's stack; it consumes nothing itself.
 */
class SendOnlyQueue extends InMemoryQueue {
  constructor(private readonly to: MeteredQueue) {
    super();
  }

  override send(batch: Outgoing[]): Promise<void> {
    return this.to.send(batch);
  }

  override consume(): void {}
}

// ------------------------------------------------------------------------- the run

function issuePayload(issue: number, action: string, extra: Record<string, unknown> = {}) {
  return {
    ...githubIssuePayload(REPO, issue, { title: `Parser clean-up (${issue})`, body: BODY }, { action }),
    ...extra,
  };
}

/** What GitHub sends when our app writes on an issue (a bot comment or label is still a delivery). */
const BOT = { login: 'switchyard[bot]', type: 'Bot' };

/** Polls the store or a stand-in for an event; the bound only turns a hang into an error. */
function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 240_000): Promise<T> {
  return untilWithin(`bench cost: ${what}`, fn, ms, 25);
}

interface Invocation {
  fn: string;
  ms: number;
}

/** The ingress functions, each a warm container with a store (and chunk cache) of its own. */
type IngressFn = 'github' | 'actions' | 'discord';

interface Harness {
  stack: LocalStack;
  /**
   * When set, each ingress function's requests go to a stack of its own (`perFunctionRun`), and
   * the main stack only runs the worker.
   */
  ingressStacks?: Record<IngressFn, LocalStack>;
  actions: FakeGitHubActions;
  oidc: FakeOidcIssuer;
  observer: DynamoRunStore;
  queue: MeteredQueue;
  /** Ingress invocations (one per HTTP request), while metering. */
  ingress: Invocation[];
  metering: boolean;
}

function stackFor(h: Harness, fn: IngressFn): LocalStack {
  return h.ingressStacks?.[fn] ?? h.stack;
}

async function post(h: Harness, fn: IngressFn, path: string, headers: Record<string, string>, body: string) {
  const t0 = performance.now();
  const res = await fetch(`${stackFor(h, fn).url}${path}`, { method: 'POST', headers, body });
  await res.arrayBuffer();
  if (h.metering) h.ingress.push({ fn, ms: performance.now() - t0 });
  return res.status;
}

function webhook(h: Harness, event: string, payload: unknown): Promise<number> {
  const body = JSON.stringify(payload);
  return post(h, 'github', '/github/webhook', webhookHeaders(SECRET, event, body, randomUUID()), body);
}

const ISSUE_WRITES = (r: RecordedRequest) =>
  (r.method === 'POST' && /\/issues\/\d+\/(comments|labels)$/.test(r.path)) ||
  (r.method === 'PATCH' && /\/issues\/comments\/\d+$/.test(r.path)) ||
  (r.method === 'DELETE' && /\/issues\/\d+\/labels\//.test(r.path));

/** GitHub echoes each of our writes on the issue as a webhook: deliver them until none is new. */
async function echoIssueWrites(h: Harness, issue: number, from: number): Promise<number> {
  let echoed = from;
  for (;;) {
    const writes = h.actions.github.requests.filter(ISSUE_WRITES);
    if (writes.length === echoed) return echoed;
    for (const w of writes.slice(echoed)) {
      const body = (w.body ?? {}) as { body?: string; labels?: string[] };
      const comment = { id: 1, body: String(body.body ?? ''), user: BOT };
      const as = (action: string, extra: Record<string, unknown>) => ({
        ...issuePayload(issue, action, extra),
        sender: BOT,
      });
      if (w.path.endsWith('/comments')) await webhook(h, 'issue_comment', as('created', { comment }));
      else if (w.method === 'PATCH') await webhook(h, 'issue_comment', as('edited', { comment }));
      else if (w.method === 'POST')
        for (const name of body.labels ?? []) await webhook(h, 'issues', as('labeled', { label: { name } }));
      else
        await webhook(
          h,
          'issues',
          as('unlabeled', { label: { name: decodeURIComponent(w.path.split('/').pop() ?? '') } }),
        );
    }
    echoed = writes.length;
    await h.queue.idle();
  }
}

/** One issue-pipeline run, label to `succeeded`, with everything GitHub would send back. */
async function oneRun(h: Harness, issue: number): Promise<string> {
  const echoedBefore = h.actions.github.requests.filter(ISSUE_WRITES).length;
  h.actions.github.addIssue(REPO, {
    number: issue,
    title: `Parser clean-up (${issue})`,
    body: BODY,
    labels: ['ready'],
  });
  if ((await webhook(h, 'issues', issuePayload(issue, 'labeled', { label: { name: 'ready' } }))) !== 202)
    throw new Error('bench cost: the ready label was not accepted');
  const runId = await until(
    'the run',
    async () => (await h.observer.listRuns({ subject: `${REPO}#${issue}` }))[0]?.id,
  );
  await until('the approval gate', async () => {
    const run = await h.observer.getRun(runId);
    return run?.status === 'waiting' && run.gate?.kind === 'approval';
  });
  const t0 = performance.now();
  await stackFor(h, 'discord').app.engine.signal(runId, { type: 'approve', by: 'alice' });
  if (h.metering) h.ingress.push({ fn: 'discord', ms: performance.now() - t0 });

  // Each agent workflow, as GitHub and the reference workflow do it: requested, in_progress, the
  // job's OIDC callback with its result, completed.
  const done = new Set<number>();
  await until('the run to succeed', async () => {
    for (const d of h.actions.dispatches.filter((x) => x.inputs.switchyard_run === runId)) {
      if (done.has(d.id)) continue;
      done.add(d.id);
      const task = JSON.parse(d.inputs.task ?? '{}') as { item: string };
      await webhook(h, 'workflow_run', h.actions.payload(d, 'requested'));
      d.status = 'in_progress';
      await webhook(h, 'workflow_run', h.actions.payload(d, 'in_progress'));
      const token = await h.oidc.token(h.oidc.claims({ repo: REPO, runId: d.id }));
      const status = await post(
        h,
        'actions',
        '/callbacks/actions',
        { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        JSON.stringify({ run: runId, item: task.item, conclusion: 'success', summary: 'done' }),
      );
      if (status !== 200) throw new Error(`bench cost: the agent's callback was answered ${status}`);
      h.actions.finish(d, 'success');
      await webhook(h, 'workflow_run', h.actions.payload(d, 'completed'));
    }
    const run = await h.observer.getRun(runId);
    if (run && (run.status === 'failed' || run.status === 'cancelled'))
      throw new Error(`bench cost: the run ended ${run.status}: ${run.reason ?? ''}`);
    return run?.status === 'succeeded';
  });
  await h.queue.idle();
  await echoIssueWrites(h, issue, echoedBefore);
  return runId;
}

const round = (x: number, digits = 3) => Number(x.toFixed(digits));
/** Lambda bills duration per 1 ms. */
const gbSeconds = (list: Invocation[]) =>
  list.reduce((n, i) => n + (Math.ceil(i.ms) / 1000) * memoryGb(i.fn), 0);

export async function benchCost(): Promise<Results> {
  const endpoint = process.env.DYNAMODB_ENDPOINT;
  if (!endpoint) throw new Error('bench/cost needs DYNAMODB_ENDPOINT (bench/run.ts starts DynamoDB Local)');

  const actions = await new FakeGitHubActions().start();
  const oidc = await new FakeOidcIssuer().start();
  const config = configFile(
    readyToCoder({ coder: 'concurrency: 3', extra: 'guards: { ci: { enabled: false } }' }),
  );
  const table = `cost-${randomUUID().slice(0, 8)}`;
  const queue = new MeteredQueue();
  const stackOf = (q: InMemoryQueue) =>
    startStack({
      dynamoEndpoint: endpoint,
      config,
      githubUrl: actions.url,
      secret: SECRET,
      table,
      env: { HOST: '127.0.0.1', GITHUB_OIDC_ISSUER: oidc.url, DISCORD_BOT_TOKEN: '' },
      // Off for the run (see above): an hour is longer than any run here.
      sweepIntervalMs: 3_600_000,
      queue: q,
    });
  const stack = await stackOf(queue);
  const meter = new DynamoMeter(endpoint);
  meter.attach(stack.store.doc);
  const h: Harness = {
    stack,
    actions,
    oidc,
    // The bench's own reads go past the meter, on a client of their own.
    observer: new DynamoRunStore(dynamoClient(endpoint), { tableName: table }),
    queue,
    ingress: [],
    metering: false,
  };

  try {
    // A warm-up run first, unmetered: a Lambda container serving a steady trickle of runs is warm,
    // and the first run here would mostly time the JIT.
    await oneRun(h, ISSUE - 1);
    /** One run of `issue`, metered from its label to `succeeded`. */
    const meteredRun = async (issue: number): Promise<Omit<Measured, 'sweep'>> => {
      meter.reset();
      queue.take();
      h.ingress = [];
      h.metering = true;
      queue.on = true;
      meter.on = true;
      const started = performance.now();
      const runId = await oneRun(h, issue);
      const wallSeconds = (performance.now() - started) / 1000;
      meter.on = false;
      queue.on = false;
      h.metering = false;
      const dynamo = {
        reads: meter.readUnits,
        writes: meter.writeUnits,
        transactionWrites: meter.transactionWriteUnits,
        localReportedTransactionWrites: meter.localReportedTransactionUnits,
        refusedWrites: meter.refusedWriteUnits,
        calls: Object.values(meter.calls).reduce((a, b) => a + b, 0),
        writesBy: { ...meter.writesBy },
        readsBy: { ...meter.readsBy },
      };
      const events = await h.observer.listEvents(runId);
      const runItem = await meter.image(table, { pk: { S: itemKeys.run(runId) }, sk: { S: sortKeys.run } });
      const runsForIssue = (await h.observer.listRuns({ subject: `${REPO}#${issue}` })).length;
      if (runsForIssue !== 1) throw new Error(`bench cost: ${runsForIssue} runs for one issue`);
      if (process.env.COST_VERBOSE) verbose(events, runItem);
      const runItemBytes = runItem ? itemBytes(runItem) : 0;
      return { dynamo, queue: queue.take(), ingress: h.ingress, events, wallSeconds, runItemBytes };
    };
    const runs: Array<Omit<Measured, 'sweep'>> = [];
    for (let i = 0; i < METERED_RUNS; i++) runs.push(await meteredRun(ISSUE + i));
    // And one with no chunk read cache: every read of a run takes its chunks from the table, as an
    // ingress container that never saw them does (the local stack's functions share one store, and
    // so one cache, which no deployment has). The worst case of reads; a deployment sits between.
    stack.store.cacheChunkReads = false;
    const uncached = await meteredRun(ISSUE + METERED_RUNS);
    stack.store.cacheChunkReads = true;
    // And one as deployed: each ingress function (the GitHub webhook, the Actions callback,
    // Discord) a warm container with a store and a chunk cache of its own, the worker another.
    // Warmed by a run of their own first, unmetered, as the shared stack was.
    const [github, callback, discord] = await Promise.all(
      [0, 1, 2].map(() => stackOf(new SendOnlyQueue(queue))),
    );
    const ingressStacks = { github: github!, actions: callback!, discord: discord! };
    for (const s of Object.values(ingressStacks)) meter.attach(s.store.doc);
    h.ingressStacks = ingressStacks;
    let perFunction: Omit<Measured, 'sweep'>;
    try {
      await oneRun(h, ISSUE + METERED_RUNS + 1);
      perFunction = await meteredRun(ISSUE + METERED_RUNS + 2);
    } finally {
      delete h.ingressStacks;
      await Promise.all(Object.values(ingressStacks).map((s) => s.stop()));
    }

    // One idle sweeper pass, metered: the sweeper's cost is per minute, not per run.
    meter.reset();
    meter.on = true;
    const s0 = performance.now();
    await Promise.all([stack.app.engine.sweep(), stack.app.agents.hub.reconcile(), recoverySweep(stack.app)]);
    const sweep = { reads: meter.readUnits, writes: meter.writeUnits, ms: performance.now() - s0 };
    meter.on = false;

    // The run of median engine cost stands for all: a run's writes vary with how webhooks race
    // its steps (an audit event refused by a commit that landed first is tried and billed again).
    const priced = runs
      .map((r) => price({ ...r, sweep }))
      .sort((a, b) => a.cost!.orchestrationUsdPerThousandRuns! - b.cost!.orchestrationUsdPerThousandRuns!);
    const median = priced[Math.floor(priced.length / 2)]!;
    const spread = priced.map((r) => r.cost!.orchestrationUsdPerThousandRuns!);
    median.cost = {
      ...median.cost,
      meteredRuns: priced.length,
      orchestrationUsdPerThousandRunsMin: spread[0]!,
      orchestrationUsdPerThousandRunsMax: spread[spread.length - 1]!,
      writeUnitsPerRunMin: Math.min(...priced.map((r) => r.cost!.writeUnitsPerRun!)),
      writeUnitsPerRunMax: Math.max(...priced.map((r) => r.cost!.writeUnitsPerRun!)),
    };
    // The runs that bound the reads, each under its own suffix.
    const bound = (suffix: string, run: Omit<Measured, 'sweep'>) => {
      const c = price({ ...run, sweep }).cost!;
      return {
        [`readUnitsPerRun${suffix}`]: c.readUnitsPerRun!,
        [`writeUnitsPerRun${suffix}`]: c.writeUnitsPerRun!,
        [`ratioVsStepFunctionsStandard${suffix}`]: c.ratioVsStepFunctionsStandard!,
        [`ratioVsDurableFunctions${suffix}`]: c.ratioVsDurableFunctions!,
      };
    };
    median.cost = {
      ...median.cost,
      ...bound('ChunksUncached', uncached),
      ...bound('PerFunctionCaches', perFunction),
    };
    return median;
  } finally {
    await stack.stop();
    await Promise.all([actions.stop(), oidc.stop()]);
  }
}

/** COST_VERBOSE=1: the run's events, and its run item's attributes and packed body by key. */
function verbose(events: RunEvent[], runItem: Record<string, AttributeValue> | undefined): void {
  for (const e of events)
    console.error(`${e.seq} ${e.type} ${e.node ?? ''} ${JSON.stringify(e.detail ?? {}).slice(0, 100)}`);
  for (const [k, v] of Object.entries(runItem ?? {})) {
    console.error(`run item ${k}: ${JSON.stringify(v).length}`);
    if (k === 'body' && v.B) {
      const body = unpack<Record<string, unknown>>(v.B);
      console.error(`body packed ${v.B.length} bytes, json ${JSON.stringify(body).length}`);
      for (const [bk, bv] of Object.entries(body))
        console.error(`  body ${bk}: ${JSON.stringify(bv).length} ${JSON.stringify(bv).slice(0, 160)}`);
    }
  }
}

// ------------------------------------------------------------------------- pricing

interface Measured {
  dynamo: {
    reads: number;
    writes: number;
    transactionWrites: number;
    localReportedTransactionWrites: number;
    refusedWrites: number;
    calls: number;
    writesBy: Record<string, number>;
    readsBy: Record<string, number>;
  };
  queue: QueueCount;
  ingress: Invocation[];
  events: RunEvent[];
  sweep: { reads: number; writes: number; ms: number };
  wallSeconds: number;
  /** The run item's size at the end: every lease and commit rewrites it. */
  runItemBytes: number;
}

/** Minutes in a 30-day month: the sweeper runs once a minute. */
const SWEEPS_PER_MONTH = 30 * 24 * 60;

function price(m: Measured): Results {
  const P = PRICES;
  const { dynamo, queue, ingress, events } = m;

  // The run's shape, from its own history.
  const steps = events.filter((e) => e.type === 'step.succeeded' || e.type === 'step.failed').length;
  const signals = events.filter((e) => e.type.startsWith('signal.') && !e.type.endsWith('.refused')).length;
  const gates = events.filter((e) => e.type === 'gate.opened').length;
  const transitions = steps + signals;

  // Ours.
  const stepWork: Invocation[] = queue.handled
    .filter((x) => x.kind === 'step')
    .map((x) => ({ fn: 'worker', ms: x.ms }));
  const reportWork: Invocation[] = queue.handled
    .filter((x) => x.kind !== 'step')
    .map((x) => ({ fn: 'worker', ms: x.ms }));
  const workerInvocations = queue.handled.length;
  const sqsRequests = queue.sendRequests + queue.receives + queue.deletes;
  const workerGbS = gbSeconds([...stepWork, ...reportWork]);
  const ingressGbS = gbSeconds(ingress);
  const usd = {
    dynamo:
      perMillion(dynamo.writes, P.dynamodb.perMillionWriteRequestUnits) +
      perMillion(dynamo.reads, P.dynamodb.perMillionReadRequestUnits),
    sqs: perMillion(sqsRequests, P.sqs.perMillionRequestsStandard),
    workerRequests: perMillion(workerInvocations, P.lambda.perMillionRequests),
    workerCompute: workerGbS * P.lambda.perGbSecondArm64,
  };
  // Common to all three: the webhooks and callbacks arrive through API Gateway and the ingress functions.
  const common =
    perMillion(ingress.length, P.apiGateway.perMillionHttpApiRequests) +
    perMillion(ingress.length, P.lambda.perMillionRequests) +
    ingressGbS * P.lambda.perGbSecondArm64;
  const oursOrchestration = usd.dynamo + usd.sqs + usd.workerRequests;
  // The engine's own share: the run's items (run, history, chunks, report ledger, effect journal,
  // idempotency keys, subject locks, the indexes they are listed by). The KV groups are the
  // nodes' and the reporters' records (the agents' work queue, the status comment's id, the
  // Actions result, Discord message ids, the pause and hold flags): a run of the same product on
  // Step Functions or durable functions would keep them too, like the node work's compute.
  const nodeUnits = (by: Record<string, number>) =>
    Object.entries(by).reduce((n, [c, u]) => n + (c.startsWith('kv.') ? u : 0), 0);
  const nodeWrites = nodeUnits(dynamo.writesBy);
  const nodeReads = nodeUnits(dynamo.readsBy);
  const nodeDynamo =
    perMillion(nodeWrites, P.dynamodb.perMillionWriteRequestUnits) +
    perMillion(nodeReads, P.dynamodb.perMillionReadRequestUnits);
  const engineOnly = oursOrchestration - nodeDynamo;
  const ours = oursOrchestration + usd.workerCompute + common;

  // Step Functions Standard: a Task state per node entered (.waitForTaskToken where it waits);
  // each task is a Lambda invocation doing the node's work, and the reporting our report
  // messages do is charged to them as duration (no invocation of its own).
  const sfTransitions = steps;
  const nodeWorkGbS = gbSeconds([...stepWork, ...reportWork]);
  const sfOrchestration =
    perMillion(sfTransitions, P.stepFunctions.perMillionStateTransitionsStandard) +
    perMillion(steps, P.lambda.perMillionRequests);
  const sf = sfOrchestration + nodeWorkGbS * P.lambda.perGbSecondArm64 + common;

  // Lambda durable functions: a step per node step, a callback per gate; the first invocation
  // and one replay per signal that resumed the execution.
  const durableOps = steps + gates;
  const durableInvocations = 1 + signals;
  const durableOrchestration =
    perMillion(durableOps, P.durableFunctions.perMillionDurableOperations) +
    perMillion(durableInvocations, P.lambda.perMillionRequests);
  const durable = durableOrchestration + nodeWorkGbS * P.lambda.perGbSecondArm64 + common;

  const sweeperPass =
    perMillion(m.sweep.writes, P.dynamodb.perMillionWriteRequestUnits) +
    perMillion(m.sweep.reads, P.dynamodb.perMillionReadRequestUnits) +
    perMillion(1, P.lambda.perMillionRequests) +
    (Math.ceil(m.sweep.ms) / 1000) * memoryGb('sweeper') * P.lambda.perGbSecondArm64;

  const k = 1000;
  return {
    cost: {
      usdPerThousandRuns: round(ours * k, 4),
      // What differs between the three: the engine against the state machine (see the header).
      ratioVsStepFunctionsStandard: round(sfOrchestration / oursOrchestration, 3),
      ratioVsDurableFunctions: round(durableOrchestration / oursOrchestration, 3),
      // Everything each would bill for the run, the same ingress and node work included.
      totalRatioVsStepFunctionsStandard: round(sf / ours, 3),
      totalRatioVsDurableFunctions: round(durable / ours, 3),
      // The engine alone against the state machine: the nodes' own DynamoDB records (KV groups)
      // left out of ours as the same in all three (conservative keys above still count them).
      engineRatioVsStepFunctionsStandard: round(sfOrchestration / engineOnly, 3),
      engineRatioVsDurableFunctions: round(durableOrchestration / engineOnly, 3),
      engineUsdPerThousandRuns: round(engineOnly * k, 4),
      engineWriteUnitsPerRun: round(dynamo.writes - nodeWrites, 1),
      engineReadUnitsPerRun: round(dynamo.reads - nodeReads, 1),
      nodeWriteUnitsPerRun: round(nodeWrites, 1),
      nodeReadUnitsPerRun: round(nodeReads, 1),
      writeUnitsPerRun: round(dynamo.writes, 1),
      readUnitsPerRun: round(dynamo.reads, 1),
      sqsRequestsPerRun: sqsRequests,
      invocationsPerRun: workerInvocations + ingress.length,
      gbSecondsPerRun: round(workerGbS + ingressGbS, 3),
      transitionsPerRun: transitions,
      // The breakdown.
      stepsPerRun: steps,
      signalsPerRun: signals,
      gatesPerRun: gates,
      workerInvocationsPerRun: workerInvocations,
      reportMessagesPerRun: reportWork.length,
      ingressInvocationsPerRun: ingress.length,
      workerGbSecondsPerRun: round(workerGbS, 3),
      ingressGbSecondsPerRun: round(ingressGbS, 3),
      dynamoCallsPerRun: dynamo.calls,
      transactionWriteUnitsPerRun: round(dynamo.transactionWrites, 1),
      transactionWriteUnitsLocalReportedPerRun: round(dynamo.localReportedTransactionWrites, 1),
      refusedWriteUnitsPerRun: round(dynamo.refusedWrites, 1),
      sqsMessagesPerRun: queue.messagesSent,
      usdDynamoPerThousandRuns: round(usd.dynamo * k, 4),
      usdSqsPerThousandRuns: round(usd.sqs * k, 4),
      usdWorkerPerThousandRuns: round((usd.workerRequests + usd.workerCompute) * k, 4),
      usdIngressPerThousandRuns: round(common * k, 4),
      stepFunctionsTransitionsPerRun: sfTransitions,
      stepFunctionsUsdPerThousandRuns: round(sf * k, 4),
      durableOperationsPerRun: durableOps,
      durableInvocationsPerRun: durableInvocations,
      durableUsdPerThousandRuns: round(durable * k, 4),
      orchestrationUsdPerThousandRuns: round(oursOrchestration * k, 4),
      stepFunctionsOrchestrationUsdPerThousandRuns: round(sfOrchestration * k, 4),
      durableOrchestrationUsdPerThousandRuns: round(durableOrchestration * k, 4),
      sweeperUsdPerMonth: round(sweeperPass * SWEEPS_PER_MONTH, 4),
      runWallSeconds: round(m.wallSeconds, 2),
      runItemBytes: m.runItemBytes,
      ...Object.fromEntries(
        Object.entries(dynamo.writesBy)
          .sort(([, a], [, b]) => b - a)
          .map(([c, n]) => [`writeUnitsBy.${c}`, round(n, 1)]),
      ),
      ...Object.fromEntries(
        Object.entries(dynamo.readsBy)
          .sort(([, a], [, b]) => b - a)
          .map(([c, n]) => [`readUnitsBy.${c}`, round(n, 1)]),
      ),
    },
    engine: {
      billedWriteUnitsPerTransition: round(dynamo.writes / transitions, 2),
      engineBilledWriteUnitsPerTransition: round((dynamo.writes - nodeWrites) / transitions, 2),
    },
  };
}

function table(results: Results): string {
  const rows = ['| figure | value |', '|---|---|'];
  for (const [bench, figures] of Object.entries(results))
    for (const [key, v] of Object.entries(figures)) rows.push(`| ${bench}.${key} | ${v} |`);
  return rows.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { startDynamoDbLocal } = await import('../lib/store/dynamodb-local.ts');
  const db = process.env.DYNAMODB_ENDPOINT ? undefined : await startDynamoDbLocal();
  if (db) process.env.DYNAMODB_ENDPOINT = db.endpoint;
  try {
    console.log(table(await benchCost()));
  } finally {
    await db?.stop();
  }
}
