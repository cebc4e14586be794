import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeButtonId } from '../../lib/discord/custom-id.ts';
import { activeConfig } from '../../lib/routing/config-versions.ts';
import { main as configPush } from '../../scripts/config-push.ts';
import { APP_ID, APPROVER, buttonClick, GUILD_ID, makeKeys, STRANGER } from '../discord/support.ts';
import {
  configFile,
  E2E_TEST_TIMEOUT_MS,
  E2EStack,
  labeledPayload,
  READY_TO_CODER,
  E2E_REPO as REPO,
  until,
} from '../support/e2e.ts';
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
const MAPPED = '1111111111111111113';
const keys = makeKeys(43);

function configText(approverUsers: string[]): string {
  return `${READY_TO_CODER}
guards: { ci: { enabled: false } }
discord:
  guilds: ["${GUILD_ID}"]
  channels:
    - repos: ["acme/*"]
      channel: "${MAPPED}"
      approvers: { roles: ["${APPROVER.roles[0]}"], users: [${approverUsers.map((u) => `"${u}"`).join(', ')}] }
`;
}

describe('config:push on the local stack', { timeout: E2E_TEST_TIMEOUT_MS }, () => {
  let github: FakeGitHubActions;
  let discord: FakeDiscord;
  const e2e = new E2EStack('e2e-config-push-secret');

  beforeAll(async () => {
    github = await new FakeGitHubActions().start();
    discord = await new FakeDiscord('bot-token-config-push').start();
    discord.channelGuilds.set(MAPPED, GUILD_ID);
    await e2e.start({
      config: configFile(configText([])),
      githubUrl: github.url,
      env: {
        SWITCHYARD_CONFIG_REFRESH_SECONDS: '0',
        DISCORD_PUBLIC_KEY: keys.publicKeyHex,
        DISCORD_APPLICATION_ID: APP_ID,
        DISCORD_BOT_TOKEN: 'bot-token-config-push',
        DISCORD_API_URL: discord.url,
      },
    });
  });
  afterAll(async () => {
    await e2e.stop();
    await github.stop();
    await discord.stop();
  });

  async function interact(payload: unknown): Promise<Record<string, unknown>> {
    const res = await e2e.interact(keys, payload);
    expect(res.status).toBe(200);
    return res.body;
  }

  async function labeled(number: number): Promise<void> {
    const payload = labeledPayload(number);
    github.github.addIssue(REPO, {
      number,
      title: payload.issue.title,
      body: payload.issue.body,
      labels: ['ready'],
    });
    expect((await e2e.webhook('issues', payload)).status).toBe(202);
  }

  it('a user added as an approver by config:push approves from Discord, with no restart', async () => {
    await labeled(601);
    const id = await until(
      'a run for #601',
      async () => (await e2e.live.store.listRuns({ subject: `${REPO}#601` }))[0]?.id,
    );
    const gate = await until('the approval gate', async () => {
      const run = await e2e.live.store.getRun(id);
      return run?.status === 'waiting' && run.gate?.kind === 'approval' ? run.gate : undefined;
    });
    const approve = encodeButtonId({ action: 'approve', runId: id, binding: gate.binding! });

    // Not an approver under the bundled file: refused, privately, and the run keeps waiting.
    const refused = await interact(buttonClick(approve, { user: STRANGER }));
    expect(refused).toMatchObject({ type: 4, data: { flags: 64 } });
    expect(JSON.stringify(refused)).toContain(`not an approver for ${REPO}`);
    expect((await e2e.live.store.getRun(id))?.status).toBe('waiting');

    // config:push adds them (the script's own entry point, against the running stack's table).
    const out: string[] = [];
    const errors: string[] = [];
    const pushed = configFile(configText([STRANGER.id]));
    const code = await configPush(
      ['push', pushed, '--by', 'e2e'],
      (s) => out.push(s),
      (s) => errors.push(s),
      e2e.live.env,
    );
    expect(errors).toEqual([]);
    expect(code).toBe(0);
    expect(out.join('\n')).toContain('as version 1');
    expect((await activeConfig(e2e.live.store))?.by).toBe('e2e');

    // The same button, a fresh signed click: approved, and the run goes on to its dispatch.
    const approved = await interact(buttonClick(approve, { user: STRANGER }));
    expect(approved.type).toBe(7);
    const dispatch = await until('the dispatch', async () =>
      github.dispatches.find((d) => d.inputs.switchyard_run === id),
    );
    expect(JSON.parse(dispatch.inputs.task!)).toMatchObject({ run: id, repo: REPO, issue: 601 });
    const events = await e2e.live.store.listEvents(id);
    expect(events.find((e) => e.type === 'signal.approve')?.by).toBe(`discord:${STRANGER.id}`);
  });
});
