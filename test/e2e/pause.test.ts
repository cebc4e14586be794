import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type LocalStack, startLocalStack } from '../../scripts/local-stack.ts';
import { ADMIN, APP_ID, command, GUILD_ID, makeKeys, opt, signedRequest } from '../discord/support.ts';
import { FakeDiscord } from '../support/fake-discord.ts';
import { FakeGitHubActions } from '../support/fake-github-actions.ts';

/**
 * Issue #12's kill switch on the webhook path, on the local stack with Discord and GitHub played by
 * the recording stand-ins: while an admin's `/pause acme/app` holds, a `ready` label delivery is
 * answered 202 `{status: 'paused'}` and starts no run (the refusal is audited); after `/resume
 * acme/app` a new delivery of the same label starts the run, which goes on to its approval gate.
 */
const SECRET = 'e2e-pause-secret';
const REPO = 'acme/app';
const keys = makeKeys(47);
const dir = mkdtempSync(join(tmpdir(), 'switchyard-pause-'));

function configFile(): string {
  const file = join(dir, `config-${randomBytes(4).toString('hex')}.yml`);
  writeFileSync(
    file,
    `
version: 1
routing:
  rules:
    - name: ready
      event: issues
      action: labeled
      label: ready
      workflow: issue-pipeline
      agents: [planner, coder]
repoConfig: { enabled: false }
agents:
  planner: { type: planner, permissions: [read] }
  coder:
    type: coder
    executor: actions-agent
    permissions: [read, comment, dispatch_workflow, cancel_workflow]
executors:
  actions-agent: { type: github-actions, workflow: switchyard-agent.yml, ref: main }
guards: { ci: { enabled: false } }
discord:
  guilds: ["${GUILD_ID}"]
  admins: { users: ["${ADMIN.id}"] }
`,
  );
  return file;
}

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the kill switch on the webhook path, end to end', { timeout: 120_000 }, () => {
  let github: FakeGitHubActions;
  let discord: FakeDiscord;
  let stack: LocalStack;

  beforeAll(async () => {
    github = await new FakeGitHubActions().start();
    discord = await new FakeDiscord('bot-token-pause').start();
    stack = await startLocalStack({
      env: {
        ...process.env,
        DYNAMODB_ENDPOINT: inject('dynamoEndpoint'),
        TABLE_NAME: `e2e-pause-${randomBytes(6).toString('hex')}`,
        PORT: '0',
        GITHUB_API_URL: github.url,
        GITHUB_TOKEN: 'e2e-github-token',
        GITHUB_THROTTLE: 'off',
        GITHUB_WEBHOOK_SECRET: SECRET,
        SWITCHYARD_CONFIG: configFile(),
        DISCORD_PUBLIC_KEY: keys.publicKeyHex,
        DISCORD_APPLICATION_ID: APP_ID,
        DISCORD_BOT_TOKEN: 'bot-token-pause',
        DISCORD_API_URL: discord.url,
      },
      persist: false,
      sweepIntervalMs: 100,
      print: () => {},
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await github.stop();
    await discord.stop();
  });

  async function interact(payload: unknown): Promise<string> {
    const req = signedRequest(keys, payload);
    const res = await fetch(`${stack.url}/discord/interactions`, {
      method: 'POST',
      headers: req.headers as Record<string, string>,
      body: req.body as string,
    });
    expect(res.status).toBe(200);
    return JSON.stringify(await res.json());
  }

  /** A `ready` label delivery for issue `number`, each time with a delivery id of its own. */
  async function labeled(number: number): Promise<{ status: number; body: Record<string, unknown> }> {
    const body = JSON.stringify({
      action: 'labeled',
      label: { name: 'ready' },
      issue: {
        number,
        title: `Fix the parser (${number})`,
        body: 'It breaks on `src/parser.ts`.',
        state: 'open',
        labels: [{ name: 'ready' }],
        user: { login: 'alice' },
        author_association: 'OWNER',
        html_url: `https://github.com/${REPO}/issues/${number}`,
      },
      repository: {
        full_name: REPO,
        name: 'app',
        owner: { login: 'acme' },
        default_branch: 'main',
        private: false,
      },
      sender: { login: 'alice', type: 'User' },
    });
    const res = await fetch(`${stack.url}/github/webhook`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'issues',
        'x-github-delivery': randomUUID(),
        'x-hub-signature-256': `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`,
      },
      body,
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  it('a ready label while the repository is paused starts no run (202 paused); after /resume a new delivery starts one', async () => {
    github.github.addIssue(REPO, {
      number: 701,
      title: 'Fix the parser (701)',
      body: 'It breaks on `src/parser.ts`.',
      labels: ['ready'],
    });
    expect(await interact(command('pause', [opt.str('repo', REPO)], { user: ADMIN }))).toContain(
      `Paused ${REPO}`,
    );

    const refused = await labeled(701);
    expect(refused.status).toBe(202);
    expect(refused.body).toMatchObject({
      status: 'paused',
      reason: expect.stringContaining(`${REPO} is paused`),
    });
    expect(await stack.store.listRuns({ repo: REPO })).toEqual([]);
    const audit = (await stack.store.kvList<{ type: string; reason?: string }>('audit')).map((a) => a.value);
    expect(audit).toContainEqual(
      expect.objectContaining({ type: 'run.refused', reason: expect.stringContaining(`${REPO} is paused`) }),
    );
    // The pause shows in /status.
    expect(await interact(command('status', [], { user: ADMIN }))).toContain(`${REPO} is paused`);

    expect(await interact(command('resume', [opt.str('repo', REPO)], { user: ADMIN }))).toContain(
      `Resumed ${REPO}`,
    );
    const accepted = await labeled(701);
    expect(accepted.status).toBe(202);
    expect(accepted.body).toMatchObject({ status: 'accepted' });
    const run = await until('the run at its approval gate', async () => {
      const [r] = await stack.store.listRuns({ subject: `${REPO}#701` });
      return r?.status === 'waiting' && r.gate?.kind === 'approval' ? r : undefined;
    });
    expect(run.id).toBe(accepted.body.run);
    expect(await stack.store.listRuns({ repo: REPO })).toHaveLength(1);
  });
});
