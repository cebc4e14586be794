import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { recoverySweep } from '../lib/app/recovery.ts';
import type { FaultPoint } from '../lib/engine/engine.ts';
import { isTerminal, type Run } from '../lib/engine/types.ts';
import { QueueError } from '../lib/queue/errors.ts';
import { InMemoryQueue } from '../lib/queue/memory.ts';
import type { Outgoing } from '../lib/queue/port.ts';
import { dynamoClient } from '../lib/store/client.ts';
import { DynamoRunStore } from '../lib/store/dynamodb.ts';
import { itemKeys, sortKeys } from '../lib/store/schema.ts';
import { FakeGitHubActions } from '../test/support/fake-github-actions.ts';
import {
  configFile,
  issuePayload,
  readyToCoder,
  startStack,
  webhookHeaders,
  webhookSignature,
} from '../test/support/stack-harness.ts';

/**
 * The fault bench (issue 9, "Proof"): ≥ 500 signed webhooks for ~100 issues at concurrency 32
 * through the local stack (the real handlers behind the local HTTP adapter, the in-process queue
 * and worker, the sweeper with its redelivery sweep and agent reconcile), with faults injected at
 * random, and then the question: was any run lost, doubled or stuck?
 *
 * Deliveries: each issue's `ready` label, its redelivery (same X-GitHub-Delivery), bursts of
 * concurrent copies, a second delivery for the same issue, case variants of the repository name
 * (`Acme/Widget` vs `acme/widget`), unrelated events, and bad input (bad or missing signatures,
 * malformed JSON, wrong content type, oversized bodies, missing headers). Each dispatched agent
 * workflow completes on the GitHub stand-in; its `workflow_run` webhook is delivered, delivered
 * twice, or lost (then the reconcile finds it through the Actions API). Every valid delivery is
 * written to the stand-in's delivery log with the status we answered, so a delivery we failed
 * (5xx under injected faults) is redelivered by the redelivery sweep, as GitHub would on request.
 *
 * Faults, at random:
 * - DynamoDB: a loopback proxy in front of DynamoDB Local answers `ThrottlingException`, or drops
 *   the connection before forwarding (a timeout: the SDK retries);
 * - SQS: the queue's `send` fails (QueueError), as SendMessageBatch can;
 * - GitHub: a proxy in front of the stand-in answers 502, or 429 with `retry-after` (secondary
 *   rate limit), before the request reaches it;
 * - a worker killed mid-step: the engine's fault points throw after the lease or after the node's
 *   effects, so the step's lease must lapse and the sweeper must take it over.
 *
 * Only loopback is contacted. Bounded: deliveries are sent at once, then the bench waits for every
 * run to finish or park, until nothing has moved for FAULTS_STALL_MS (default 90 s) or at most
 * FAULTS_DEADLINE_MS (default 300 s) after the last delivery.
 *
 * Figures: `faults.lostRuns` (an issue with an accepted `ready` delivery and no run),
 * `faults.doubledRuns` (extra runs per issue that ran beside another, plus tasks dispatched
 * more than once; a run created after the issue's previous run had ended, as DynamoDB answered
 * the two writes, is a later request and counts in `faults.rerunsAfterEnd` instead: a delivery
 * redelivered after a 5xx can arrive as the first run ends),
 * `faults.stuckRuns` (runs neither finished nor parked at a gate by the deadline),
 * `faults.fiveHundreds` (5xx answers to bad input), `faults.deliveries`, `faults.injectedFaults`;
 * the breakdown is in the other `faults.*` keys.
 *
 * Bad input is of two kinds, judged against the webhook's contract:
 * - refused (`badInputNot4xx` counts any answer outside 4xx): bad or missing signatures, malformed
 *   JSON, JSON that is not an object, a wrong content type, an oversized body, missing headers;
 * - malformed but signed (issue 15): a JSON object whose fields its event needs are missing or of
 *   the wrong type. That is answered `202 {status: 'ignored', field}` (GitHub must not redeliver
 *   it) and starts no run: `malformedIgnored` counts those answers, `malformedNotIgnored` anything
 *   else. (Earlier versions counted these as "bad input answered 2xx", against that contract.)
 * Both count in `fiveHundreds` when answered 5xx.
 */

