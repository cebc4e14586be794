import { createHmac } from 'node:crypto';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  CALLBACK_GROUP,
  type CallbackDeps,
  handleCallback as callbackEndpoint,
  issueCallbackToken,
  type ResumeFn,
} from '../../lib/agents/callbacks.ts';
import { toRequest, type WireRequest } from '../../lib/http/request.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { createTestStore } from '../support/dynamo.ts';

/** The endpoint over a request as the transport hands it over (converted once, as in production). */
const handleCallback = (deps: CallbackDeps, req: WireRequest) => callbackEndpoint(deps, toRequest(req));

/** Signed with node:crypto directly, not with the code under test. */
const sign = (secret: string, body: string) =>
  `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

describe('signed agent callbacks', () => {
  let store: DynamoRunStore;
  let now: Date;
  let resumed: Array<Parameters<ResumeFn>[0]>;
  let answer: Awaited<ReturnType<ResumeFn>>;
  let deps: CallbackDeps;

  beforeAll(async () => {
    store = await createTestStore();
  });
  beforeEach(() => {
    now = new Date();
    resumed = [];
    answer = 'resumed';
    deps = {
      store,
      now: () => now,
      env: { AGENT_SHARED_SECRET: 'shared-secret-value' },
      resume: async (r) => {
        resumed.push(r);
        return answer;
      },
    };
  });

  async function mint(opts: { perTask?: boolean } = {}) {
    const perTask = opts.perTask ?? true;
    const { token, secret } = await issueCallbackToken(store, {
      runId: 'r1',
      item: 'r1.t1.1',
      correlation: 'r1.t1.1',
      agent: 'http-coder',
      expiresAt: new Date(now.getTime() + 3600_000).toISOString(),
      ...(perTask ? {} : { secretEnv: 'AGENT_SHARED_SECRET' }),
      perTaskSecret: perTask,
    });
    return { token, secret: secret ?? 'shared-secret-value' };
  }

  const request = (
    token: string | undefined,
    body: string,
    headers: Record<string, string> = {},
  ): WireRequest => ({
    method: 'POST',
    params: { token },
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });

  it('resumes the run with a correctly signed result', async () => {
    const { token, secret } = await mint();
    const body = JSON.stringify({ ok: true, summary: 'done', url: 'https://example.com/pr/1' });
    const res = await handleCallback(
      deps,
      request(token, body, { 'X-Switchyard-Signature': sign(secret, body) }),
    );
    expect(res.statusCode).toBe(200);
    expect(resumed).toEqual([
      {
        runId: 'r1',
        item: 'r1.t1.1',
        correlation: 'r1.t1.1',
        ok: true,
        by: 'http-coder',
        payload: {
          conclusion: 'success',
          summary: 'done',
          url: 'https://example.com/pr/1',
          executor: 'http',
        },
      },
    ]);
  });

  it('accepts a configured shared secret instead of a per-task one', async () => {
    const { token, secret } = await mint({ perTask: false });
    const body = JSON.stringify({ status: 'failure', summary: 'tests fail' });
    const res = await handleCallback(
      deps,
      request(token, body, { 'x-switchyard-signature': sign(secret, body) }),
    );
    expect(res.statusCode).toBe(200);
    expect(resumed[0]).toMatchObject({ ok: false, payload: { conclusion: 'failure' } });
  });

  it('never stores the token itself, only its hash', async () => {
    const { token } = await mint();
    const items = await store.kvList(CALLBACK_GROUP);
    expect(items.length).toBeGreaterThan(0);
    expect(JSON.stringify(items)).not.toContain(token);
  });

  it.each([
    ['GET', 'method', 405],
    ['POST', 'content type', 400],
    ['POST', 'size', 413],
    ['POST', 'malformed token', 401],
    ['POST', 'unknown token', 404],
    ['POST', 'missing signature', 401],
    ['POST', 'wrong signature', 401],
    ['POST', 'signature over other bytes', 401],
    ['POST', 'malformed JSON', 400],
  ])('%s with a bad %s gets %i and resumes nothing', async (method, what, status) => {
    const { token, secret } = await mint();
    let body = JSON.stringify({ ok: true });
    let headers: Record<string, string> = { 'x-switchyard-signature': sign(secret, body) };
    let t: string | undefined = token;
    if (what === 'content type') headers['content-type'] = 'text/plain';
    if (what === 'size') {
      body = JSON.stringify({ ok: true, pad: 'x'.repeat(1024 * 1024) });
      headers['x-switchyard-signature'] = sign(secret, body);
    }
    if (what === 'malformed token') t = 'short';
    if (what === 'unknown token') t = 'A'.repeat(43);
    if (what === 'missing signature') headers = {};
    if (what === 'wrong signature') headers['x-switchyard-signature'] = sign('another-secret', body);
    if (what === 'signature over other bytes') body = JSON.stringify({ ok: false });
    if (what === 'malformed JSON') {
      body = '{"ok": tru';
      headers['x-switchyard-signature'] = sign(secret, body);
    }
    const res = await handleCallback(deps, { ...request(t, body, headers), method });
    expect(res.statusCode).toBe(status);
    expect(resumed).toEqual([]);
  });

  it('is one-time: a second use of the token gets 409', async () => {
    const { token, secret } = await mint();
    const body = JSON.stringify({ ok: true });
    const req = request(token, body, { 'x-switchyard-signature': sign(secret, body) });
    expect((await handleCallback(deps, req)).statusCode).toBe(200);
    expect((await handleCallback(deps, req)).statusCode).toBe(409);
    expect(resumed).toHaveLength(1);
  });

  it('lets exactly one of two concurrent deliveries through', async () => {
    const { token, secret } = await mint();
    const body = JSON.stringify({ ok: true });
    const req = request(token, body, { 'x-switchyard-signature': sign(secret, body) });
    const codes = (await Promise.all([handleCallback(deps, req), handleCallback(deps, req)])).map(
      (r) => r.statusCode,
    );
    expect(codes.sort()).toEqual([200, 409]);
    expect(resumed).toHaveLength(1);
  });

  it('answers 410 once the token has expired (the task has failed as timed out)', async () => {
    const { token, secret } = await mint();
    now = new Date(now.getTime() + 3600_001);
    const body = JSON.stringify({ ok: true });
    const res = await handleCallback(
      deps,
      request(token, body, { 'x-switchyard-signature': sign(secret, body) }),
    );
    expect(res.statusCode).toBe(410);
    expect(resumed).toEqual([]);
  });

  it('answers 410 when the run no longer waits for the result', async () => {
    answer = 'stale';
    const { token, secret } = await mint();
    const body = JSON.stringify({ ok: true });
    const res = await handleCallback(
      deps,
      request(token, body, { 'x-switchyard-signature': sign(secret, body) }),
    );
    expect(res.statusCode).toBe(410);
  });

  it('gives the token back when resuming fails on our side, so the agent may retry', async () => {
    const { token, secret } = await mint();
    const body = JSON.stringify({ ok: true });
    const req = request(token, body, { 'x-switchyard-signature': sign(secret, body) });
    const failing: CallbackDeps = { ...deps, resume: async () => Promise.reject(new Error('store down')) };
    await expect(handleCallback(failing, req)).rejects.toThrow('store down');
    expect((await handleCallback(deps, req)).statusCode).toBe(200);
  });

  it('accepts a base64-encoded body (API Gateway) with the signature over the decoded bytes', async () => {
    const { token, secret } = await mint();
    const body = JSON.stringify({ ok: true });
    const res = await handleCallback(deps, {
      ...request(token, Buffer.from(body).toString('base64'), {
        'x-switchyard-signature': sign(secret, body),
      }),
      isBase64Encoded: true,
    });
    expect(res.statusCode).toBe(200);
  });

  /** `{"a":{"a":...}}` nested `depth` levels around `leaf`. */
  const nested = (depth: number, leaf: unknown = 1): unknown => {
    let v: unknown = leaf;
    for (let i = 0; i < depth; i++) v = { a: v };
    return v;
  };

  /** The same nesting written as text (JSON.stringify itself overflows on the deepest case). */
  const deepText = (depth: number) => `{"ok":true,"output":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`;

  it.each([
    { label: 'an output nested 40 levels deep', bad: JSON.stringify({ ok: true, output: nested(40) }) },
    { label: 'an output nested 50,000 levels deep', bad: deepText(50_000) },
    { label: 'a conclusion that is not a word', bad: JSON.stringify({ conclusion: 'x'.repeat(65) }) },
    { label: 'a consult that is an array', bad: JSON.stringify({ ok: true, consult: ['coverage'] }) },
    {
      label: 'a consult with a nested field',
      bad: JSON.stringify({ ok: true, consult: { type: 'coverage', question: { a: 1 } } }),
    },
    {
      label: 'a consult over 4,000 bytes',
      bad: JSON.stringify({ ok: true, consult: { question: 'q'.repeat(5_000) } }),
    },
    { label: 'a summary that is not a string', bad: JSON.stringify({ ok: true, summary: { text: 'done' } }) },
  ])('answers $label with 400 and leaves the token usable', async ({ bad }) => {
    const { token, secret } = await mint();
    const good = JSON.stringify({ ok: true, summary: 'done' });

    const refused = await handleCallback(
      deps,
      request(token, bad, { 'x-switchyard-signature': sign(secret, bad) }),
    );
    const retried = await handleCallback(
      deps,
      request(token, good, { 'x-switchyard-signature': sign(secret, good) }),
    );

    expect(refused.statusCode).toBe(400);
    expect(JSON.parse(refused.body).error).toEqual(expect.any(String));
    expect(retried.statusCode).toBe(200);
    expect(resumed).toHaveLength(1);
    expect(resumed[0]?.payload).toMatchObject({ summary: 'done' });
  });

  it('keeps an output nested within the limit as JSON', async () => {
    const { token, secret } = await mint();
    const body = JSON.stringify({ ok: true, output: nested(8) });
    const res = await handleCallback(
      deps,
      request(token, body, { 'x-switchyard-signature': sign(secret, body) }),
    );
    expect(res.statusCode).toBe(200);
    expect(resumed[0]?.payload.output).toEqual(nested(8));
  });
});
