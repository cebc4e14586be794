import { randomBytes, randomUUID } from 'node:crypto';
import type { APIGatewayProxyEventV2WithIAMAuthorizer } from 'aws-lambda';
import { beforeAll, describe, expect, it } from 'vitest';
import { type RunsApiDeps, makeRunsApi as runsEndpoint } from '../../lib/api/runs.ts';
import type { Run } from '../../lib/engine/types.ts';
import type { WorkflowDefinition } from '../../lib/engine/workflow.ts';
import { apiGateway, type HttpEvent, type HttpResult } from '../../lib/http/apigw.ts';
import { dynamoClient } from '../../lib/store/client.ts';
import { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { testClock } from '../engine/kit.ts';

/** The endpoint behind API Gateway, as deployed (lib/app/runs-api.ts). */
const makeRunsApi = (deps: RunsApiDeps) => apiGateway(runsEndpoint(deps));

import { testEndpoint } from '../support/dynamo.ts';
import { type Harness, harness } from '../support/harness.ts';

/**
 * The API Gateway HTTP API (payload 2.0) event for `method path?query`, as AWS sends it to the
 * runs function: the /runs routes are IAM-authorized, so the caller's identity rides along.
 */
function apiEvent(method: string, target: string): HttpEvent {
  const url = new URL(target, 'https://api.example.com');
  const query = Object.fromEntries(url.searchParams);
  const now = new Date();
  const routeKey = url.pathname.startsWith('/runs/') ? `${method} /runs/{id}` : `${method} ${url.pathname}`;
  const id = /^\/runs\/([^/]+)$/.exec(url.pathname)?.[1];
  const event: APIGatewayProxyEventV2WithIAMAuthorizer = {
    version: '2.0',
    routeKey,
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers: {
      accept: 'application/json',
      host: 'abc123.execute-api.eu-west-1.amazonaws.com',
      'user-agent': 'aws-cli/2.15.0',
      'x-amz-date': '20260101T000000Z',
      'x-forwarded-for': '203.0.113.9',
      'x-forwarded-proto': 'https',
    },
    ...(Object.keys(query).length > 0 ? { queryStringParameters: query } : {}),
    ...(id ? { pathParameters: { id: decodeURIComponent(id) } } : {}),
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      authorizer: {
        iam: {
          accessKey: 'AKIAEXAMPLE',
          accountId: '123456789012',
          callerId: 'AIDAEXAMPLE',
          cognitoIdentity: null,
          principalOrgId: 'o-example',
          userArn: 'arn:aws:iam::123456789012:user/operator',
          userId: 'AIDAEXAMPLE',
        },
      },
      domainName: 'abc123.execute-api.eu-west-1.amazonaws.com',
      domainPrefix: 'abc123',
      http: {
        method,
        path: url.pathname,
        protocol: 'HTTP/1.1',
        sourceIp: '203.0.113.9',
        userAgent: 'aws-cli/2.15.0',
      },
      requestId: randomUUID(),
      routeKey,
      stage: '$default',
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
    },
    isBase64Encoded: false,
  };
  return event;
}

const bodyOf = (res: HttpResult) => JSON.parse(res.body ?? '') as Record<string, unknown>;
const idsOf = (res: HttpResult) => (bodyOf(res).runs as Array<{ id: string }>).map((r) => r.id);

const QUICK: WorkflowDefinition<unknown> = {
  name: 'quick',
  version: 1,
  start: 'only',
  nodes: { only: { handler: async () => ({ output: { done: true } }) } },
  edges: [],
};