const SECRET = 'bench-faults-secret';
const REPO = 'acme/widget';
const VARIANT = 'Acme/Widget';
const CONCURRENCY = 32;

type Rng = () => number;
/** A seeded PRNG (mulberry32), so a run can be repeated with FAULTS_SEED. */
function rng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

class Counter {
  readonly counts: Record<string, number> = {};
  add(kind: string, n = 1): void {
    this.counts[kind] = (this.counts[kind] ?? 0) + n;
  }
  get total(): number {
    return Object.values(this.counts).reduce((a, b) => a + b, 0);
  }
}

// ------------------------------------------------------------------------- fault proxy

type ProxyDecision =
  | { kind: 'pass' }
  | { kind: 'answer'; status: number; headers: Record<string, string>; body: string; fault: string }
  | { kind: 'drop'; fault: string };

/** A loopback HTTP proxy that injects faults before forwarding (never after: see the note below). */
class FaultProxy {
  private server: Server | undefined;
  url = '';
  enabled = false;
  /** Requests seen, by `X-Amz-Target` (DynamoDB) or method and first path segments (GitHub). */
  readonly seen = new Counter();

  constructor(
    private readonly target: string,
    private readonly decide: (method: string, path: string) => ProxyDecision,
    private readonly faults: Counter,
    /** Told of every request that was forwarded and answered 200, when its answer arrived. */
    private readonly onLanded?: (amzTarget: string | undefined, body: Buffer) => void,
  ) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 1_000;
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const amzTarget = req.headers['x-amz-target'];
      this.seen.add(
        typeof amzTarget === 'string' ? amzTarget.replace(/^DynamoDB_\d+\./, '') : `${req.method}`,
      );
      const decision = this.enabled
        ? this.decide(req.method ?? 'GET', req.url ?? '/')
        : { kind: 'pass' as const };
      if (decision.kind === 'drop') {
        this.faults.add(decision.fault);
        req.socket.destroy();
        return;
      }
      if (decision.kind === 'answer') {
        this.faults.add(decision.fault);
        res.writeHead(decision.status, decision.headers).end(decision.body);
        return;
      }
      const target = new URL(req.url ?? '/', this.target);
      const headers = { ...req.headers, host: target.host };
      const body = Buffer.concat(chunks);
      const out = request(target, { method: req.method, headers }, (upstream) => {
        if (upstream.statusCode === 200)
          this.onLanded?.(typeof amzTarget === 'string' ? amzTarget : undefined, body);
        res.writeHead(upstream.statusCode ?? 502, upstream.headers);
        upstream.pipe(res);
      });
      out.on('error', () => res.destroy());
      out.end(body);
    });
  }
}

/**
 * When each run's item was created, and when it was last written whole (its last commit: for a
 * finished run, the one that ended it), as DynamoDB answered them: what tells a second run of an
 * issue that started after the first had ended (a later request, as GitHub would send after a
 * label is added again) from one that ran beside it (a double: the subject lock failed).
 */
class RunWrites {
  readonly created = new Map<string, number>();
  readonly lastWritten = new Map<string, number>();

  note(amzTarget: string | undefined, body: Buffer): void {
    const op = amzTarget?.replace(/^DynamoDB_\d+\./, '');
    if (op !== 'PutItem' && op !== 'TransactWriteItems') return;
    const at = Date.now();
    const input = JSON.parse(body.toString('utf8')) as {
      Item?: Record<string, { S?: string }>;
      ConditionExpression?: string;
      TransactItems?: Array<{ Put?: { Item: Record<string, { S?: string }>; ConditionExpression?: string } }>;
    };
    const puts =
      op === 'PutItem' ? [input] : (input.TransactItems ?? []).flatMap((t) => (t.Put ? [t.Put] : []));
    for (const put of puts) {
      const item = put.Item ?? {};
      const prefix = itemKeys.run('');
      if (item.sk?.S !== sortKeys.run || !item.pk?.S?.startsWith(prefix)) continue;
      const id = item.pk.S.slice(prefix.length);
      if (put.ConditionExpression === 'attribute_not_exists(pk)') this.created.set(id, at);
      this.lastWritten.set(id, at);
    }
  }
}

// ------------------------------------------------------------------------- faulty queue

