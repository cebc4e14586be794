/**
 * Engine benchmark (issue 2 targets: ≤ 2 write units per transition, history included; step
 * overhead p99 < 25 ms). Runs a 6-node linear workflow of trivial handlers on DynamoDB Local
 * (DYNAMODB_ENDPOINT, or one started here) and measures:
 *   - runs/s and transitions/s with 1 and 16 runs in flight (direct loops calling the engine the
 *     way the worker does: every step, then the run's report message);
 *   - step overhead: time in engine.handle (the step's message) minus the handler's own time;
 *   - write units per transition from ReturnConsumedCapacity, for every write the engine makes
 *     (create, lease, commit, report bookkeeping), with the breakdown;
 *   - a same-run baseline: a bare GetItem on the same endpoint, so overhead is also a ratio.
 *
 * `npx tsx bench/engine.ts` runs it alone and prints a Markdown table; `npm run bench` runs it
 * with the others (bench/run.ts).
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { Engine } from '../lib/engine/engine.ts';
import { Workflow, type WorkflowDefinition, WorkflowRegistry } from '../lib/engine/workflow.ts';
import type { Outgoing, StepQueue, WorkMessage } from '../lib/queue/port.ts';
import { dynamoClient } from '../lib/store/client.ts';
import { createTable, DynamoRunStore } from '../lib/store/dynamodb.ts';
import { startDynamoDbLocal } from '../lib/store/dynamodb-local.ts';
import { sortKeys } from '../lib/store/schema.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

type Results = Record<string, Record<string, number>>;

const NODES = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'];
const WARMUP_RUNS = 30;
const C1_RUNS = 100;
const C16_LANES = 16;
const C16_RUNS_PER_LANE = 8;
const GETITEM_SAMPLES = 600;

/** Why the figures look as they do; printed with the table (results.json holds numbers only). */
export const ENGINE_BENCH_NOTES = [
  'writeUnits* are what DynamoDB Local reports through ReturnConsumedCapacity. Its figures for',
  'TransactWriteItems understate what AWS bills: a commit writing 3 small items (run + 2 events)',
  'reports 2 units, where AWS bills 6 (2 per item per KB).',
  'realWriteUnits* are computed from the marshalled requests with AWS billing rules: 1 unit per KB',
  'per item and 1 per KEYS_ONLY index entry added or removed, both at 2x inside a transaction.',
  'A transition = one committed node move (6 per run). Per transition the engine writes the commit',
  '(a conditional Put of the run item, its events pending in it; now and then a Put of the pending',
  'events to their history item first; a TransactWriteItems only for the commit that releases the',
  'subject lock). A step from its first message writes no lease: its node (`lazyLease`) has no',
  'effect to fence, so it reads the run and commits on the version read (steps.ts, hold.ts). Per run it',
  'also writes the create transaction (run + listing item + lock) and the report bookkeeping,',
  'spread over the 6 transitions.',
  'GetItem baseline and step overhead are measured in the same process against the same endpoint;',
  'a step from its message is 1 round trip, the commit Put (commitP50Ms): the message carries the',
  'run item the commit that sent it wrote, so the step reads nothing (getRunP50Ms: the reads left,',
  'the reports). lazyToLeasedFirstStepOverheadP50Ratio: those steps against the',
  'same steps leasing before the node runs (an UpdateItem that returns the run, then the commit), as',
  'a redelivered message or an unmarked node does, one run of each in turn after C1 (DynamoDB',
  "Local's writes slow down as its table grows, so phases of their own would not compare). A",
  'lazyLease step with effects writes its lease before its first effect, inside its handler time.',
  'Steps are driven by the messages the engine sends, through engine.handle, as the',
  'worker does. DynamoDB Local (one JVM over SQLite) barely scales with concurrency, so the',
  'C16 figures show its limit more than the engine: on AWS every run is its own partition.',
];

const WRITES = new Set([
  'PutItemCommand',
  'UpdateItemCommand',
  'DeleteItemCommand',
  'TransactWriteItemsCommand',
  'BatchWriteItemCommand',
]);

type AttributeValue = {
  S?: string;
  N?: string;
  BOOL?: boolean;
  NULL?: boolean;
  M?: Record<string, AttributeValue>;
  L?: AttributeValue[];
  B?: Uint8Array;
};

