import { randomBytes } from 'node:crypto';
import type { APIInteractionResponse } from 'discord-api-types/v10';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeHandler } from '../../lib/app/console.ts';
import { LINK_TTL_SECONDS, SESSION_COOKIE } from '../../lib/console/access.ts';
import type { ConsoleDeps } from '../../lib/console/handler.ts';
import { makeConsoleLink } from '../../lib/discord/console-link.ts';
import { createInteractionRouter } from '../../lib/discord/interactions.ts';
import { policyFromConfig } from '../../lib/discord/policy.ts';
import { Engine } from '../../lib/engine/engine.ts';
import type { Run } from '../../lib/engine/types.ts';
import type { HttpEvent, HttpResult } from '../../lib/http/apigw.ts';
import { InMemoryQueue } from '../../lib/queue/memory.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { buildRegistry } from '../../lib/workflows/index.ts';
import { ADMIN, APPROVER, CHANNEL_ID, command, GUILD_ID, STRANGER } from '../discord/support.ts';
import { createTestStore } from '../support/dynamo.ts';

/**
 * The console's AWS access path, end to end over DynamoDB Local: Discord `/status` (the real
 * interaction router) makes the signed link, the console function redeems it for a session, and
 * the session sees only what the user's Discord rights cover.
 */

const KEY = randomBytes(32).toString('hex');
const BASE = 'https://abc123.execute-api.eu-west-1.amazonaws.com';

/** APPROVER may /status; acme/* is mapped to the channel they ask in; other/* is someone else's. */
const POLICY_DOC = {
  discord: {
    guilds: [GUILD_ID],
    admins: { users: [ADMIN.id] },
    permissions: { status: { roles: APPROVER.roles } },
    channels: [
      { repos: ['acme/*'], channel: CHANNEL_ID, approvers: { roles: APPROVER.roles } },
      { repos: ['other/*'], channel: '1222222222222222222', approvers: { users: ['200000000000000077'] } },
    ],
  },
};

let store: DynamoRunStore;
let engine: Engine<unknown>;
let handle: (e: HttpEvent) => Promise<HttpResult>;
let visible: Run;
let hidden: Run;
let clock = new Date();

function request(
  method: string,
  path: string,
  opts: { cookie?: string; query?: Record<string, string>; form?: Record<string, string> } = {},
): HttpEvent {
  const body = opts.form ? new URLSearchParams(opts.form).toString() : undefined;
  return {
    version: '2.0',
    routeKey: `${method} ${path}`,
    rawPath: path,
    rawQueryString: new URLSearchParams(opts.query ?? {}).toString(),
    headers: {
      host: 'abc123.execute-api.eu-west-1.amazonaws.com',
      ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
    },
    ...(opts.cookie ? { cookies: [opts.cookie] } : {}),
    ...(opts.query ? { queryStringParameters: opts.query } : {}),
    requestContext: {
      accountId: '1',
      apiId: 'abc123',
      domainName: 'abc123.execute-api.eu-west-1.amazonaws.com',
      domainPrefix: 'abc123',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '198.51.100.7', userAgent: 'test' },
      requestId: randomBytes(6).toString('hex'),
      routeKey: `${method} ${path}`,
      stage: '$default',
      time: clock.toUTCString(),
      timeEpoch: clock.getTime(),
    },
    ...(body ? { body } : {}),
    isBase64Encoded: false,
  };
}

/** `/status` from Discord, as the user: the ephemeral answer's "Open in browser" URL. */
async function linkFor(user: typeof APPROVER): Promise<string> {
  const router = createInteractionRouter({
    engine,
    store,
    policy: async () => policyFromConfig(POLICY_DOC).policy,
    consoleLink: makeConsoleLink({ kv: store, keys: async () => [KEY], baseUrl: BASE, now: () => clock }),
    now: () => clock,
  });
  const res = (await router(command('status', [], { user }))) as APIInteractionResponse & {
    data: { flags?: number; components: Array<{ components: Array<{ url?: string; label?: string }> }> };
  };
  expect(res.data.flags).toBe(64);
  const button = res.data.components.flatMap((r) => r.components).find((b) => b.label === 'Open in browser');
  expect(button?.url).toMatch(new RegExp(`^${BASE}/console/auth\\?token=`));
  return button!.url!;
}

async function signIn(user: typeof APPROVER): Promise<string> {
  const url = new URL(await linkFor(user));
  const res = await handle(
    request('GET', url.pathname, { query: { token: url.searchParams.get('token')! } }),
  );
  expect(res.statusCode).toBe(200);
  const cookie = String(res.headers?.['set-cookie']);
  return cookie.split(';')[0]!;
}