/** The in-process queue whose sends fail at random, as SQS SendMessageBatch can. */
class FaultyQueue extends InMemoryQueue {
  enabled = false;
  constructor(
    private readonly random: Rng,
    private readonly rate: number,
    private readonly faults: Counter,
  ) {
    super({ redeliveryMs: 500 });
  }

  override async send(batch: Outgoing[]): Promise<void> {
    if (this.enabled && this.random() < this.rate) {
      this.faults.add('sqsSendFailures');
      throw new QueueError('injected: SendMessageBatch failed');
    }
    await super.send(batch);
  }
}

// ------------------------------------------------------------------------- payloads

function labeled(repo: string, issue: number): Record<string, unknown> {
  return issuePayload(repo, issue, { title: `Fix the parser (${issue})`, body: '- [ ] Fix `src/parser.ts`' });
}

function commented(repo: string, issue: number): Record<string, unknown> {
  const p = labeled(repo, issue);
  return {
    action: 'created',
    issue: p.issue,
    comment: { id: 10_000 + issue, body: 'Any news?', user: { login: 'bob' }, author_association: 'NONE' },
    repository: p.repository,
    sender: { login: 'bob', type: 'User' },
  };
}

interface Delivery {
  /**
   * `bad`: must be refused with a 4xx. `malformed`: signed, a JSON object, but lacking (or with a
   * wrong type for) a field its event needs: issue 15's contract answers it `202 ignored` naming
   * the field, so GitHub does not redeliver it, and it starts no run.
   */
  kind: 'valid' | 'bad' | 'malformed';
  label: string;
  issue?: number;
  ready?: boolean;
  headers: Record<string, string>;
  body: string | Buffer;
  /** Send this many copies at once (concurrent duplicates). */
  copies?: number;
}

const sign = (body: string | Buffer) => webhookSignature(SECRET, body);

function valid(event: string, payload: unknown, id = randomUUID(), extra: Partial<Delivery> = {}): Delivery {
  const body = JSON.stringify(payload);
  return {
    kind: 'valid',
    label: event,
    headers: webhookHeaders(SECRET, event, body, id),
    body,
    ...extra,
  };
}

function badInputs(n: number, random: Rng): Delivery[] {
  const out: Delivery[] = [];
  const base = JSON.stringify(labeled(REPO, 1));
  const kinds: Array<() => Delivery> = [
    () => ({
      ...valid('issues', labeled(REPO, 1)),
      kind: 'bad',
      label: 'bad signature',
      headers: { ...valid('issues', {}).headers, 'x-hub-signature-256': `sha256=${'0'.repeat(64)}` },
      body: base,
    }),
    () => {
      const d = valid('issues', labeled(REPO, 1));
      delete d.headers['x-hub-signature-256'];
      return { ...d, kind: 'bad', label: 'no signature' };
    },
    () => {
      const body = '{"action": "labeled", ';
      return {
        ...valid('issues', {}),
        kind: 'bad',
        label: 'malformed JSON',
        body,
        headers: { ...valid('issues', {}).headers, 'x-hub-signature-256': sign(body) },
      };
    },
    () => {
      const d = valid('issues', labeled(REPO, 1));
      return {
        ...d,
        kind: 'bad',
        label: 'wrong content type',
        headers: { ...d.headers, 'content-type': 'text/plain' },
      };
    },
    () => {
      const body = Buffer.alloc(1_100_000, 'a');
      return {
        ...valid('issues', {}),
        kind: 'bad',
        label: 'over 1 MiB',
        body,
        headers: { ...valid('issues', {}).headers, 'x-hub-signature-256': sign(body) },
      };
    },
    () => {
      const d = valid('issues', labeled(REPO, 1));
      delete d.headers['x-github-event'];
      return { ...d, kind: 'bad', label: 'no event header' };
    },
    () => {
      const body = '[1,2,3]';
      return {
        ...valid('issues', {}),
        kind: 'bad',
        label: 'JSON array',
        body,
        headers: { ...valid('issues', {}).headers, 'x-hub-signature-256': sign(body) },
      };
    },
    () => {
      const body = JSON.stringify({
        action: 'labeled',
        issue: { number: 'x' },
        repository: { full_name: 42 },
      });
      return {
        ...valid('issues', {}),
        kind: 'malformed',
        label: 'wrong shapes',
        body,
        headers: { ...valid('issues', {}).headers, 'x-hub-signature-256': sign(body) },
      };
    },
  ];
  for (let i = 0; i < n; i++) out.push(kinds[Math.floor(random() * kinds.length)]!());
  return out;
}