/** DynamoDB's item size rules: attribute names plus values (strings in UTF-8, numbers ~1 byte per 2 digits). */
function valueBytes(v: AttributeValue): number {
  if (v.S !== undefined) return Buffer.byteLength(v.S);
  if (v.N !== undefined) return Math.ceil(v.N.replace(/^-/, '').length / 2) + 1;
  if (v.M) return 3 + itemBytes(v.M);
  if (v.L) return 3 + v.L.reduce((n, x) => n + 1 + valueBytes(x), 0);
  if (v.B) return v.B.byteLength;
  return 1;
}
const itemBytes = (item: Record<string, AttributeValue>) =>
  Object.entries(item).reduce((n, [k, v]) => n + Buffer.byteLength(k) + valueBytes(v), 0);
const kb = (bytes: number) => Math.max(1, Math.ceil(bytes / 1024));

type WriteKind = 'create' | 'lease' | 'commit' | 'report' | 'other';

/**
 * Which engine write this is, and what real DynamoDB would bill for it, from the marshalled
 * request: 1 unit per KB per item, plus one unit per KEYS_ONLY index entry created (a new run)
 * or removed (retire); both at 2x inside a transaction. Rewriting an item whose index keys are unchanged
 * writes no index entry.
 */
function classify(command: string, input: Record<string, unknown>): { kind: WriteKind; realUnits: number } {
  if (command === 'TransactWriteItemsCommand') {
    const items = (input.TransactItems ?? []) as Array<{
      Put?: { Item: Record<string, AttributeValue>; ConditionExpression?: string };
    }>;
    let kind: WriteKind = 'commit';
    const realUnits = items.reduce((n, t) => {
      if (!t.Put) return n + 2;
      // A new item's index entries are written: the run's, and its listing item's (created with it).
      const isNew =
        t.Put.ConditionExpression === 'attribute_not_exists(pk)' || t.Put.Item.sk?.S === sortKeys.listing;
      if (isNew && t.Put.Item.sk?.S === 'RUN') kind = 'create';
      const indexEntries = isNew ? Object.keys(t.Put.Item).filter((k) => /^gsi\dpk$/.test(k)).length : 0;
      // Index entries written by a transaction are counted at 2x too (DynamoDB Local does the same).
      return n + 2 * (kb(itemBytes(t.Put.Item)) + indexEntries);
    }, 0);
    return { kind, realUnits };
  }
  if (command === 'PutItemCommand') {
    // The run item with a lease is a lease (this bench chains no steps, so a commit holds none);
    // without one, a commit; a history item is a commit's events, flushed.
    const item = input.Item as Record<string, AttributeValue>;
    const sk = item.sk?.S ?? '';
    const kind: WriteKind =
      sk === sortKeys.run
        ? item.lease
          ? 'lease'
          : 'commit'
        : sk >= sortKeys.events(0) && sk <= sortKeys.eventsEnd
          ? 'commit'
          : 'other';
    return { kind, realUnits: kb(itemBytes(item)) };
  }
  const key = input.Key as Record<string, AttributeValue> | undefined;
  const update = String(input.UpdateExpression ?? '');
  if (update.includes('REMOVE gsi1pk')) return { kind: 'report', realUnits: 2 }; // retire: item + index entry
  // A step message's lease (leaseStep): an UpdateItem of the run item, billed at its size, which
  // the request does not show; the commit that follows writes about as much (see commit).
  if (key?.sk?.S === sortKeys.run && update.includes('#lease = :lease'))
    return { kind: 'lease', realUnits: 1 };
  return { kind: key?.sk?.S === 'REPORT' ? 'report' : 'other', realUnits: 1 };
}

/**
 * Meters every write the client sends, by kind: the units DynamoDB (Local) reports through
 * ReturnConsumedCapacity and what real DynamoDB would bill; and the latency of every command.
 */
