import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Context, SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createGitHubIngress } from '../../lib/app/github-webhook.ts';
import { createWorkerApp, type WorkerApp } from '../../lib/app/worker.ts';
import { makeHandler as workerFunction } from '../../lib/app/worker-function.ts';
import { normalizeEvent } from '../../lib/github/events.ts';
import { handleGitHubWebhook } from '../../lib/github/webhook.ts';
import { toRequest, type WireRequest as WebhookRequest } from '../../lib/http/request.ts';
import { InMemoryQueue } from '../../lib/queue/memory.ts';
import { parseWorkMessage, type RouteMessage } from '../../lib/queue/port.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { createTestStore } from '../support/dynamo.ts';
import { FakeGitHub } from '../support/fake-github.ts';
import { example, signedRequest, TEST_SECRET } from './support.ts';

/**
 * Issue 15: no speculative runs. A repository whose `.github/switchyard.yml` is not cached, and
 * whose delivery the central config alone ignores, gets no run at ingress: the delivery is queued
 * to be routed later, and the worker fetches the overlay, decides, and starts a run only if
 * something applies, at most once per delivery id.
 *
 * Both halves are the deployed compositions: the webhook function's ingress
 * (functions/github-webhook.ts) and the worker app (lib/app/worker.ts), sharing DynamoDB Local
 * and the in-process queue, with GitHub played by a loopback fake.
 */

const TOKEN = 'route-later-token';
const OVERLAY = '.github/switchyard.yml';

/** Central config: only `ready` labels start runs; new issues are not triaged. */
const CENTRAL = `
version: 1
routing:
  rules:
    - { name: ready-issue, event: issues, action: labeled, label: ready, agents: [planner] }
agents:
  planner: { type: planner, permissions: [read] }
`;

/** A repository's own config that routes its new issues. */
const ROUTES_NEW_ISSUES = `
routing:
  rules:
    - { name: new-issues, event: issues, action: opened, agents: [planner] }
`;

function opened(repo: string, n: number) {
  const p = example('issues', 'opened');
  const [owner = '', name = ''] = repo.split('/');
  Object.assign(p.repository as object, { full_name: repo, name, owner: { login: owner } });
  Object.assign(p.issue as object, { number: n, title: `Issue ${n}`, body: 'Something to do.', labels: [] });
  return p;
}