beforeAll(async () => {
  store = await createTestStore();
  engine = new Engine<unknown>({
    store,
    queue: new InMemoryQueue(),
    workflows: buildRegistry(),
    services: {},
    now: () => clock,
  });
  const start = (repo: string, issue: number) =>
    engine.startRun({
      workflow: 'issue-pipeline',
      subject: { repo, issue, key: `${repo}#${issue}` },
      trigger: { source: 'test' },
    });
  const created = (await start('acme/app', 1)).run;
  // Parked at the approval gate of plan v1, as the pipeline's approval node leaves it.
  visible = await store.commit({
    run: {
      ...created,
      status: 'waiting',
      node: 'approval',
      version: created.version + 1,
      gate: { node: 'approval', kind: 'approval', binding: 'v1', expiresAt: '2999-01-01T00:00:00.000Z' },
    },
    expectedVersion: created.version,
    events: [{ type: 'gate.opened', node: 'approval', detail: { binding: 'v1' } }],
  });
  hidden = (await start('other/secret', 2)).run;
  const deps: ConsoleDeps = {
    store,
    engine,
    policy: async () => POLICY_DOC,
    access: { mode: 'session', linkKeys: async () => [KEY] },
    now: () => clock,
  };
  handle = makeHandler(deps);
});

describe('console on AWS: no session, no data', () => {
  it.each([
    ['GET', '/console'],
    ['GET', '/console/live'],
    ['GET', '/console/runs/RUN'],
    ['GET', '/console/runs/RUN/live'],
    ['POST', '/console/runs/RUN/actions'],
  ])('%s %s answers 401 without any run data', async (method, path) => {
    const res = await handle(
      request(
        method,
        path.replace('RUN', visible.id),
        method === 'POST' ? { form: { action: 'cancel' } } : {},
      ),
    );
    expect(res.statusCode).toBe(401);
    for (const secret of [visible.id, hidden.id, 'acme/app', 'other/secret'])
      expect(res.body).not.toContain(secret);
    expect(res.headers?.['content-security-policy']).toContain("script-src 'self'");
  });

  it('answers 401 for a cookie that is not a session', async () => {
    const res = await handle(
      request('GET', '/console', { cookie: `${SESSION_COOKIE}=${randomBytes(32).toString('base64url')}` }),
    );
    expect(res.statusCode).toBe(401);
  });
});

