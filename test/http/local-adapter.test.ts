import { randomBytes } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { HttpEvent } from '../../lib/http/apigw.ts';
import { httpListener, type Route, toHttpEvent } from '../../lib/http/local-adapter.ts';
import { json, MAX_BODY_BYTES } from '../../lib/http/request.ts';

/** The bytes the event carries, as API Gateway would hand them over (however large). */
const rawBody = (e: HttpEvent) => Buffer.from(e.body ?? '', e.isBase64Encoded ? 'base64' : 'utf8');

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/**
 * Send a request with node:http (not fetch), so header case, repeated query keys and the
 * chunking of a large body are ours to choose.
 */
function send(
  base: string,
  opts: { method?: string; path: string; headers?: Record<string, string>; body?: Buffer; chunk?: number },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}${opts.path}`,
      {
        method: opts.method ?? 'GET',
        headers: {
          ...(opts.body ? { 'content-length': String(opts.body.length) } : {}),
          ...opts.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
      },
    );
    req.on('error', reject);
    const body = opts.body ?? Buffer.alloc(0);
    const size = opts.chunk ?? Math.max(body.length, 1);
    for (let i = 0; i < body.length; i += size) req.write(body.subarray(i, i + size));
    req.end();
  });
}

const jsonOf = (r: Reply) => JSON.parse(r.body.toString('utf8')) as Record<string, unknown>;

describe('local HTTP adapter', () => {
  let server: Server;
  let base: string;
  /** The events the handlers received, newest last. */
  const events: HttpEvent[] = [];
  const errors: unknown[] = [];
  const last = () => events.at(-1)!;

  const record = async (event: HttpEvent) => {
    events.push(event);
    return json(200, { ok: true });
  };
  const routes: Route[] = [
    { method: 'GET', path: '/runs', handler: record },
    { method: 'GET', path: '/runs/{id}', handler: record },
    { method: 'POST', path: '/github/webhook', handler: record },
    {
      method: 'POST',
      path: '/upload',
      // Like the real handlers: decide on size from the bytes received.
      handler: async (event) => {
        events.push(event);
        const bytes = rawBody(event).length;
        return bytes > MAX_BODY_BYTES ? json(413, { error: 'payload too large' }) : json(200, { bytes });
      },
    },
    {
      method: 'GET',
      path: '/boom',
      handler: async () => {
        throw new Error('connection to db-prod.internal:5432 refused for user admin');
      },
    },
    {
      method: 'GET',
      path: '/logo.png',
      handler: async () => ({
        statusCode: 200,
        headers: { 'content-type': 'image/png', 'cache-control': 'max-age=60' },
        body: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff]).toString('base64'),
        isBase64Encoded: true,
      }),
    },
  ];

  beforeAll(async () => {
    server = createServer(httpListener(routes, (err) => errors.push(err)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  beforeEach(() => {
    events.length = 0;
    errors.length = 0;
  });

  it('builds a payload 2.0 event with the route key, path and method', async () => {
    await send(base, { path: '/runs' });

    expect(last()).toMatchObject({
      version: '2.0',
      routeKey: 'GET /runs',
      rawPath: '/runs',
      rawQueryString: '',
      requestContext: { http: { method: 'GET', path: '/runs', sourceIp: '127.0.0.1' }, stage: '$default' },
      isBase64Encoded: false,
    });
    expect(last().body).toBeUndefined();
    expect(last().queryStringParameters).toBeUndefined();
  });

  it('passes header names in lower case', async () => {
    await send(base, {
      path: '/runs',
      headers: { 'X-GitHub-Event': 'issues', 'User-Agent': 'GitHub-Hookshot/abc123', Accept: '*/*' },
    });

    expect(last().headers).toMatchObject({
      'x-github-event': 'issues',
      'user-agent': 'GitHub-Hookshot/abc123',
      accept: '*/*',
    });
    expect(Object.keys(last().headers).filter((k) => k !== k.toLowerCase())).toEqual([]);
    expect(last().requestContext.http.userAgent).toBe('GitHub-Hookshot/abc123');
  });

  it('splits cookies out of the headers, as API Gateway does', async () => {
    await send(base, { path: '/runs', headers: { Cookie: 'session=abc; theme=dark' } });

    expect(last().cookies).toEqual(['session=abc', 'theme=dark']);
    expect(last().headers.cookie).toBeUndefined();
  });

  it('passes query parameters, joining a repeated one with commas', async () => {
    await send(base, { path: '/runs?status=waiting&limit=5&repo=acme%2Fapp&tag=a&tag=b' });

    expect(last().queryStringParameters).toEqual({
      status: 'waiting',
      limit: '5',
      repo: 'acme/app',
      tag: 'a,b',
    });
    expect(last().rawQueryString).toBe('status=waiting&limit=5&repo=acme%2Fapp&tag=a&tag=b');
  });

  it.each([
    ['/runs/rlz1k2m3a1b2c3d4e5', 'rlz1k2m3a1b2c3d4e5'],
    ['/runs/run%20one', 'run one'],
  ])('takes the path parameter of %s from /runs/{id}', async (path, id) => {
    await send(base, { path });

    expect(last().routeKey).toBe('GET /runs/{id}');
    expect(last().pathParameters).toEqual({ id });
  });

  it.each([
    'application/json',
    'application/json; charset=utf-8',
    'application/x-www-form-urlencoded',
    'text/plain; charset=utf-8',
  ])('passes a %s body as text', async (contentType) => {
    const body = 'payload={"action":"opened","title":"Ünïcödé ☃"}';

    await send(base, {
      method: 'POST',
      path: '/github/webhook',
      headers: { 'Content-Type': contentType },
      body: Buffer.from(body),
    });

    expect(last()).toMatchObject({ body, isBase64Encoded: false });
  });

  it.each([['application/octet-stream'], ['image/png'], ['application/x-protobuf']])(
    'passes a %s body base64-encoded, flagged isBase64Encoded',
    async (contentType) => {
      const bytes = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x7f, 0x0a]);

      await send(base, {
        method: 'POST',
        path: '/upload',
        headers: { 'Content-Type': contentType },
        body: bytes,
      });

      expect(last()).toMatchObject({ body: bytes.toString('base64'), isBase64Encoded: true });
      expect(rawBody(last())).toEqual(bytes);
    },
  );

  it('treats a body without a content type as binary', async () => {
    await send(base, { method: 'POST', path: '/upload', body: Buffer.from('raw') });

    expect(last()).toMatchObject({ body: Buffer.from('raw').toString('base64'), isBase64Encoded: true });
  });

  it.each([
    ['exactly the limit', MAX_BODY_BYTES, 200],
    ['one byte over the limit', MAX_BODY_BYTES + 1, 413],
  ])('lets the handler judge a body of %s', async (_what, size, status) => {
    const res = await send(base, {
      method: 'POST',
      path: '/upload',
      headers: { 'Content-Type': 'application/json' },
      body: Buffer.alloc(size, 0x61),
    });

    expect(res.status).toBe(status);
  });

  it.each([
    ['in one write', 2 * MAX_BODY_BYTES, undefined],
    ['in 100 kB writes', 2 * MAX_BODY_BYTES, 100_000],
    ['in 7 kB writes, just over the limit', MAX_BODY_BYTES + 50_000, 7_001],
    ['in 1 MB writes', 3 * MAX_BODY_BYTES, 1_000_000],
  ])(
    'lets an oversize body sent %s reach the handler as oversize, so it answers 413',
    async (_what, size, chunk) => {
      const res = await send(base, {
        method: 'POST',
        path: '/upload',
        headers: { 'Content-Type': 'application/octet-stream' },
        body: randomBytes(size),
        ...(chunk ? { chunk } : {}),
      });

      expect(res.status).toBe(413);
      expect(rawBody(last()).length).toBeGreaterThan(MAX_BODY_BYTES);
    },
  );

  it('answers 404 to a path no route has, without calling a handler', async () => {
    const res = await send(base, { path: '/nowhere' });

    expect(res.status).toBe(404);
    expect(jsonOf(res)).toEqual({ error: 'not found' });
    expect(events).toEqual([]);
  });

  it.each([
    ['POST', '/runs'],
    ['DELETE', '/runs/r1'],
    ['GET', '/github/webhook'],
  ])('answers 405 to %s %s, a known path with another method', async (method, path) => {
    const res = await send(base, { method, path });

    expect(res.status).toBe(405);
    expect(jsonOf(res)).toEqual({ error: 'method not allowed' });
    expect(events).toEqual([]);
  });

  it('answers 500 without the error when a handler throws, and hands the error to onError', async () => {
    const res = await send(base, { path: '/boom' });

    expect(res.status).toBe(500);
    expect(jsonOf(res)).toEqual({ error: 'internal error' });
    expect(res.body.toString()).not.toMatch(/db-prod|admin|refused/);
    expect(errors).toEqual([new Error('connection to db-prod.internal:5432 refused for user admin')]);
  });

  it("writes a handler's base64 result as raw bytes, with its status and headers", async () => {
    const res = await send(base, { path: '/logo.png' });

    expect(res.status).toBe(200);
    expect(res.headers).toMatchObject({ 'content-type': 'image/png', 'cache-control': 'max-age=60' });
    expect(res.body).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff]));
  });
});

describe('toHttpEvent', () => {
  const socket = { remoteAddress: '198.51.100.7' } as Socket;

  it('joins a header that came as a list with commas and leaves out undefined ones', () => {
    const event = toHttpEvent(
      {
        method: 'get',
        url: '/runs',
        headers: { 'x-forwarded-for': ['203.0.113.1', '198.51.100.7'], 'x-absent': undefined },
        socket,
      },
      Buffer.alloc(0),
      'GET /runs',
      undefined,
    );

    expect(event.headers).toEqual({ 'x-forwarded-for': '203.0.113.1,198.51.100.7' });
    expect(event.requestContext.http).toMatchObject({ method: 'GET', sourceIp: '198.51.100.7' });
  });

  it('stamps the request time it is given', () => {
    const at = new Date('2026-03-01T12:34:56.789Z');

    const event = toHttpEvent(
      { method: 'GET', url: '/health', headers: {}, socket },
      Buffer.alloc(0),
      'GET /health',
      {},
      at,
    );

    expect(event.requestContext).toMatchObject({ timeEpoch: at.getTime(), time: at.toUTCString() });
    expect(event.pathParameters).toBeUndefined();
  });
});