describe('route later: no speculative runs', () => {
  let gh: FakeGitHub;
  let store: DynamoRunStore;
  let queue: InMemoryQueue;
  let app: WorkerApp;
  let send: (r: WebhookRequest) => Promise<{ statusCode: number; body: Record<string, unknown> }>;
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-route-later-'));

  beforeAll(async () => {
    gh = await new FakeGitHub(TOKEN).start();
  });
  afterAll(async () => {
    queue?.stop();
    await gh.stop();
  });
  beforeEach(async () => {
    queue?.stop();
    gh.requests.length = 0;
    gh.files.clear();
    const configFile = join(dir, 'switchyard.yml');
    writeFileSync(configFile, CENTRAL);
    store = await createTestStore();
    queue = new InMemoryQueue({ timeScale: 0.001, redeliveryMs: 5 });
    app = await createWorkerApp({
      store,
      queue,
      env: {
        SWITCHYARD_CONFIG: configFile,
        GITHUB_TOKEN: TOKEN,
        GITHUB_API_URL: gh.url,
        GITHUB_THROTTLE: 'off',
      },
    });
    queue.consume(async (m) => void (await app.handle(m)));
    const onDelivery = await createGitHubIngress({ store, queue, configFile });
    send = async (r) => {
      const res = await handleGitHubWebhook({ secrets: () => [TEST_SECRET], onDelivery }, toRequest(r));
      return { statusCode: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown> };
    };
  });

  const overlayFetches = (repo: string) =>
    gh.calls('GET', new RegExp(`/repos/${repo}/contents/\\.github/switchyard\\.yml$`)).length;

  it('a new repository’s first issues.opened starts no run when the central config ignores it, and its overlay is fetched once', async () => {
    const repo = 'fresh/quiet';

    const first = await send(signedRequest(TEST_SECRET, 'issues', opened(repo, 1)));
    expect(first).toMatchObject({ statusCode: 202, body: { status: 'deferred' } });
    expect(first.body.run).toBeUndefined();
    const routeMessages = queue.sent.filter((o) => o.message.kind === 'route');
    expect(routeMessages).toHaveLength(1);
    await queue.idle();

    expect(await app.engine.listRuns({ repo })).toEqual([]);
    expect(queue.sent.filter((o) => o.message.kind === 'step')).toEqual([]);
    expect(overlayFetches(repo)).toBe(1);

    // The next new issue: still nothing to run, and the overlay (none) is not fetched again.
    const second = await send(signedRequest(TEST_SECRET, 'issues', opened(repo, 2)));
    expect(second.statusCode).toBe(202);
    await queue.idle();
    expect(await app.engine.listRuns({ repo })).toEqual([]);
    expect(overlayFetches(repo)).toBe(1);
  });

  it('an overlay that routes the delivery yields exactly one run, also with redelivered and concurrent copies', async () => {
    const repo = 'fresh/routed';
    gh.files.set(`${repo}:${OVERLAY}`, ROUTES_NEW_ISSUES);
    gh.addIssue(repo, { number: 5, title: 'Issue 5', body: 'Something to do.' });
    const delivery = 'route-later-delivery-5';
    const copy = () => signedRequest(TEST_SECRET, 'issues', opened(repo, 5), { delivery });

    // Two copies at once (GitHub retrying while the first is in flight), both deferred.
    const answers = await Promise.all([send(copy()), send(copy())]);
    for (const a of answers) expect(a).toMatchObject({ statusCode: 202, body: { status: 'deferred' } });
    await queue.idle();

    let runs = await app.engine.listRuns({ repo });
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({
      workflow: 'issue-pipeline',
      subject: { repo, issue: 5 },
      trigger: { source: 'github', event: 'issues.opened', delivery },
      data: {
        ingress: { outcome: 'run', rule: 'new-issues' },
        routing: { outcome: 'run', rule: 'new-issues' },
      },
    });

    // A redelivery later ("Redeliver" in GitHub's settings): whether ingress routes it itself or
    // defers it again, it is the same delivery id, hence the same run.
    const again = await send(copy());
    expect(again.statusCode).toBe(202);
    await queue.idle();
    runs = await app.engine.listRuns({ repo });
    expect(runs).toHaveLength(1);
    if (again.body.run !== undefined)
      expect(again.body).toMatchObject({ run: runs[0]?.id, outcome: 'duplicate' });
  });

  it('the route-later message carries the normalised delivery and survives the SQS round trip', async () => {
    const repo = 'fresh/wire';
    await send(signedRequest(TEST_SECRET, 'issues', opened(repo, 9), { delivery: 'wire-9' }));
    const sent = queue.sent.find((o) => o.message.kind === 'route')?.message as RouteMessage;
    const body = JSON.stringify(sent);

    expect(parseWorkMessage(body)).toEqual(sent);
    expect(sent).toMatchObject({
      delivery: 'wire-9',
      event: { name: 'issues', action: 'opened', repo: { fullName: repo }, subject: { number: 9 } },
    });
    // Small: the normalised view (bodies bounded), never the raw payload; SQS takes 256 KiB.
    expect(body.length).toBeLessThan(64 * 1024);
    expect(body).not.toContain('"node_id"');
    await queue.idle();
  });

  it('the SQS worker function routes a deferred delivery, and its redelivery makes no second run', async () => {
    const repo = 'fresh/lambda';
    gh.files.set(`${repo}:${OVERLAY}`, ROUTES_NEW_ISSUES);
    gh.addIssue(repo, { number: 3, title: 'Issue 3', body: 'Something to do.' });
    const message: RouteMessage = {
      kind: 'route',
      delivery: 'sqs-route-3',
      event: normalizeEvent('issues', 'sqs-route-3', opened(repo, 3)),
    };
    const record = (id: string): SQSEvent => ({
      Records: [
        {
          messageId: id,
          receiptHandle: id,
          body: JSON.stringify(message),
          attributes: {
            ApproximateReceiveCount: '1',
            SentTimestamp: String(Date.now()),
            SenderId: 'AROAEXAMPLEID:switchyard-github-webhook',
            ApproximateFirstReceiveTimestamp: String(Date.now()),
          },
          messageAttributes: {},
          md5OfBody: '',
          eventSource: 'aws:sqs',
          eventSourceARN: 'arn:aws:sqs:eu-west-1:123456789012:switchyard-work',
          awsRegion: 'eu-west-1',
        },
      ],
    });
    const handler = workerFunction(async () => app);
    const context = { functionName: 'switchyard-worker' } as Context;

    expect(await handler(record('m-1'), context)).toEqual({ batchItemFailures: [] });
    expect(await handler(record('m-2'), context)).toEqual({ batchItemFailures: [] });
    await queue.idle();

    const runs = await app.engine.listRuns({ repo });
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ subject: { repo, issue: 3 }, trigger: { delivery: 'sqs-route-3' } });
  });
});