describe('console on AWS: signed links', () => {
  it('refuses a tampered link with 401', async () => {
    const token = new URL(await linkFor(APPROVER)).searchParams.get('token')!;
    const [payload, sig] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
    const forged = Buffer.from(JSON.stringify({ ...claims, u: ADMIN.id })).toString('base64url');
    for (const bad of [`${forged}.${sig}`, `${payload}.${sig!.slice(0, -2)}AA`, 'garbage']) {
      const res = await handle(request('GET', '/console/auth', { query: { token: bad } }));
      expect(res.statusCode).toBe(401);
      expect(res.headers?.['set-cookie']).toBeUndefined();
    }
  });

  it('refuses an expired link with 401', async () => {
    const token = new URL(await linkFor(APPROVER)).searchParams.get('token')!;
    const made = clock;
    clock = new Date(made.getTime() + (LINK_TTL_SECONDS + 1) * 1000);
    try {
      const res = await handle(request('GET', '/console/auth', { query: { token } }));
      expect(res.statusCode).toBe(401);
    } finally {
      clock = made;
    }
  });

  it('redeems a link once for a Secure, HttpOnly, SameSite=Strict session and leaves the token behind', async () => {
    const token = new URL(await linkFor(APPROVER)).searchParams.get('token')!;
    const res = await handle(request('GET', '/console/auth', { query: { token } }));
    // A same-origin refresh, not a redirect: a Strict cookie is not sent in a cross-site redirect chain.
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('<meta http-equiv="refresh" content="0;url=/console">');
    expect(res.body).not.toContain(token);
    expect(res.headers?.['referrer-policy']).toBe('no-referrer');
    const cookie = String(res.headers?.['set-cookie']);
    expect(cookie).toMatch(new RegExp(`^${SESSION_COOKIE}=`));
    for (const attr of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/']) expect(cookie).toContain(attr);
    const again = await handle(request('GET', '/console/auth', { query: { token } }));
    expect(again.statusCode).toBe(401);
  });
});

describe('console on AWS: a session sees only what Discord rights cover', () => {
  it('lists the runs of the channel’s repositories only', async () => {
    const cookie = await signIn(APPROVER);
    const res = await handle(request('GET', '/console', { cookie }));
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain(visible.id);
    expect(res.body).toContain('acme/app#1');
    expect(res.body).not.toContain(hidden.id);
    expect(res.body).not.toContain('other/secret');
    expect(res.body).not.toContain(KEY);
  });

  it('answers a hidden run as not found', async () => {
    const cookie = await signIn(APPROVER);
    expect((await handle(request('GET', `/console/runs/${hidden.id}`, { cookie }))).statusCode).toBe(404);
    expect((await handle(request('GET', `/console/runs/${visible.id}`, { cookie }))).statusCode).toBe(200);
  });

  it('shows an admin every repository', async () => {
    const cookie = await signIn(ADMIN);
    const res = await handle(request('GET', '/console', { cookie }));
    expect(res.body).toContain(visible.id);
    expect(res.body).toContain(hidden.id);
  });

  it('gives no link to a user without /status rights', async () => {
    const router = createInteractionRouter({
      engine,
      store,
      policy: async () => policyFromConfig(POLICY_DOC).policy,
      consoleLink: makeConsoleLink({ kv: store, keys: async () => [KEY], baseUrl: BASE }),
    });
    const res = (await router(command('status', [], { user: STRANGER }))) as {
      data: Record<string, unknown>;
    };
    expect(JSON.stringify(res.data)).not.toContain('/console/auth');
  });
});

describe('console on AWS: actions', () => {
  const csrfOf = (body: string) => /name="csrf" value="([^"]+)"/.exec(body)?.[1];

  it('refuses an action without the session’s CSRF token', async () => {
    const cookie = await signIn(ADMIN);
    const res = await handle(
      request('POST', `/console/runs/${visible.id}/actions`, {
        cookie,
        form: { action: 'cancel', csrf: 'nope' },
      }),
    );
    expect(res.statusCode).toBe(403);
    expect((await store.getRun(visible.id))?.status).toBe('waiting');
  });

  it('refuses and audits an action the user has no Discord right for', async () => {
    const cookie = await signIn(APPROVER);
    const page = await handle(request('GET', `/console/runs/${visible.id}`, { cookie }));
    const csrf = csrfOf(page.body!)!;
    // No cancel button is shown to an approver; a hand-made form is refused and recorded.
    expect(page.body).not.toContain('value="cancel"');
    const res = await handle(
      request('POST', `/console/runs/${visible.id}/actions`, { cookie, form: { action: 'cancel', csrf } }),
    );
    expect(res.statusCode).toBe(403);
    const events = await store.listEvents(visible.id);
    expect(events.find((e) => e.type === 'console.refused')).toMatchObject({ by: `discord:${APPROVER.id}` });
    expect((await store.getRun(visible.id))?.status).toBe('waiting');
  });

  it('lets a channel approver approve the plan version shown, and refuses a stale one', async () => {
    const cookie = await signIn(APPROVER);
    const page = await handle(request('GET', `/console/runs/${visible.id}`, { cookie }));
    const csrf = csrfOf(page.body!)!;
    expect(page.body).toContain('name="binding" value="v1"');
    const stale = await handle(
      request('POST', `/console/runs/${visible.id}/actions`, {
        cookie,
        form: { action: 'approve', binding: 'v0', csrf },
      }),
    );
    expect(stale.headers?.location).toBe(`/console/runs/${visible.id}?result=stale`);
    expect((await store.getRun(visible.id))?.status).toBe('waiting');
    const ok = await handle(
      request('POST', `/console/runs/${visible.id}/actions`, {
        cookie,
        form: { action: 'approve', binding: 'v1', csrf },
      }),
    );
    expect(ok.headers?.location).toBe(`/console/runs/${visible.id}?result=approved`);
    const events = await store.listEvents(visible.id);
    expect(events.find((e) => e.type === 'signal.approve')).toMatchObject({
      by: `discord:${APPROVER.id}`,
      detail: { binding: 'v1' },
    });
  });

  it('cancels with /cancel rights, audited as the Discord user', async () => {
    const cookie = await signIn(ADMIN);
    const page = await handle(request('GET', `/console/runs/${hidden.id}`, { cookie }));
    const csrf = csrfOf(page.body!)!;
    const res = await handle(
      request('POST', `/console/runs/${hidden.id}/actions`, { cookie, form: { action: 'cancel', csrf } }),
    );
    expect(res.statusCode).toBe(303);
    expect(res.headers?.location).toBe(`/console/runs/${hidden.id}?result=cancelled`);
    expect((await store.getRun(hidden.id))?.status).toBe('cancelled');
    const types = (await store.listEvents(hidden.id)).map((e) => [e.type, e.by]);
    expect(types).toEqual(
      expect.arrayContaining([
        ['signal.cancel', `discord:${ADMIN.id}`],
        ['console.action', `discord:${ADMIN.id}`],
      ]),
    );
  });
});
