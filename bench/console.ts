/**
 * Console benchmark (issue 14): what the console sends and how soon, against the JSON API it
 * sits next to, in the same run, over real HTTP on loopback (the local adapter) and DynamoDB Local:
 *   - listBytes / runPageBytes: the HTML of `GET /console` (30 runs) and of one run's page (plan,
 *     gate, 20-odd events); assetBytes: the script and stylesheet, fetched once and cached;
 *   - ttfb: time to the response headers (fetch resolves there), median of N requests;
 *   - ratios: list against `GET /runs` (same runs), run page against `GET /runs/{id}`.
 *
 * `npx tsx bench/console.ts` runs it alone; `npm run bench` runs it with the others (bench/run.ts).
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { makeRunsApi } from '../lib/api/runs.ts';
import { ASSETS } from '../lib/console/assets.ts';
import { makeConsole } from '../lib/console/handler.ts';
import { Engine } from '../lib/engine/engine.ts';
import type { NewEvent } from '../lib/engine/types.ts';
import { apiGateway } from '../lib/http/apigw.ts';
import { httpListener } from '../lib/http/local-adapter.ts';
import { InMemoryQueue } from '../lib/queue/memory.ts';
import { dynamoClient } from '../lib/store/client.ts';
import { createTable, DynamoRunStore } from '../lib/store/dynamodb.ts';
import { startDynamoDbLocal } from '../lib/store/dynamodb-local.ts';
import { buildRegistry } from '../lib/workflows/index.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

type Results = Record<string, Record<string, number>>;

const RUNS = 30;
const SAMPLES = 40;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

/** Requests `a` and `b` alternately, so load on this shared machine hits both alike. */
async function measurePair(
  a: string,
  b: string,
): Promise<[{ bytes: number; ttfbMs: number }, { bytes: number; ttfbMs: number }]> {
  const times: [number[], number[]] = [[], []];
  const bytes = [0, 0];
  for (let i = 0; i < SAMPLES; i++) {
    for (const [k, url] of [a, b].entries()) {
      const started = performance.now();
      const res = await fetch(url);
      times[k as 0 | 1].push(performance.now() - started);
      const body = Buffer.from(await res.arrayBuffer());
      if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
      bytes[k] = body.length;
    }
  }
  return [
    { bytes: bytes[0]!, ttfbMs: median(times[0]) },
    { bytes: bytes[1]!, ttfbMs: median(times[1]) },
  ];
}

export async function benchConsole(): Promise<Results> {
  const db = process.env.DYNAMODB_ENDPOINT ? undefined : await startDynamoDbLocal();
  const endpoint = process.env.DYNAMODB_ENDPOINT ?? db!.endpoint;
  const client = dynamoClient(endpoint);
  const tableName = `bench-console-${randomBytes(4).toString('hex')}`;
  await createTable(client, tableName);
  const store = new DynamoRunStore(client, { tableName });
  const engine = new Engine<unknown>({
    store,
    queue: new InMemoryQueue(),
    workflows: buildRegistry(),
    services: {},
  });
  let sample = '';
  for (let i = 0; i < RUNS; i++) {
    const { run } = await engine.startRun({
      workflow: 'issue-pipeline',
      subject: { repo: 'acme/app', issue: i + 1, key: `acme/app#${i + 1}` },
      trigger: { source: 'github', actor: 'alice', event: 'issues.labeled' },
      input: { event: { subject: { title: `Fix the parser, case ${i + 1}` } } },
    });
    sample ||= run.id;
  }
  // One run as the pipeline leaves it at the approval gate: a plan of 3 tasks and its history.
  const run = (await store.getRun(sample))!;
  const plan = {
    version: 'p0123456789ab',
    title: 'Fix the parser, case 1',
    summary: 'It breaks on `src/parser.ts`.',
    tasks: [1, 2, 3].map((n) => ({
      id: `t${n}`,
      title: `Task ${n}`,
      agent: 'coder',
      files: ['src/parser.ts'],
      done: false,
    })),
  };
  const nodeEvent = { intake: 'intake.accepted', route: 'routing.decided', plan: 'plan.created' } as const;
  const events = (['intake', 'route', 'plan'] as const).flatMap((node): NewEvent[] => [
    { type: 'step.scheduled', node, detail: { attempt: 1 } },
    { type: nodeEvent[node], node, detail: { note: 'x'.repeat(80) } },
    { type: 'step.succeeded', node, detail: { attempt: 1, durationMs: 12 } },
    { type: 'node.completed', node, detail: { edge: null } },
  ]);
  await store.commit({
    run: {
      ...run,
      status: 'waiting',
      node: 'approval',
      version: run.version + 1,
      data: { ...run.data, plan },
      gate: {
        node: 'approval',
        kind: 'approval',
        binding: plan.version,
        expiresAt: '2999-01-01T00:00:00.000Z',
      },
    },
    expectedVersion: run.version,
    events: [...events, { type: 'gate.opened', node: 'approval', detail: { binding: plan.version } }],
  });

  const runs = apiGateway(makeRunsApi({ store, version: 'bench' }));
  const console = apiGateway(
    makeConsole({ store, engine, policy: async () => ({}), access: { mode: 'loopback' } }),
  );
  const server = createServer(
    httpListener([
      { method: 'GET', path: '/runs', handler: runs },
      { method: 'GET', path: '/runs/{id}', handler: runs },
      { method: 'GET', path: '/console', handler: console },
      { method: 'GET', path: '/console/runs/{id}', handler: console },
    ]),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  try {
    // Warm both paths (module code, connections, DynamoDB Local's caches) before timing.
    for (const p of ['/runs', `/runs/${sample}`, '/console', `/console/runs/${sample}`])
      await fetch(base + p);
    const [runsList, list] = await measurePair(`${base}/runs`, `${base}/console`);
    const [runJson, page] = await measurePair(`${base}/runs/${sample}`, `${base}/console/runs/${sample}`);
    const assetBytes = Object.values(ASSETS).reduce((n, a) => n + Buffer.byteLength(a.body), 0);
    return {
      console: {
        listBytes: list.bytes,
        runPageBytes: page.bytes,
        assetBytes,
        runsApiBytes: runsList.bytes,
        runApiBytes: runJson.bytes,
        listBytesRatio: list.bytes / runsList.bytes,
        runPageBytesRatio: page.bytes / runJson.bytes,
        listTtfbMs: list.ttfbMs,
        runPageTtfbMs: page.ttfbMs,
        runsApiTtfbMs: runsList.ttfbMs,
        runApiTtfbMs: runJson.ttfbMs,
        listTtfbRatio: list.ttfbMs / runsList.ttfbMs,
        runPageTtfbRatio: page.ttfbMs / runJson.ttfbMs,
      },
    };
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
    await db?.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const results = await benchConsole();
  for (const [k, v] of Object.entries(results.console!)) console.log(`| console | ${k} | ${v} |`);
}
