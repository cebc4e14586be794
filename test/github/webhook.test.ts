import { describe, expect, it } from 'vitest';
import { type Delivery, handleGitHubWebhook } from '../../lib/github/webhook.ts';
import { toRequest, type WireRequest as WebhookRequest } from '../../lib/http/request.ts';
import { example, sign, signedRequest } from './support.ts';

const SECRET = 'current-secret';
const OLD = 'previous-secret';

function core(secrets: string[] = [SECRET]) {
  const seen: Delivery[] = [];
  const deps = {
    secrets: () => secrets,
    onDelivery: async (d: Delivery) => {
      seen.push(d);
      return { statusCode: 202 as const, body: { status: 'accepted' } };
    },
  };
  return { seen, call: (req: WebhookRequest) => handleGitHubWebhook(deps, toRequest(req)) };
}

const issuePayload = () => example('issues', 'labeled');

describe('GitHub webhook core', () => {
  it('accepts a correctly signed delivery and hands the normalised event on', async () => {
    const { seen, call } = core();
    const req = signedRequest(SECRET, 'issues', issuePayload());
    const res = await call(req);
    expect(res.statusCode).toBe(202);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.event).toMatchObject({
      name: 'issues',
      action: 'labeled',
      delivery: req.delivery,
      label: 'bug',
    });
  });

  it.each([
    ['lowercase (API Gateway v2)', 'lower'],
    ['canonical (as GitHub sends them)', 'canonical'],
  ] as const)('reads headers case-insensitively: %s', async (_name, headerCase) => {
    const { call } = core();
    expect((await call(signedRequest(SECRET, 'issues', issuePayload(), { headerCase }))).statusCode).toBe(
      202,
    );
  });

  it('verifies a base64-encoded body over its decoded bytes', async () => {
    const { call } = core();
    expect((await call(signedRequest(SECRET, 'issues', issuePayload(), { base64: true }))).statusCode).toBe(
      202,
    );
  });

  it('accepts a delivery signed with an older secret during rotation', async () => {
    const { call } = core([SECRET, OLD]);
    expect((await call(signedRequest(OLD, 'issues', issuePayload()))).statusCode).toBe(202);
  });

  it('accepts the form-encoded content type with the JSON in its payload field', async () => {
    const { seen, call } = core();
    const body = `payload=${encodeURIComponent(JSON.stringify(issuePayload()))}`;
    const res = await call({
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-hub-signature-256': sign(SECRET, body),
        'x-github-event': 'issues',
        'x-github-delivery': 'form-1',
      },
      body,
    });
    expect(res.statusCode).toBe(202);
    expect(seen[0]?.event.name).toBe('issues');
  });

  const good = () => signedRequest(SECRET, 'issues', issuePayload());
  it.each<[string, () => WebhookRequest, number]>([
    ['a GET', () => ({ ...good(), method: 'GET' }), 405],
    [
      'no content type',
      () => ({ ...good(), headers: { ...good().headers, 'content-type': undefined } }),
      400,
    ],
    ['text/plain', () => ({ ...good(), headers: { ...good().headers, 'content-type': 'text/plain' } }), 400],
    ['a body over 1 MiB', () => ({ ...good(), body: 'x'.repeat(1024 * 1024 + 1) }), 413],
    ['an empty body', () => ({ ...good(), body: '' }), 400],
    [
      'no signature',
      () => ({ ...good(), headers: { ...good().headers, 'x-hub-signature-256': undefined } }),
      401,
    ],
    [
      'a sha1 signature',
      () => ({ ...good(), headers: { ...good().headers, 'x-hub-signature-256': 'sha1=abc' } }),
      401,
    ],
    ['a signature made with another secret', () => signedRequest('wrong', 'issues', issuePayload()), 401],
    [
      'a body changed after signing',
      () => {
        const r = good();
        return { ...r, body: String(r.body).replace('"labeled"', '"unlabeled"') };
      },
      401,
    ],
    [
      'no event header',
      () => ({ ...good(), headers: { ...good().headers, 'x-github-event': undefined } }),
      400,
    ],
    [
      'no delivery header',
      () => ({ ...good(), headers: { ...good().headers, 'x-github-delivery': undefined } }),
      400,
    ],
    [
      'malformed JSON, correctly signed',
      () => ({
        ...good(),
        body: '{"action":',
        headers: { ...good().headers, 'x-hub-signature-256': sign(SECRET, '{"action":') },
      }),
      400,
    ],
    [
      'a JSON array, correctly signed',
      () => ({
        ...good(),
        body: '[1]',
        headers: { ...good().headers, 'x-hub-signature-256': sign(SECRET, '[1]') },
      }),
      400,
    ],
    ['invalid base64', () => ({ ...good(), body: '%%%not-base64%%%', isBase64Encoded: true }), 400],
  ])('refuses %s with %i and never calls the hub', async (_name, make, status) => {
    const { seen, call } = core();
    const res = await call(make());
    expect(res.statusCode).toBe(status);
    expect(JSON.parse(res.body)).toHaveProperty('error');
    expect(seen).toHaveLength(0);
  });

  it('checks the size before the signature (an unsigned huge body gets 413, not 401)', async () => {
    const { call } = core();
    const res = await call({
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: 'x'.repeat(2 * 1024 * 1024),
    });
    expect(res.statusCode).toBe(413);
  });

  it('answers 500 only for its own failure, and says nothing more', async () => {
    const res = await handleGitHubWebhook(
      {
        secrets: () => [SECRET],
        onDelivery: async () => {
          throw new Error('table unreachable');
        },
      },
      toRequest(signedRequest(SECRET, 'issues', issuePayload())),
    );
    expect(res.statusCode).toBe(500);
    expect(res.body).not.toContain('table unreachable');
  });
});

describe('the Lambda handler (API Gateway HTTP API, payload v2)', () => {
  it('verifies a base64-encoded body with lowercase headers and answers with the hub’s outcome', async () => {
    const { makeHandler } = await import('../../lib/app/github-webhook.ts');
    const seen: Delivery[] = [];
    const handler = makeHandler({
      secrets: async () => [SECRET],
      onDelivery: async (d) => {
        seen.push(d);
        return { statusCode: 202, body: { status: 'accepted' } };
      },
    });
    const req = signedRequest(SECRET, 'issues', issuePayload(), { base64: true });
    const res = await handler({
      version: '2.0',
      routeKey: 'POST /github/webhook',
      rawPath: '/github/webhook',
      rawQueryString: '',
      headers: req.headers as Record<string, string>,
      requestContext: {
        accountId: 'a',
        apiId: 'a',
        domainName: 'x',
        domainPrefix: 'x',
        http: {
          method: 'POST',
          path: '/github/webhook',
          protocol: 'HTTP/1.1',
          sourceIp: '127.0.0.1',
          userAgent: 'GitHub-Hookshot',
        },
        requestId: 'r',
        routeKey: 'POST /github/webhook',
        stage: '$default',
        time: '',
        timeEpoch: 0,
      },
      body: req.body as string,
      isBase64Encoded: true,
    });
    expect(res).toMatchObject({ statusCode: 202, headers: { 'content-type': 'application/json' } });
    expect(JSON.parse(String(res.body))).toEqual({ delivery: req.delivery, status: 'accepted' });
    expect(seen).toHaveLength(1);
  });
});