const GATED: WorkflowDefinition<unknown> = {
  name: 'gated',
  version: 1,
  start: 'plan',
  nodes: {
    plan: { handler: async () => ({ output: { plan: 'v1' } }) },
    approve: {
      handler: async () => ({ wait: { kind: 'approval', binding: 'v1', expiresInMs: 3_600_000 } }),
    },
    ship: { handler: async () => ({ output: { shipped: true } }) },
  },
  edges: [
    { from: 'plan', to: 'approve' },
    { from: 'approve', to: 'ship', on: 'approved' },
  ],
};

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe('runs API', () => {
  let h: Harness<unknown>;
  let api: (event: HttpEvent) => Promise<HttpResult>;
  /** The runs, oldest first: one per status the filters are tried with. */
  const runs = {} as Record<'succeeded' | 'waiting' | 'other' | 'cancelled' | 'queued', Run>;

  beforeAll(async () => {
    const clock = testClock();
    h = await harness<unknown>([QUICK, GATED], { now: clock.now });
    const start = async (workflow: string, subject: string) => {
      clock.advance(1_000); // distinct createdAt, so "newest first" has one answer
      return (await h.engine.startRun({ workflow, subject, trigger: { source: 'test', actor: 'alice' } }))
        .run;
    };
    runs.succeeded = await start('quick', 'acme/app#1');
    runs.waiting = await start('gated', 'acme/app#2');
    runs.other = await start('quick', 'other/lib#3');
    runs.cancelled = await start('gated', 'other/lib#4');
    await h.settle();
    await h.engine.signal(runs.cancelled.id, { type: 'cancel', by: 'bob', reason: 'duplicate' });
    // A run nobody has picked up yet: started by an engine whose queue has no consumer.
    const idle = await harness<unknown>([QUICK], { store: h.store, autoConsume: false, now: clock.now });
    clock.advance(1_000);
    runs.queued = (
      await idle.engine.startRun({ workflow: 'quick', subject: 'other/lib', trigger: { source: 'test' } })
    ).run;
    await h.settle();
    api = makeRunsApi({ store: h.store, version: '1.2.3' });
  });

  describe('GET /health', () => {
    it('answers 200 with status ok, the version and a store check', async () => {
      const res = await api(apiEvent('GET', '/health'));

      expect(res.statusCode).toBe(200);
      expect(res.headers).toMatchObject({ 'content-type': 'application/json' });
      expect(bodyOf(res)).toEqual({
        status: 'ok',
        version: '1.2.3',
        timestamp: expect.stringMatching(ISO),
        checks: { store: 'ok' },
      });
    });

    it('answers 503 degraded, naming the failure, when the store cannot be read', async () => {
      const missing = new DynamoRunStore(dynamoClient(testEndpoint()), {
        tableName: `missing-${randomBytes(4).toString('hex')}`,
      });

      const res = await makeRunsApi({ store: missing, version: '1.2.3' })(apiEvent('GET', '/health'));

      expect(res.statusCode).toBe(503);
      expect(bodyOf(res)).toMatchObject({
        status: 'degraded',
        checks: { store: 'ResourceNotFoundException' },
      });
    });
  });

  describe('GET /runs', () => {
    it('lists runs newest first', async () => {
      const res = await api(apiEvent('GET', '/runs'));

      expect(res.statusCode).toBe(200);
      expect(idsOf(res)).toEqual([
        runs.queued.id,
        runs.cancelled.id,
        runs.other.id,
        runs.waiting.id,
        runs.succeeded.id,
      ]);
    });

    it.each([
      ['queued', ['queued']],
      ['waiting', ['waiting']],
      ['succeeded', ['other', 'succeeded']],
      ['cancelled', ['cancelled']],
      ['failed', []],
    ] as const)('filters by status=%s, active or finished', async (status, expected) => {
      const res = await api(apiEvent('GET', `/runs?status=${status}`));

      expect(idsOf(res)).toEqual(expected.map((k) => runs[k].id));
      expect((bodyOf(res).runs as Run[]).every((r) => r.status === status)).toBe(true);
    });

    it.each([
      ['repo=acme/app', ['waiting', 'succeeded']],
      ['repo=other/lib', ['queued', 'cancelled', 'other']],
      ['repo=other/lib&status=cancelled', ['cancelled']],
      ['repo=nobody/here', []],
      ['limit=2', ['queued', 'cancelled']],
      ['repo=other/lib&limit=1', ['queued']],
    ] as const)('answers ?%s with the matching runs', async (query, expected) => {
      const res = await api(apiEvent('GET', `/runs?${query}`));

      expect(idsOf(res)).toEqual(expected.map((k) => runs[k].id));
    });

    it('accepts a trailing slash', async () => {
      const res = await api(apiEvent('GET', '/runs/?limit=1'));

      expect(idsOf(res)).toEqual([runs.queued.id]);
    });

    it.each([
      ['status=done', 'invalid status'],
      ['status=RUNNING', 'invalid status'],
      ['limit=0', 'invalid limit'],
      ['limit=501', 'invalid limit'],
      ['limit=2.5', 'invalid limit'],
      ['limit=ten', 'invalid limit'],
      ['repo=acme', 'invalid repo'],
      ['repo=acme/app/extra', 'invalid repo'],
      ['repo=acme/app%23issue', 'invalid repo'],
    ])('answers 400 to ?%s', async (query, error) => {
      const res = await api(apiEvent('GET', `/runs?${query}`));

      expect(res.statusCode).toBe(400);
      expect(bodyOf(res)).toMatchObject({ error, detail: expect.any(String) });
    });

    it('returns runs in the contract shape', async () => {
      const res = await api(apiEvent('GET', '/runs?repo=acme/app&status=waiting'));

      const [run] = bodyOf(res).runs as Array<Record<string, unknown>>;
      expect(run).toMatchObject({
        id: runs.waiting.id,
        workflow: 'gated',
        status: 'waiting',
        node: 'approve',
        subject: { repo: 'acme/app', issue: 2 },
        trigger: { source: 'test', actor: 'alice' },
        createdAt: expect.stringMatching(ISO),
        updatedAt: expect.stringMatching(ISO),
      });
    });

    it('adds the workloads next to the runs when they are provided', async () => {
      const withWorkloads = makeRunsApi({
        store: h.store,
        version: '1.2.3',
        workloads: async () => ({ queue: { waiting: 3, running: 1 }, agents: { coder: { running: 1 } } }),
      });

      const res = await withWorkloads(apiEvent('GET', '/runs?limit=1'));

      expect(bodyOf(res)).toEqual({
        runs: [expect.objectContaining({ id: runs.queued.id })],
        queue: { waiting: 3, running: 1 },
        agents: { coder: { running: 1 } },
      });
    });

    it('has no extras without workloads', async () => {
      const res = await api(apiEvent('GET', '/runs?limit=1'));

      expect(Object.keys(bodyOf(res))).toEqual(['runs']);
    });
  });

  describe('GET /runs/{id}', () => {
    it('returns the run and its history in the contract shapes', async () => {
      const res = await api(apiEvent('GET', `/runs/${runs.waiting.id}`));

      expect(res.statusCode).toBe(200);
      const body = bodyOf(res) as { run: Record<string, unknown>; events: Array<Record<string, unknown>> };
      expect(body.run).toMatchObject({
        id: runs.waiting.id,
        workflow: 'gated',
        status: 'waiting',
        node: 'approve',
        subject: { repo: 'acme/app', issue: 2 },
        trigger: { source: 'test', actor: 'alice' },
        createdAt: expect.stringMatching(ISO),
        updatedAt: expect.stringMatching(ISO),
        gate: { node: 'approve', kind: 'approval', binding: 'v1' },
      });
      expect(body.events.map((e) => [e.type, e.node])).toEqual([
        ['run.created', 'plan'],
        ['step.succeeded', 'plan'],
        ['step.scheduled', 'approve'],
        ['step.succeeded', 'approve'],
        ['gate.opened', 'approve'],
      ]);
      for (const e of body.events) {
        expect(e).toEqual({
          seq: expect.any(Number),
          at: expect.stringMatching(ISO),
          type: expect.any(String),
          ...(e.node !== undefined ? { node: expect.any(String) } : {}),
          ...(e.by !== undefined ? { by: expect.any(String) } : {}),
          detail: expect.any(Object),
        });
      }
    });

    it('pages the history with ?after= and ?limit=, the cursor of the next page in nextAfter', async () => {
      const seen: string[] = [];
      let after: number | undefined;
      for (let page = 0; page < 10; page++) {
        const res = await api(
          apiEvent('GET', `/runs/${runs.waiting.id}?limit=2${after !== undefined ? `&after=${after}` : ''}`),
        );
        expect(res.statusCode).toBe(200);
        const body = bodyOf(res) as { events: Array<{ type: string; seq: number }>; nextAfter?: number };
        expect(body.events.length).toBeLessThanOrEqual(2);
        seen.push(...body.events.map((e) => e.type));
        if (body.nextAfter === undefined) break;
        after = body.nextAfter;
      }

      expect(seen).toEqual([
        'run.created',
        'step.succeeded',
        'step.scheduled',
        'step.succeeded',
        'gate.opened',
      ]);
    });

    it.each([
      ['limit=0', 'invalid limit'],
      ['limit=1001', 'invalid limit'],
      ['after=x', 'invalid after'],
    ])('answers 400 to ?%s', async (query, error) => {
      const res = await api(apiEvent('GET', `/runs/${runs.waiting.id}?${query}`));

      expect(res.statusCode).toBe(400);
      expect(bodyOf(res)).toMatchObject({ error });
    });

    it('shows who ended a run and why', async () => {
      const res = await api(apiEvent('GET', `/runs/${runs.cancelled.id}`));

      const body = bodyOf(res) as { run: Record<string, unknown>; events: Array<Record<string, unknown>> };
      expect(body.run).toMatchObject({ status: 'cancelled', reason: 'cancelled by bob: duplicate' });
      expect(body.events).toContainEqual(
        expect.objectContaining({ type: 'signal.cancel', by: 'bob', detail: { reason: 'duplicate' } }),
      );
    });

    it.each([
      ['an unknown id', '/runs/r0000000000notthere', 'run not found'],
      ['an id with characters no run id has', '/runs/run.1', 'not found'],
      ['an unknown path', '/jobs', 'not found'],
    ])('answers 404 to %s', async (_what, path, error) => {
      const res = await api(apiEvent('GET', path));

      expect(res.statusCode).toBe(404);
      expect(bodyOf(res)).toEqual({ error });
    });
  });

  it.each([
    ['POST', '/runs'],
    ['DELETE', '/runs/r123'],
    ['PUT', '/health'],
  ])('answers 405 to %s %s', async (method, path) => {
    const res = await api(apiEvent(method, path));

    expect(res.statusCode).toBe(405);
    expect(bodyOf(res)).toEqual({ error: 'method not allowed' });
  });
});