function meter(client: ReturnType<typeof dynamoClient>) {
  const reported = new Map<WriteKind, number>();
  const real = new Map<WriteKind, number>();
  const latency = new Map<string, number[]>();
  const kinds = new WeakMap<object, WriteKind>();
  let on = false;
  const add = <K>(m: Map<K, number>, k: K, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = String((context as { commandName?: string }).commandName);
      if (!on) return next(args);
      const input = args.input as { ReturnConsumedCapacity?: string };
      if (WRITES.has(command)) input.ReturnConsumedCapacity ??= 'TOTAL';
      const t0 = performance.now();
      const out = await next(args);
      // Writes by kind (a lease and a commit are both a PutItem), reads by command.
      const key = WRITES.has(command) ? (kinds.get(context) ?? command) : command;
      (latency.get(key) ?? latency.set(key, []).get(key)!).push(performance.now() - t0);
      if (WRITES.has(command)) {
        const cc = (out.output as { ConsumedCapacity?: unknown }).ConsumedCapacity;
        const list = (Array.isArray(cc) ? cc : cc ? [cc] : []) as Array<{ CapacityUnits?: number }>;
        add(
          reported,
          kinds.get(context) ?? 'other',
          list.reduce((n, c) => n + (c.CapacityUnits ?? 0), 0),
        );
      }
      return out;
    },
    { step: 'initialize', name: 'benchMeter' },
  );
  // By the build step the document client has marshalled the input: sizes are those on the wire.
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = String((context as { commandName?: string }).commandName);
      if (on && WRITES.has(command)) {
        const { kind, realUnits } = classify(command, args.input as Record<string, unknown>);
        kinds.set(context, kind);
        add(real, kind, realUnits);
      }
      return next(args);
    },
    { step: 'build', name: 'benchClassifyWrites' },
  );
  return {
    reported,
    real,
    latency,
    start: () => {
      on = true;
      reported.clear();
      real.clear();
      latency.clear();
    },
    stop: () => {
      on = false;
    },
  };
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
const sortNum = (xs: number[]) => [...xs].sort((a, b) => a - b);
const round = (x: number, digits = 3) => Number(x.toFixed(digits));

export async function benchEngine(): Promise<Results> {
  const db = process.env.DYNAMODB_ENDPOINT ? undefined : await startDynamoDbLocal();
  const endpoint = process.env.DYNAMODB_ENDPOINT ?? db!.endpoint;
  try {
    return await measure(endpoint);
  } finally {
    await db?.stop();
  }
}

