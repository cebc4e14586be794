import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { encodeButtonId } from '../../lib/discord/custom-id.ts';
import { activeConfig } from '../../lib/routing/config-versions.ts';
import { main as configPush } from '../../scripts/config-push.ts';
import { type LocalStack, startLocalStack } from '../../scripts/local-stack.ts';
import {
  APP_ID,
  APPROVER,
  buttonClick,
  GUILD_ID,
  makeKeys,
  STRANGER,
  signedRequest,
} from '../discord/support.ts';
import { FakeDiscord } from '../support/fake-discord.ts';
import { FakeGitHubActions } from '../support/fake-github-actions.ts';

/**
 * Issue #12's proof "after `config:push` adds an approver, the new approver can approve without a
 * restart", on the local stack with Discord and GitHub played by the recording stand-ins: a run
 * parks at its approval gate; a user who is not an approver clicks Approve (a signed type 3
 * interaction) and is refused; `config:push` (the script's own function) stores a version that
 * adds them; a fresh click by the same user approves, and the run goes on to its dispatch. The
 * stack runs throughout. SWITCHYARD_CONFIG_REFRESH_SECONDS=0 makes every reader re-read the active
 * version on each use, so the test waits on nothing but events.
 */
const SECRET = 'e2e-config-push-secret';
const REPO = 'acme/app';
const MAPPED = '1111111111111111113';
const keys = makeKeys(43);
const dir = mkdtempSync(join(tmpdir(), 'switchyard-config-push-'));

function configText(approverUsers: string[]): string {
  return `
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
  channels:
    - repos: ["acme/*"]
      channel: "${MAPPED}"
      approvers: { roles: ["${APPROVER.roles[0]}"], users: [${approverUsers.map((u) => `"${u}"`).join(', ')}] }
`;
}

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
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

describe('config:push on the local stack', { timeout: 120_000 }, () => {
  let github: FakeGitHubActions;
  let discord: FakeDiscord;
  let stack: LocalStack;

  beforeAll(async () => {
    github = await new FakeGitHubActions().start();
    discord = await new FakeDiscord('bot-token-config-push').start();
    discord.channelGuilds.set(MAPPED, GUILD_ID);
    stack = await startLocalStack({
      env: {
        ...process.env,
        DYNAMODB_ENDPOINT: inject('dynamoEndpoint'),
        TABLE_NAME: `e2e-push-${randomBytes(6).toString('hex')}`,
        PORT: '0',
        GITHUB_API_URL: github.url,
        GITHUB_TOKEN: 'e2e-github-token',
        GITHUB_THROTTLE: 'off',
        GITHUB_WEBHOOK_SECRET: SECRET,
        SWITCHYARD_CONFIG: file('bundled.yml', configText([])),
        SWITCHYARD_CONFIG_REFRESH_SECONDS: '0',
        DISCORD_PUBLIC_KEY: keys.publicKeyHex,
        DISCORD_APPLICATION_ID: APP_ID,
        DISCORD_BOT_TOKEN: 'bot-token-config-push',
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

  async function interact(payload: unknown): Promise<Record<string, unknown>> {
    const req = signedRequest(keys, payload);
    const res = await fetch(`${stack.url}/discord/interactions`, {
      method: 'POST',
      headers: req.headers as Record<string, string>,
      body: req.body as string,
    });
    expect(res.status).toBe(200);
    return (await res.json()) as Record<string, unknown>;
  }

  async function labeled(number: number): Promise<void> {
    github.github.addIssue(REPO, {
      number,
      title: `Fix the parser (${number})`,
      body: 'It breaks on `src/parser.ts`.',
      labels: ['ready'],
    });
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
    expect(res.status).toBe(202);
  }

  it('a user added as an approver by config:push approves from Discord, with no restart', async () => {
    await labeled(601);
    const id = await until(
      'a run for #601',
      async () => (await stack.store.listRuns({ subject: `${REPO}#601` }))[0]?.id,
    );
    const gate = await until('the approval gate', async () => {
      const run = await stack.store.getRun(id);
      return run?.status === 'waiting' && run.gate?.kind === 'approval' ? run.gate : undefined;
    });
    const approve = encodeButtonId({ action: 'approve', runId: id, binding: gate.binding! });

    // Not an approver under the bundled file: refused, privately, and the run keeps waiting.
    const refused = await interact(buttonClick(approve, { user: STRANGER }));
    expect(refused).toMatchObject({ type: 4, data: { flags: 64 } });
    expect(JSON.stringify(refused)).toContain(`not an approver for ${REPO}`);
    expect((await stack.store.getRun(id))?.status).toBe('waiting');

    // config:push adds them (the script's own entry point, against the running stack's table).
    const out: string[] = [];
    const errors: string[] = [];
    const pushed = file('with-approver.yml', configText([STRANGER.id]));
    const code = await configPush(
      ['push', pushed, '--by', 'e2e'],
      (s) => out.push(s),
      (s) => errors.push(s),
      stack.env,
    );
    expect(errors).toEqual([]);
    expect(code).toBe(0);
    expect(out.join('\n')).toContain('as version 1');
    expect((await activeConfig(stack.store))?.by).toBe('e2e');

    // The same button, a fresh signed click: approved, and the run goes on to its dispatch.
    const approved = await interact(buttonClick(approve, { user: STRANGER }));
    expect(approved.type).toBe(7);
    const dispatch = await until('the dispatch', async () =>
      github.dispatches.find((d) => d.inputs.switchyard_run === id),
    );
    expect(JSON.parse(dispatch.inputs.task!)).toMatchObject({ run: id, repo: REPO, issue: 601 });
    const events = await stack.store.listEvents(id);
    expect(events.find((e) => e.type === 'signal.approve')?.by).toBe(`discord:${STRANGER.id}`);
  });
});
