import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCallbackDeps, makeHandler } from '../../lib/app/callbacks.ts';
import { type AgentWorld, agentsYaml, agentWorld, TEST_ENV } from './support.ts';

/** An HTTP agent on loopback: records each task and answers with `status`. */
class FakeAgent {
  readonly tasks: Array<{
    headers: Record<string, string | string[] | undefined>;
    raw: string;
    body: Record<string, unknown>;
  }> = [];
  status = 202;
  private server: Server | undefined;
  url = '';
  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        this.tasks.push({ headers: req.headers, raw, body: JSON.parse(raw) as Record<string, unknown> });
        res.writeHead(this.status, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    const addr = this.server.address();
    this.url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/tasks`;
    return this;
  }
  async stop(): Promise<void> {
    await new Promise<void>((r) => this.server!.close(() => r()));
  }
}

const sign = (secret: string, body: string) =>
  `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

function callbackEvent(url: string, body: string, signature: string | undefined): APIGatewayProxyEventV2 {
  const path = new URL(url).pathname;
  const token = path.split('/').pop()!;
  return {
    version: '2.0',
    routeKey: 'POST /callbacks/{token}',
    rawPath: path,
    rawQueryString: '',
    headers: {
      'content-type': 'application/json',
      ...(signature ? { 'x-switchyard-signature': signature } : {}),
    },
    pathParameters: { token },
    requestContext: {
      accountId: 'local',
      apiId: 'local',
      domainName: 'localhost',
      domainPrefix: 'local',
      http: { method: 'POST', path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'agent' },
      requestId: 'req',
      routeKey: 'POST /callbacks/{token}',
      stage: '$default',
      time: '01/Jan/2026:00:00:00 +0000',
      timeEpoch: 0,
    },
    body,
    isBase64Encoded: false,
  };
}

describe('the HTTP executor and its signed callback', () => {
  let agent: FakeAgent;
  let w: AgentWorld;
  beforeEach(async () => {
    agent = await new FakeAgent().start();
  });
  afterEach(async () => {
    await w?.stop();
    await agent.stop();
  });

  async function world(extra = '') {
    const yaml = agentsYaml(`  http-coder:
    type: coder
    executor: { type: http, url: "${agent.url}"${extra} }
    permissions: [read]
    envAllowlist: [SWITCHYARD_AGENT_MODEL, GITHUB_TOKEN]`);
    w = await agentWorld({
      yaml,
      publicUrl: 'https://switchyard.example.com/',
      env: { ...TEST_ENV, AGENT_SHARED_SECRET: 'shared-secret-for-agents' },
    });
    const handler = makeHandler(
      createCallbackDeps({
        store: w.h.store,
        queue: w.h.queue,
        engine: w.h.engine,
        env: { AGENT_SHARED_SECRET: 'shared-secret-for-agents' },
        now: w.clock.now,
      }),
    );
    return handler;
  }

  it('posts the task with a callback URL and a per-task secret; the signed callback resumes the run', async () => {
    const handler = await world();
    const run = await w.start([{ agent: 'http-coder', title: 'Add a flag' }]);
    expect(run.status).toBe('waiting');
    const [sent] = agent.tasks;
    const callback = sent!.body.callback as { url: string; secret: string; expiresAt: string };
    expect(callback.url).toMatch(/^https:\/\/switchyard\.example\.com\/callbacks\/[A-Za-z0-9_-]{43}$/);
    expect(sent!.body).toMatchObject({
      run: run.id,
      task: { title: 'Add a flag' },
      env: { SWITCHYARD_AGENT_MODEL: 'model-x' },
    });
    expect(sent!.headers['x-switchyard-run']).toBe(run.id);

    const body = JSON.stringify({
      ok: true,
      summary: 'flag added',
      url: 'https://github.com/acme/app/pull/5',
    });
    const res = await handler(callbackEvent(callback.url, body, sign(callback.secret, body)));
    await w.h.settle();

    expect(res.statusCode).toBe(200);
    const done = await w.run(run.id);
    expect(done.status).toBe('succeeded');
    expect(done.data.execution).toMatchObject({
      tasks: [{ id: 't1', status: 'done', url: 'https://github.com/acme/app/pull/5' }],
    });
    // One-time: the same callback again is refused.
    expect((await handler(callbackEvent(callback.url, body, sign(callback.secret, body)))).statusCode).toBe(
      409,
    );
  });

  it('never sends a credential of ours in the HTTP payload', async () => {
    await world();
    await w.start([{ agent: 'http-coder', title: `Use ${TEST_ENV.GITHUB_TOKEN}` }]);
    const raw = agent.tasks[0]!.raw;
    expect(raw).not.toContain('GITHUB_TOKEN');
    expect(raw).not.toContain(TEST_ENV.GITHUB_TOKEN);
    expect(raw).not.toContain('shared-secret-for-agents');
  });

  it('signs the task with the configured secret, and then sends no per-task secret', async () => {
    const handler = await world(', secretEnv: AGENT_SHARED_SECRET');
    const run = await w.start([{ agent: 'http-coder' }]);
    const sent = agent.tasks[0]!;
    expect(sent.headers['x-switchyard-signature']).toBe(sign('shared-secret-for-agents', sent.raw));
    const callback = sent.body.callback as { url: string; secret?: string };
    expect(callback.secret).toBeUndefined();
    const body = JSON.stringify({ status: 'failure', summary: 'could not build' });
    expect((await handler(callbackEvent(callback.url, body, sign('wrong', body)))).statusCode).toBe(401);
    expect(
      (await handler(callbackEvent(callback.url, body, sign('shared-secret-for-agents', body)))).statusCode,
    ).toBe(200);
    await w.h.settle();
    const events = await w.events(run.id);
    expect(events.find((e) => e.type === 'work.task.failed')?.detail).toMatchObject({
      summary: 'could not build',
    });
  });

  it('fails fast when the agent refuses the task (4xx)', async () => {
    await world();
    agent.status = 400;
    const run = await w.start([{ agent: 'http-coder' }]);
    const failed = await w.run(run.id);
    expect(failed.status).toBe('failed');
    expect(failed.reason).toContain('answered 400');
    expect(agent.tasks).toHaveLength(1);
    expect((await w.hub.queue.snapshot()).running).toEqual([]);
  });

  it('retries when the agent is down (5xx), then gives up with a report', async () => {
    await world();
    agent.status = 503;
    const run = await w.start([{ agent: 'http-coder' }]);
    const failed = await w.run(run.id);
    expect(failed.status).toBe('failed');
    expect(failed.reason).toContain('after 3 attempts');
    expect(agent.tasks).toHaveLength(3);
  });

  it('fails the task when the token expires, and then answers a late callback with 410', async () => {
    const handler = await world();
    const run = await w.start([{ agent: 'http-coder' }]);
    const callback = agent.tasks[0]!.body.callback as { url: string; secret: string };
    w.clock.advance(2 * 3600_000 + 1);
    await w.h.engine.sweep();
    await w.h.settle();
    const failed = await w.run(run.id);
    expect(failed.status).toBe('failed');
    expect(failed.reason).toContain('agent http-coder timed out');
    const body = JSON.stringify({ ok: true });
    expect((await handler(callbackEvent(callback.url, body, sign(callback.secret, body)))).statusCode).toBe(
      410,
    );
  });
});
