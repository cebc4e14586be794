import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultDeps as consoleDeps } from '../../lib/app/console.ts';
import { createGitHubIngress } from '../../lib/app/github-webhook.ts';
import { makeHandler as sweeperHandler } from '../../lib/app/sweeper.ts';
import { createWorkerApp } from '../../lib/app/worker.ts';
import { configRefreshMs } from '../../lib/common/config-refresh.ts';
import { rightsFor } from '../../lib/console/rights.ts';
import { handleGitHubWebhook } from '../../lib/github/webhook.ts';
import { toRequest } from '../../lib/http/request.ts';
import { InMemoryQueue } from '../../lib/queue/memory.ts';
import { pushConfig } from '../../lib/routing/config-versions.ts';
import { dynamoClient } from '../../lib/store/client.ts';
import { testClock } from '../engine/kit.ts';
import { example, signedRequest, TEST_SECRET } from '../github/support.ts';
import { createTestStore, testEndpoint } from '../support/dynamo.ts';

/**
 * Issue #12: every consumer of the central config goes through the versioned provider, so a version
 * stored by `config:push` is used within the refresh interval — by the worker and the sweeper
 * whether or not a delivery arrives, and by ingress's hooks on the first delivery after it. Real
 * worker app and ingress over DynamoDB Local; time through the clock.
 */
const dir = mkdtempSync(join(tmpdir(), 'switchyard-refresh-'));

function config(extra: string): string {
  return `version: 1
routing:
  rules:
    - name: ready
      event: issues
      action: labeled
      label: ready
      workflow: issue-pipeline
      agents: [planner]
repoConfig: { enabled: false }
agents:
  planner: { type: planner, permissions: [read] }
${extra}`;
}

