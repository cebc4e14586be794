import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GitHubClientFactory } from '../../lib/github/client.ts';
import { nextCursor, REDELIVERY_GROUP, sweepRedeliveries } from '../../lib/github/redelivery.ts';
import { RecoverySchema, type RedeliveryConfig } from '../../lib/routing/recovery-config.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { type TestClock, testClock } from '../engine/kit.ts';
import { createTestStore } from '../support/dynamo.ts';
import { FakeGitHub } from '../support/fake-github.ts';

/**
 * The redelivery sweep against GitHub's delivery API played on loopback (real shapes: id, guid,
 * delivered_at, redelivery, status_code, event, action; cursor pages with a Link header) and a
 * real DynamoRunStore on DynamoDB Local for what was redelivered.
 */

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const PEM = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const HOUR = 3_600_000;

const config = (over: Partial<RedeliveryConfig> = {}): RedeliveryConfig => ({
  ...RecoverySchema.parse({}).redelivery,
  ...over,
});

describe('redelivery sweep (GitHub stand-in, DynamoDB Local)', () => {
  let gh: FakeGitHub;
  let store: DynamoRunStore;
  let clock: TestClock;
  let app: GitHubClientFactory;

  beforeAll(async () => {
    gh = await new FakeGitHub().start();
  });
  afterAll(async () => {
    await gh.stop();
  });
  beforeEach(async () => {
    gh.requests.length = 0;
    gh.deliveries.hooks.clear();
    gh.deliveries.redeliveries.length = 0;
    store = await createTestStore();
    clock = testClock();
    gh.deliveries.now = clock.now;
    app = new GitHubClientFactory({
      credentials: { kind: 'app', appId: '4242', privateKey: PEM },
      baseUrl: gh.url,
      throttle: false,
      retries: 0,
    });
  });

  const ago = (ms: number) => new Date(clock.now().getTime() - ms).toISOString();

  it("asks GitHub once to redeliver each failed delivery of the App's hook, with the App's JWT", async () => {
    const failed = gh.deliveries.add('app', {
      guid: randomUUID(),
      status_code: 502,
      delivered_at: ago(HOUR),
    });
    const timedOut = gh.deliveries.add('app', {
      guid: randomUUID(),
      status_code: 0,
      delivered_at: ago(2 * HOUR),
    });
    gh.deliveries.add('app', { guid: randomUUID(), status_code: 202, delivered_at: ago(HOUR) });
    // Failed first, then got through on a (manual) redelivery: nothing to do.
    const healed = randomUUID();
    gh.deliveries.add('app', { guid: healed, status_code: 500, delivered_at: ago(3 * HOUR) });
    gh.deliveries.add('app', {
      guid: healed,
      status_code: 202,
      redelivery: true,
      delivered_at: ago(2 * HOUR),
    });

    const report = await sweepRedeliveries({ github: app, store, config: config(), now: clock.now });

    expect(report).toMatchObject({ listed: 5, failed: 2, redelivered: 2, already: 0, errors: 0 });
    expect(gh.deliveries.redeliveries.map((r) => r.id).sort()).toEqual([failed.id, timedOut.id].sort());
    const list = gh.calls('GET', /^\/app\/hook\/deliveries/);
    expect(list[0]?.headers.authorization).toMatch(/^bearer ey/);
    expect(gh.calls('POST', /^\/app\/hook\/deliveries\/\d+\/attempts$/)).toHaveLength(2);
    expect((await store.kvGet(REDELIVERY_GROUP, failed.guid))?.value).toMatchObject({
      guid: failed.guid,
      deliveryId: failed.id,
      event: 'issues',
      action: 'labeled',
      statusCode: 502,
      outcome: 'requested',
    });
  });

  it('never redelivers a delivery twice, also when the redelivery fails again', async () => {
    const d = gh.deliveries.add('app', { guid: randomUUID(), status_code: 500, delivered_at: ago(HOUR) });
    gh.deliveries.onRedeliver = () => 503; // our endpoint is still down
    await sweepRedeliveries({ github: app, store, config: config(), now: clock.now });
    clock.advance(10 * 60_000);

    const second = await sweepRedeliveries({ github: app, store, config: config(), now: clock.now });

    expect(second).toMatchObject({ failed: 1, redelivered: 0, already: 1 });
    expect(gh.deliveries.redeliveries).toEqual([{ hook: 'app', id: d.id, guid: d.guid }]);
    expect(gh.deliveries.attempts(d.guid)).toHaveLength(2);
    gh.deliveries.onRedeliver = () => 202;
  });

  it('concurrent sweepers list once per interval and redeliver each delivery once', async () => {
    for (let i = 0; i < 5; i++)
      gh.deliveries.add('app', { guid: randomUUID(), status_code: 500, delivered_at: ago(HOUR) });

    const reports = await Promise.all(
      Array.from({ length: 4 }, () =>
        sweepRedeliveries({ github: app, store, config: config(), now: clock.now }),
      ),
    );

    expect(reports.filter((r) => r.skipped === 'not due')).toHaveLength(3);
    expect(gh.deliveries.redeliveries).toHaveLength(5);
    expect(new Set(gh.deliveries.redeliveries.map((r) => r.guid)).size).toBe(5);
  });

  it('follows the cursor across pages and stops at the edge of the window', async () => {
    for (let i = 0; i < 150; i++)
      gh.deliveries.add('app', {
        guid: randomUUID(),
        status_code: i % 50 === 0 ? 500 : 202,
        delivered_at: ago(HOUR + i * 1000),
      });
    const old = gh.deliveries.add('app', {
      guid: randomUUID(),
      status_code: 500,
      delivered_at: ago(73 * HOUR),
    });
    for (let i = 0; i < 120; i++)
      gh.deliveries.add('app', { guid: randomUUID(), status_code: 500, delivered_at: ago(74 * HOUR + i) });

    const report = await sweepRedeliveries({ github: app, store, config: config(), now: clock.now });

    expect(report).toMatchObject({ listed: 150, failed: 3, redelivered: 3 });
    expect(
      gh
        .calls('GET', /^\/app\/hook\/deliveries/)
        .map((r) => new URL(r.path, 'http://x').searchParams.has('cursor')),
    ).toEqual([false, true]);
    expect(gh.deliveries.redeliveries.map((r) => r.id)).not.toContain(old.id);
  });

  it('gives a delivery back to the next sweep when GitHub did not take the request', async () => {
    const d = gh.deliveries.add('app', { guid: randomUUID(), status_code: 500, delivered_at: ago(HOUR) });
    gh.script('POST', /\/attempts$/, { status: 502, body: { message: 'Server Error' }, times: 1 });

    const first = await sweepRedeliveries({ github: app, store, config: config(), now: clock.now });
    clock.advance(5 * 60_000);
    const second = await sweepRedeliveries({ github: app, store, config: config(), now: clock.now });

    expect(first).toMatchObject({ redelivered: 0, errors: 1 });
    expect(second).toMatchObject({ redelivered: 1, errors: 0 });
    expect(gh.deliveries.redeliveries).toEqual([{ hook: 'app', id: d.id, guid: d.guid }]);
  });

  it('keeps a delivery GitHub refuses (too old) and does not ask again', async () => {
    const d = gh.deliveries.add('app', { guid: randomUUID(), status_code: 500, delivered_at: ago(HOUR) });
    gh.script('POST', /\/attempts$/, { status: 422, body: { message: 'too old' }, times: 1 });

    const first = await sweepRedeliveries({ github: app, store, config: config(), now: clock.now });
    clock.advance(5 * 60_000);
    const second = await sweepRedeliveries({ github: app, store, config: config(), now: clock.now });

    expect(first).toMatchObject({ refused: 1 });
    expect(second).toMatchObject({ already: 1, redelivered: 0 });
    expect((await store.kvGet(REDELIVERY_GROUP, d.guid))?.value).toMatchObject({
      outcome: 'refused',
      status: 422,
    });
  });

  it("uses a repository's hook with the token when configured", async () => {
    const token = new GitHubClientFactory({
      credentials: { kind: 'token', token: 't0ken' },
      baseUrl: gh.url,
      throttle: false,
      retries: 0,
    });
    const d = gh.deliveries.add('repo:acme/widget:12', {
      guid: randomUUID(),
      status_code: 500,
      delivered_at: ago(HOUR),
    });

    const report = await sweepRedeliveries({
      github: token,
      store,
      config: config({ hook: { repo: 'acme/widget', id: 12 } }),
      now: clock.now,
    });

    expect(report).toMatchObject({ redelivered: 1 });
    expect(gh.calls('POST', /^\/repos\/acme\/widget\/hooks\/12\/deliveries\/\d+\/attempts$/)).toHaveLength(1);
    expect(gh.requests[0]?.headers.authorization).toBe('token t0ken');
    expect(gh.deliveries.redeliveries).toEqual([{ hook: 'repo:acme/widget:12', id: d.id, guid: d.guid }]);
  });

  it("skips the App's hook without App credentials, and everything in dry-run", async () => {
    const token = new GitHubClientFactory({ credentials: { kind: 'token', token: 't' }, baseUrl: gh.url });
    const dry = new GitHubClientFactory({ baseUrl: gh.url });

    const a = await sweepRedeliveries({ github: token, store, config: config(), now: clock.now });
    const b = await sweepRedeliveries({ github: dry, store, config: config(), now: clock.now });

    expect(a.skipped).toMatch(/App credentials/);
    expect(b.skipped).toMatch(/dry-run/);
    expect(gh.requests).toHaveLength(0);
  });

  it('reads the next cursor from a Link header', () => {
    expect(
      nextCursor(
        '<https://api.github.com/app/hook/deliveries?per_page=100&cursor=v1_123>; rel="next", <https://api.github.com/app/hook/deliveries?per_page=100>; rel="first"',
      ),
    ).toBe('v1_123');
    expect(
      nextCursor('<https://api.github.com/app/hook/deliveries?per_page=2>; rel="first"'),
    ).toBeUndefined();
    expect(nextCursor(undefined)).toBeUndefined();
  });
});