async function measure(endpoint: string): Promise<Results> {
  const client = dynamoClient(endpoint);
  const meters = meter(client);
  const tableName = `bench-engine-${randomBytes(4).toString('hex')}`;
  await createTable(client, tableName);
  const store = new DynamoRunStore(client, { tableName });

  // Handler time per step slot, so overhead = handle time - handler time.
  const handlerMs = new Map<string, number>();
  const def: WorkflowDefinition = {
    name: 'bench6',
    version: 1,
    start: NODES[0]!,
    nodes: Object.fromEntries(
      NODES.map((n) => [
        n,
        {
          handler: async (ctx) => {
            const t0 = performance.now();
            const result = { output: { [n]: ctx.attempt } };
            handlerMs.set(`${ctx.run.id}:${ctx.run.step!.seq}`, performance.now() - t0);
            return result;
          },
          // Nothing but its output: no effect to fence, so no lease to write (workflow.ts).
          lazyLease: true,
        },
      ]),
    ),
    edges: NODES.slice(1).map((to, i) => ({ from: NODES[i]!, to })),
  };
  // The bench drives steps itself, with the step messages the engine sends (as the worker gets
  // them from SQS); the rest (the final report message) is dropped: it reports by hand below.
  const stepMessages = new Map<string, Extract<WorkMessage, { kind: 'step' }>>();
  const queue: StepQueue = {
    send: async (batch: Outgoing[]) => {
      for (const { message } of batch)
        if (message.kind === 'step') stepMessages.set(`${message.runId}:${message.seq}`, message);
    },
  };
  const messageFor = (runId: string, seq: number) => {
    const message = stepMessages.get(`${runId}:${seq}`);
    if (!message) throw new Error(`no message was sent for step ${seq} of ${runId}`);
    stepMessages.delete(`${runId}:${seq}`);
    return message;
  };
  const engine = new Engine({
    store,
    queue,
    workflows: new WorkflowRegistry([new Workflow(def)]),
    services: {},
  });
  // The same steps with their lease written before the node runs, as a redelivered message's
  // are (and as every step's were before leases were written lazily, steps.ts): a same-run
  // comparison for what a step costs when it needs its lease.
  const leasedFirst = new Engine({
    store,
    queue,
    workflows: new WorkflowRegistry([new Workflow(def)]),
    services: {},
    lazyLeaseMs: 0,
  });

  let runCounter = 0;
  /** One run, start to report, as the worker handles its messages; returns the step overheads. */
  async function oneRun(on: typeof engine = engine): Promise<number[]> {
    const { run } = await on.startRun({
      workflow: 'bench6',
      subject: `bench/engine#${++runCounter}`,
      trigger: { source: 'test' },
    });
    const overheads: number[] = [];
    for (let seq = 1; seq <= NODES.length; seq++) {
      const t0 = performance.now();
      const outcome = await on.handle(messageFor(run.id, seq));
      const total = performance.now() - t0;
      if (outcome !== 'committed') throw new Error(`step ${seq} of ${run.id}: ${outcome}`);
      const key = `${run.id}:${seq}`;
      overheads.push(total - (handlerMs.get(key) ?? 0));
      handlerMs.delete(key);
    }
    await on.report(run.id);
    return overheads;
  }

  // Warm up the JIT on both sides (Node and DynamoDB Local's JVM).
  for (let i = 0; i < WARMUP_RUNS; i++) await oneRun();

  // Baseline: a bare GetItem of a small item on the same endpoint.
  await client.send(
    new PutItemCommand({
      TableName: tableName,
      Item: { pk: { S: 'BENCH' }, sk: { S: 'GET' }, v: { N: '1' } },
    }),
  );
  const getItem = new GetItemCommand({
    TableName: tableName,
    Key: { pk: { S: 'BENCH' }, sk: { S: 'GET' } },
    ConsistentRead: true,
  });
  for (let i = 0; i < 100; i++) await client.send(getItem);
  const getMs: number[] = [];
  for (let i = 0; i < GETITEM_SAMPLES; i++) {
    const t0 = performance.now();
    await client.send(getItem);
    getMs.push(performance.now() - t0);
  }

  // Concurrency 1, metered.
  meters.start();
  const c1Overheads: number[] = [];
  const c1Start = performance.now();
  for (let i = 0; i < C1_RUNS; i++) c1Overheads.push(...(await oneRun()));
  const c1Seconds = (performance.now() - c1Start) / 1000;
  meters.stop();
  // Kept: the chained phase below meters again.
  const c1 = {
    reported: new Map(meters.reported),
    real: new Map(meters.real),
    latency: new Map(meters.latency),
  };
  const c1Transitions = C1_RUNS * NODES.length;

  // Paired (not metered): a run whose steps read the run, then one whose steps lease first, in
  // turn, so that the two ways are compared under the same conditions (DynamoDB Local's writes
  // slow down as its table grows, so a phase of its own after C1 would not be).
  for (let i = 0; i < 5; i++) await oneRun(leasedFirst);
  const pairedLazy: number[] = [];
  const leasedFirstOverheads: number[] = [];
  for (let i = 0; i < C1_RUNS; i++) {
    pairedLazy.push(...(await oneRun()));
    leasedFirstOverheads.push(...(await oneRun(leasedFirst)));
  }

  // Concurrency 16: 16 runs in flight at all times.
  const c16Overheads: number[] = [];
  const c16Start = performance.now();
  await Promise.all(
    Array.from({ length: C16_LANES }, async () => {
      for (let i = 0; i < C16_RUNS_PER_LANE; i++) c16Overheads.push(...(await oneRun()));
    }),
  );
  const c16Seconds = (performance.now() - c16Start) / 1000;
  const c16Runs = C16_LANES * C16_RUNS_PER_LANE;

  // Steps run in a row (chainSteps): the first step's message runs all six, each commit leasing
  // the next (no message, read or lease write in between). Per step: (run time - handler time) / 6.
  const chaining = new Engine({
    store,
    queue,
    workflows: new WorkflowRegistry([new Workflow(def)]),
    services: {},
    chainSteps: NODES.length,
  });
  async function chainedRun(): Promise<number> {
    const { run } = await chaining.startRun({
      workflow: 'bench6',
      subject: `bench/engine#${++runCounter}`,
      trigger: { source: 'test' },
    });
    const t0 = performance.now();
    const outcome = await chaining.handle(messageFor(run.id, run.step!.seq));
    const total = performance.now() - t0;
    if (outcome !== 'committed') throw new Error(`chained run ${run.id}: ${outcome}`);
    let handlers = 0;
    for (const [key, ms] of handlerMs) if (key.startsWith(`${run.id}:`)) handlers += ms;
    for (const key of [...handlerMs.keys()]) if (key.startsWith(`${run.id}:`)) handlerMs.delete(key);
    await chaining.report(run.id);
    return (total - handlers) / NODES.length;
  }
  for (let i = 0; i < WARMUP_RUNS; i++) await chainedRun();
  meters.start();
  const chainedOverheads: number[] = [];
  for (let i = 0; i < C1_RUNS; i++) chainedOverheads.push(await chainedRun());
  meters.stop();
  const chainedReal = new Map(meters.real);

  const get = sortNum(getMs);
  const over1 = sortNum(c1Overheads);
  const overChained = sortNum(chainedOverheads);
  const over16 = sortNum(c16Overheads);
  const perT = (m: Map<WriteKind, number>, kind?: WriteKind) =>
    round((kind ? (m.get(kind) ?? 0) : [...m.values()].reduce((a, b) => a + b, 0)) / c1Transitions);
  // A kind of write the metered steps never made (a lease) has no latency: 0.
  const p50Of = (command: string) => {
    const samples = c1.latency.get(command) ?? [];
    return samples.length > 0 ? round(percentile(sortNum(samples), 50)) : 0;
  };
  const overLeasedFirst = sortNum(leasedFirstOverheads);
  const baselineP50 = percentile(get, 50);

  return {
    engine: {
      writeUnitsPerTransition: perT(c1.reported),
      writeUnitsLeasePerTransition: perT(c1.reported, 'lease'),
      writeUnitsCommitPerTransition: perT(c1.reported, 'commit'),
      writeUnitsCreatePerTransition: perT(c1.reported, 'create'),
      writeUnitsReportPerTransition: perT(c1.reported, 'report'),
      writeUnitsOtherPerTransition: perT(c1.reported, 'other'),
      realWriteUnitsPerTransitionEstimate: perT(c1.real),
      realWriteUnitsLeasePerTransition: perT(c1.real, 'lease'),
      realWriteUnitsCommitPerTransition: perT(c1.real, 'commit'),
      realWriteUnitsCreatePerTransition: perT(c1.real, 'create'),
      realWriteUnitsReportPerTransition: perT(c1.real, 'report'),
      stepOverheadP50Ms: round(percentile(over1, 50)),
      stepOverheadP99Ms: round(percentile(over1, 99)),
      stepOverheadP50MsC16: round(percentile(over16, 50)),
      stepOverheadP99MsC16: round(percentile(over16, 99)),
      getRunP50Ms: p50Of('GetItemCommand'),
      leasePutP50Ms: p50Of('lease'),
      commitP50Ms: p50Of('commit'),
      runsPerSecC1: round(C1_RUNS / c1Seconds, 1),
      runsPerSecC16: round(c16Runs / c16Seconds, 1),
      transitionsPerSecC1: round(c1Transitions / c1Seconds, 1),
      transitionsPerSecC16: round((c16Runs * NODES.length) / c16Seconds, 1),
      baselineGetItemP50Ms: round(baselineP50),
      baselineGetItemP99Ms: round(percentile(get, 99)),
      stepOverheadP50ToGetItemRatio: round(percentile(over1, 50) / baselineP50, 2),
      stepOverheadP99ToGetItemRatio: round(percentile(over1, 99) / baselineP50, 2),
      // Steps whose node is `lazyLease` (a read, then the commit) against the same steps leasing
      // before their node runs (a redelivery, an unmarked node), run in turn: below 1, the saving.
      lazyToLeasedFirstStepOverheadP50Ratio: round(
        percentile(sortNum(pairedLazy), 50) / percentile(overLeasedFirst, 50),
        2,
      ),
      // The same steps run in a row from one message (chainSteps): a step's overhead is its commit.
      chainedStepOverheadP50Ms: round(percentile(overChained, 50)),
      chainedStepOverheadP50ToGetItemRatio: round(percentile(overChained, 50) / baselineP50, 2),
      chainedRealWriteUnitsPerTransitionEstimate: perT(chainedReal),
    },
  };
}

function table(results: Results): string {
  const rows = ['| figure | value |', '|---|---|'];
  for (const [k, v] of Object.entries(results.engine ?? {})) rows.push(`| ${k} | ${v} |`);
  return rows.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const results = await benchEngine();
  console.log(table(results));
  console.log(`\nTargets: writeUnitsPerTransition ≤ 2, stepOverheadP99Ms < 25.\n`);
  console.log(ENGINE_BENCH_NOTES.map((l) => `> ${l}`).join('\n'));
}