const MAPPING = `discord:
  guilds: ["1098765432109876543"]
  notifyRole: "300000000000000042"
  channels:
    - repos: ["acme/*"]
      channel: "1111111111111111119"
      approvers: { users: ["200000000000000042"] }
escalation: { maxFailures: 7 }
workQueue: { repoConcurrency: 2 }
`;

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('config versions reach every consumer within the refresh interval', () => {
  it('SWITCHYARD_CONFIG_REFRESH_SECONDS sets the interval: 60 s by default, 0 allowed, nonsense ignored', () => {
    expect(configRefreshMs({})).toBe(60_000);
    expect(configRefreshMs({ SWITCHYARD_CONFIG_REFRESH_SECONDS: '5' })).toBe(5_000);
    expect(configRefreshMs({ SWITCHYARD_CONFIG_REFRESH_SECONDS: '0' })).toBe(0);
    expect(configRefreshMs({ SWITCHYARD_CONFIG_REFRESH_SECONDS: '-1' })).toBe(60_000);
    expect(configRefreshMs({ SWITCHYARD_CONFIG_REFRESH_SECONDS: 'soon' })).toBe(60_000);
  });

  it('the worker picks a pushed version up within 60 s with no delivery: on its next message, or the next sweep', async () => {
    const store = await createTestStore();
    const clock = testClock();
    const app = await createWorkerApp({
      store,
      queue: new InMemoryQueue(), // not consumed: nothing runs but what the test hands the worker
      env: { SWITCHYARD_CONFIG: file('bundled.yml', config('')) },
      now: clock.now,
    });
    const sweep = sweeperHandler(async () => app);
    await sweep();
    expect(app.config.discord.channels).toEqual([]);
    expect(app.agents.hub.options).toMatchObject({ maxFailures: 3, repoConcurrency: 4 });

    await pushConfig(store, config(MAPPING), { file: 'mapped.yml', by: 'test' });
    // Within the interval the worker keeps the version it read (one table read per interval).
    clock.advance(30_000);
    await app.handle({ kind: 'step', runId: 'no-such-run', seq: 1 });
    expect(app.configProvider.centralVersion).toBe(0);
    // Past it, any message the worker handles (a step of another run, a report) brings it in, and
    // every reader of the central config sees it: the Discord channel mapping and notify role too.
    clock.advance(31_000);
    await app.handle({ kind: 'step', runId: 'no-such-run', seq: 1 });
    expect(app.configProvider.centralVersion).toBe(1);
    expect(app.config.discord.channels.map((c) => c.channel)).toEqual(['1111111111111111119']);
    expect(app.config.discord.notifyRole).toBe('300000000000000042');
    // The agent hub's limits (escalation, the per-repository work queue limit) come from it too.
    expect(app.agents.hub.options).toMatchObject({ maxFailures: 7, repoConcurrency: 2 });

    expect(app.gh.planner?.name).toBe('deterministic');

    // The sweeper alone (no messages at all) does the same; the planner is chosen again too.
    await pushConfig(store, config('planner: { provider: bedrock, model: us.amazon.nova-pro-v1:0 }\n'), {
      file: 'bedrock.yml',
      by: 'test',
    });
    clock.advance(61_000);
    await sweep();
    expect(app.configProvider.centralVersion).toBe(2);
    expect(app.config.discord.channels).toEqual([]);
    expect(app.agents.hub.options).toMatchObject({ maxFailures: 3, repoConcurrency: 4 });
    expect(app.gh.planner?.name).toBe('bedrock:us.amazon.nova-pro-v1:0');
  });

  it('a config version that cannot be read fails no step: the worker keeps the version in use', async () => {
    // DynamoDB Local behind a client whose reads of the config-version item fail while `down`.
    let down = false;
    const client = dynamoClient(testEndpoint());
    client.middlewareStack.add(
      (next, context) => async (args) => {
        // The document client may hand the key over marshalled or not.
        const pk = (args.input as { Key?: { pk?: unknown } }).Key?.pk;
        const key = typeof pk === 'string' ? pk : (pk as { S?: string } | undefined)?.S;
        if (
          down &&
          (context as { commandName?: string }).commandName === 'GetItemCommand' &&
          key === 'KV#config-version'
        )
          throw new Error('injected: the table is unreachable');
        return next(args);
      },
      { step: 'initialize', name: 'failConfigReads' },
    );
    const store = await createTestStore({ client });
    const clock = testClock();
    const app = await createWorkerApp({
      store,
      queue: new InMemoryQueue(),
      env: { SWITCHYARD_CONFIG: file('steady.yml', config('')) },
      now: clock.now,
    });
    await pushConfig(store, config(MAPPING), { file: 'mapped.yml', by: 'test' });
    down = true;
    const { run } = await app.engine.startRun({
      workflow: 'issue-pipeline',
      subject: 'acme/app#5',
      trigger: { source: 'test', actor: 'alice' },
    });
    expect(await app.handle({ kind: 'step', runId: run.id, seq: run.step!.seq })).toBe('committed');
    expect(app.configProvider.centralVersion).toBe(0);
    await sweeperHandler(async () => app)();

    // Back up: the next message past the interval brings the pushed version in.
    down = false;
    clock.advance(61_000);
    await app.handle({ kind: 'step', runId: 'no-such-run', seq: 1 });
    expect(app.configProvider.centralVersion).toBe(1);
  });

  it('ingress applies a pushed commands allowlist to the first delivery after it, hooks included', async () => {
    const store = await createTestStore();
    const queue = new InMemoryQueue();
    const onDelivery = await createGitHubIngress({
      store,
      queue,
      configFile: file('ingress.yml', config('')),
      env: { SWITCHYARD_CONFIG_REFRESH_SECONDS: '0' },
    });
    const send = (payload: unknown) =>
      handleGitHubWebhook(
        { secrets: async () => [TEST_SECRET], onDelivery },
        toRequest(signedRequest(TEST_SECRET, 'issue_comment', payload)),
      );
    const comment = (id: number) => {
      const p = example('issue_comment', 'created');
      const c = p.comment as Record<string, unknown>;
      Object.assign(c, {
        id,
        body: '/approve',
        author_association: 'NONE',
        user: { ...(c.user as object), login: 'carol', type: 'User' },
      });
      delete c.performed_via_github_app;
      return p;
    };
    const listed = async (res: { body: string }) => {
      const runId = (JSON.parse(res.body) as { run: string }).run;
      return (await store.getRun(runId))?.data.listed;
    };

    expect(await listed(await send(comment(9001)))).toBe(false);
    await pushConfig(store, config('github: { commands: { allow: { users: [carol] } } }\n'), {
      file: 'allow-carol.yml',
      by: 'test',
    });
    expect(await listed(await send(comment(9002)))).toBe(true);
  });

  it("the console's rights come from the pushed version: an approver added by config:push may approve there", async () => {
    const store = await createTestStore();
    const deps = await consoleDeps({
      TABLE_NAME: store.tableName,
      DYNAMODB_ENDPOINT: testEndpoint(),
      QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/switchyard-work',
      DISCORD_POLICY_FILE: file('policy.json', JSON.stringify({ discord: { channels: [] } })),
      SWITCHYARD_CONFIG_REFRESH_SECONDS: '0',
    });
    const viewer = { kind: 'discord' as const, userId: '200000000000000042', roles: [] };
    expect(rightsFor(viewer, await deps.policy()).may('approve', 'acme/app')).toBe(false);

    await pushConfig(store, config(MAPPING), { file: 'mapped.yml', by: 'test' });
    expect(rightsFor(viewer, await deps.policy()).may('approve', 'acme/app')).toBe(true);
    expect(rightsFor(viewer, await deps.policy()).may('approve', 'other/repo')).toBe(false);
  });
});