function shuffle<T>(items: T[], random: Rng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const item = items[next++]!;
        await fn(item);
      }
    }),
  );
}

// ------------------------------------------------------------------------- the bench

export async function benchFaults(): Promise<Record<string, Record<string, number>>> {
  const endpoint = process.env.DYNAMODB_ENDPOINT;
  if (!endpoint) throw new Error('bench/faults needs DYNAMODB_ENDPOINT (bench/run.ts starts DynamoDB Local)');
  const seed = Number(process.env.FAULTS_SEED ?? 9);
  const issues = Number(process.env.FAULTS_ISSUES ?? 100);
  const deadlineMs = Number(process.env.FAULTS_DEADLINE_MS ?? 300_000);
  const stallMs = Number(process.env.FAULTS_STALL_MS ?? 90_000);
  const random = rng(seed);
  const faults = new Counter();
  const landed = new RunWrites();

  // DynamoDB faults happen before forwarding: a request that never reached DynamoDB. (A response
  // lost *after* DynamoDB applied a write is a different fault, not injected here; see docs.)
  const dynamo = await new FaultProxy(
    endpoint,
    () => {
      const r = random();
      if (r < 0.03)
        return {
          kind: 'answer',
          status: 400,
          fault: 'dynamoThrottles',
          headers: {
            'content-type': 'application/x-amz-json-1.0',
            'x-amzn-errortype': 'ThrottlingException',
          },
          body: JSON.stringify({
            __type: 'com.amazonaws.dynamodb.v20120810#ThrottlingException',
            message: 'Rate of requests exceeds the allowed throughput.',
          }),
        };
      if (r < 0.04) return { kind: 'drop', fault: 'dynamoTimeouts' };
      return { kind: 'pass' };
    },
    faults,
    (amzTarget, body) => landed.note(amzTarget, body),
  ).start();

  const actions = await new FakeGitHubActions().start();
  // The reference workflow's run-name: the run id and the work item (examples/switchyard-agent.yml).
  actions.runName = (i) =>
    `switchyard ${i.switchyard_run ?? ''} ${(JSON.parse(i.task ?? '{}') as { item?: string }).item ?? ''}`.trim();
  const github = await new FaultProxy(
    actions.url,
    () => {
      const r = random();
      if (r < 0.03)
        return {
          kind: 'answer',
          status: 502,
          fault: 'github5xx',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ message: 'Server Error' }),
        };
      if (r < 0.05)
        return {
          kind: 'answer',
          status: 429,
          fault: 'githubSecondaryRateLimits',
          headers: { 'content-type': 'application/json', 'retry-after': '1' },
          body: JSON.stringify({
            message:
              'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.',
          }),
        };
      return { kind: 'pass' };
    },
    faults,
  ).start();

  const killed = new Set<string>();
  const killPoint = (point: FaultPoint, run: Run) => {
    if (point !== 'after-lease' && point !== 'after-effect') return;
    // At most one kill per run: the retry policy must not be what ends a run here.
    if (!queue.enabled || killed.has(run.id) || random() >= 0.04) return;
    killed.add(run.id);
    faults.add('workersKilled');
    throw new Error(`injected: worker killed mid-step (${point})`);
  };
  const queue = new FaultyQueue(random, 0.03, faults);

  const config = configFile(
    readyToCoder({
      coder: 'concurrency: 64',
      extra: `
guards: { ci: { enabled: false } }
workQueue: { repoConcurrency: 64 }
workflows:
  issue-pipeline:
    disabledGates: [approval]
    nodes:
      execute: { retry: { maxAttempts: 4, initialDelayMs: 200, maxDelayMs: 2000 } }
recovery:
  redelivery: { hook: { org: acme, id: 1 }, everyMinutes: 0.02 }
  reconcile: { afterMinutes: 0.03, everyMinutes: 0.02 }
`,
    }),
  );

  const table = `faults-${randomUUID().slice(0, 8)}`;
  const stack = await startStack({
    dynamoEndpoint: dynamo.url,
    config,
    githubUrl: github.url,
    secret: SECRET,
    table,
    env: { HOST: '127.0.0.1', DISCORD_BOT_TOKEN: '' },
    sweepIntervalMs: 250,
    queue,
    engine: { leaseGraceMs: 1_000, faults: killPoint },
  });
  // The bench reads the outcome straight from DynamoDB Local, past the faulty proxy.
  const store = new DynamoRunStore(dynamoClient(endpoint), { tableName: table });

  // GitHub's side: the issues exist under both spellings (GitHub's API is case-insensitive).
  for (let i = 1; i <= issues; i++) {
    for (const repo of [REPO, VARIANT])
      actions.github.addIssue(repo, {
        number: i,
        title: `Fix the parser (${i})`,
        body: '- [ ] Fix `src/parser.ts`',
        labels: ['ready'],
      });
  }

  const statuses = new Counter();
  const answers = { bad5xx: 0, valid5xx: 0, badNon4xx: 0, malformedIgnored: 0, malformedNot: 0, sent: 0 };
  const accepted = new Set<number>();
  const bodies = new Map<string, Delivery>();
  const post = async (d: Delivery): Promise<number> => {
    answers.sent++;
    try {
      const res = await fetch(`${stack.url}/github/webhook`, {
        method: 'POST',
        headers: d.headers,
        body: d.body,
      });
      const text = await res.text();
      statuses.add(String(res.status));
      if (d.kind === 'malformed' && res.status < 500) {
        const body = JSON.parse(text) as { status?: unknown; field?: unknown };
        const ignored = res.status === 202 && body.status === 'ignored' && typeof body.field === 'string';
        if (ignored) answers.malformedIgnored++;
        else {
          answers.malformedNot++;
          if (process.env.FAULTS_VERBOSE)
            console.error(`faults: malformed "${d.label}" answered ${res.status} ${text.slice(0, 200)}`);
        }
      }
      return res.status;
    } catch {
      statuses.add('network');
      return 0;
    }
  };
  const hook = 'org:acme:1';
  const deliver = async (d: Delivery): Promise<void> => {
    const copies = d.copies ?? 1;
    const codes = await Promise.all(Array.from({ length: copies }, () => post(d)));
    for (const code of codes) {
      if (d.kind === 'malformed') {
        if (code >= 500) answers.bad5xx++;
        continue;
      }
      if (d.kind === 'bad') {
        if (code >= 500) answers.bad5xx++;
        if (code < 400 || code >= 500) {
          answers.badNon4xx++;
          if (process.env.FAULTS_VERBOSE) console.error(`faults: bad input "${d.label}" answered ${code}`);
        }
        continue;
      }
      if (code >= 500 || code === 0) answers.valid5xx++;
      if (d.ready && code >= 200 && code < 300 && d.issue !== undefined) accepted.add(d.issue);
      const guid = d.headers['x-github-delivery']!;
      bodies.set(guid, d);
      actions.github.deliveries.add(hook, {
        guid,
        status_code: code,
        event: d.headers['x-github-event'] ?? 'unknown',
        action: d.label,
        redelivery: codes.length > 1,
      });
    }
  };
  // The redelivery sweep asks the stand-in to redeliver: send it again, as GitHub would.
  actions.github.deliveries.onRedeliver = async (fd) => {
    const d = bodies.get(fd.guid);
    if (!d) return 404;
    const code = await post(d);
    if (d.ready && code >= 200 && code < 300 && d.issue !== undefined) accepted.add(d.issue);
    return code;
  };

  // Agent workflows finish on the stand-in; the completion webhook is delivered, doubled or lost.
  const completions = { delivered: 0, doubled: 0, lost: 0 };
  const pendingCompletions: Promise<void>[] = [];
  actions.onDispatch = async (run) => {
    const r = random();
    pendingCompletions.push(
      (async () => {
        await new Promise((res) => setTimeout(res, 20));
        actions.finish(run, 'success');
        const d = valid('workflow_run', actions.payload(run, 'completed'));
        if (r < 0.15) {
          completions.lost++;
          return;
        }
        await deliver(d);
        completions.delivered++;
        if (r > 0.9) {
          await deliver(d);
          completions.doubled++;
        }
      })(),
    );
  };

  // The deliveries.
  const list: Delivery[] = [];
  for (let i = 1; i <= issues; i++) {
    const id = randomUUID();
    const first = valid('issues', labeled(REPO, i), id, { issue: i, ready: true, label: 'labeled' });
    list.push(first);
    list.push({ ...first, label: 'labeled (redelivery)' }); // same X-GitHub-Delivery
    if (i % 3 === 0) list.push({ ...first, copies: 4, label: 'labeled (4 concurrent copies)' });
    if (i % 2 === 0)
      list.push(
        valid('issues', labeled(REPO, i), randomUUID(), { issue: i, ready: true, label: 'labeled again' }),
      );
    if (i % 5 === 0)
      list.push(
        valid('issues', labeled(VARIANT, i), randomUUID(), {
          issue: i,
          ready: true,
          label: 'labeled (case variant)',
        }),
      );
    if (i % 2 === 1)
      list.push(valid('issue_comment', commented(REPO, i), randomUUID(), { issue: i, label: 'created' }));
  }
  list.push(...badInputs(issues, random));
  shuffle(list, random);

  dynamo.enabled = true;
  github.enabled = true;
  queue.enabled = true;
  const started = Date.now();
  await pool(list, CONCURRENCY, deliver);
  const sentAt = Date.now();

  // Wait (bounded) for every issue with an accepted `ready` to have its runs finished or parked.
  const runsOf = async (issue: number): Promise<Run[]> => {
    const seen = new Map<string, Run>();
    for (const repo of [REPO, VARIANT])
      for (const r of await store.listRuns({ subject: `${repo}#${issue}` })) seen.set(r.id, r);
    return [...seen.values()];
  };
  const settled = (r: Run) => isTerminal(r.status) || (r.status === 'waiting' && r.gate?.kind === 'approval');
  // Stuck means "no longer moving", not "slow on a loaded machine": the wait ends when everything
  // settled, when no run has changed for FAULTS_STALL_MS (longer than a lapsed lease plus a few
  // sweeps), or at the hard deadline.
  const deadline = sentAt + deadlineMs;
  let snapshot = new Map<number, Run[]>();
  let fingerprint = '';
  let lastProgress = Date.now();
  for (;;) {
    snapshot = new Map();
    for (let i = 1; i <= issues; i++) snapshot.set(i, await runsOf(i));
    const open = [...snapshot.entries()].filter(
      ([i, runs]) => (accepted.has(i) && runs.length === 0) || runs.some((r) => !settled(r)),
    );
    const now = [...snapshot.values()]
      .flat()
      .map((r) => `${r.id}@${r.version}`)
      .join(',');
    if (now !== fingerprint) {
      fingerprint = now;
      lastProgress = Date.now();
    }
    if (open.length === 0 || Date.now() > deadline || Date.now() - lastProgress > stallMs) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const settleMs = Date.now() - sentAt;
  dynamo.enabled = false;
  github.enabled = false;
  queue.enabled = false;
  await Promise.allSettled(pendingCompletions);
  if (process.env.FAULTS_VERBOSE)
    console.error(
      `faults: DynamoDB requests ${JSON.stringify(dynamo.seen.counts)}, GitHub requests ${JSON.stringify(github.seen.counts)}`,
    );
  if (process.env.FAULTS_VERBOSE)
    console.error(`faults: a recovery sweep now: ${JSON.stringify(await recoverySweep(stack.app))}`);

  let lostRuns = 0;
  let extraRuns = 0;
  let rerunsAfterEnd = 0;
  let caseVariantDoubles = 0;
  let stuckRuns = 0;
  const outcome = new Counter();
  for (const [issue, runs] of snapshot) {
    if (accepted.has(issue) && runs.length === 0) lostRuns++;
    if (runs.length > 1) {
      // A run created once the one before it had ended (its ending write answered first) is a
      // later request for the issue, not a double; any other is one.
      const order = [...runs].sort(
        (a, b) => (landed.created.get(a.id) ?? 0) - (landed.created.get(b.id) ?? 0),
      );
      const after = order.slice(1).filter((r, i) => {
        const before = order[i]!;
        const created = landed.created.get(r.id);
        const ended = landed.lastWritten.get(before.id);
        return isTerminal(before.status) && created !== undefined && ended !== undefined && created > ended;
      }).length;
      rerunsAfterEnd += after;
      extraRuns += runs.length - 1 - after;
      const spellings = new Set(runs.map((r) => r.subject.repo));
      if (spellings.size > 1) caseVariantDoubles += runs.length - 1 - after;
      if (process.env.FAULTS_VERBOSE)
        for (const r of [...runs].sort((a, b) => a.createdAt.localeCompare(b.createdAt))) {
          const events = await store.listEvents(r.id);
          console.error(
            `  issue ${issue} has ${runs.length} runs: ${r.id} ${r.subject.repo} ${r.status} created ${r.createdAt} updated ${r.updatedAt} by ${String(r.trigger.delivery)}, written ${new Date(landed.created.get(r.id) ?? 0).toISOString().slice(11)}–${new Date(landed.lastWritten.get(r.id) ?? 0).toISOString().slice(11)}; ${events
              .slice(0, 3)
              .concat(events.slice(-2))
              .map((e) => `${e.type}@${e.at.slice(11)}`)
              .join(' ')}`,
          );
        }
    }
    for (const r of runs) {
      outcome.add(r.status);
      if (!settled(r)) stuckRuns++;
      if (process.env.FAULTS_VERBOSE && (!settled(r) || r.status !== 'succeeded')) {
        const events = await store.listEvents(r.id);
        if (r.status === 'waiting' && r.gate?.kind === 'agent')
          console.error(`  dispatch ${JSON.stringify((await store.kvGet('work', `d#${r.id}`))?.value)}`);
        console.error(
          `  ${JSON.stringify({ step: r.step, lease: r.lease, version: r.version })}\n  ${events
            .slice(-8)
            .map((e) => `${e.at} ${e.type} ${JSON.stringify(e.detail).slice(0, 160)}`)
            .join('\n  ')}`,
        );
        console.error(
          `faults: #${issue} ${r.id} ${r.subject.repo} ${r.status} at ${r.node}${r.gate ? ` gate ${r.gate.kind} ${r.gate.correlation ?? ''}` : ''}: ${r.reason ?? ''} ${JSON.stringify(r.error ?? '')}`,
        );
      }
    }
  }
  // A task dispatched twice is a doubled agent run, whatever the cause.
  const perItem = new Counter();
  for (const d of actions.dispatches) {
    const item = (JSON.parse(d.inputs.task ?? '{}') as { item?: string }).item ?? `${d.id}`;
    perItem.add(item);
  }
  const doubledDispatches = Object.values(perItem.counts).reduce((a, n) => a + Math.max(0, n - 1), 0);
  const redelivered = actions.github.deliveries.redeliveries.length;

  await stack.stop();
  await Promise.all([dynamo.stop(), github.stop(), actions.stop()]);

  const figures: Record<string, number> = {
    lostRuns,
    doubledRuns: extraRuns + doubledDispatches,
    stuckRuns,
    fiveHundreds: answers.bad5xx,
    deliveries: answers.sent,
    injectedFaults: faults.total,
    issues,
    runs: outcome.total,
    runsSucceeded: outcome.counts.succeeded ?? 0,
    runsFailed: outcome.counts.failed ?? 0,
    caseVariantDoubles,
    rerunsAfterEnd,
    doubledDispatches,
    badInputNot4xx: answers.badNon4xx,
    malformedIgnored: answers.malformedIgnored,
    malformedNotIgnored: answers.malformedNot,
    validAnswered5xx: answers.valid5xx,
    webhooksRedelivered: redelivered,
    completionsLost: completions.lost,
    completionsDoubled: completions.doubled,
    dynamoThrottles: faults.counts.dynamoThrottles ?? 0,
    dynamoTimeouts: faults.counts.dynamoTimeouts ?? 0,
    sqsSendFailures: faults.counts.sqsSendFailures ?? 0,
    github5xx: faults.counts.github5xx ?? 0,
    githubSecondaryRateLimits: faults.counts.githubSecondaryRateLimits ?? 0,
    workersKilled: faults.counts.workersKilled ?? 0,
    sendSeconds: (sentAt - started) / 1000,
    settleSeconds: settleMs / 1000,
    seed,
  };
  return { faults: figures };
}
