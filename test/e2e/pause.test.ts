import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, APP_ID, command, GUILD_ID, makeKeys, opt } from '../discord/support.ts';
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
 * Issue #12's kill switch on the webhook path, on the local stack with Discord and GitHub played by
 * the recording stand-ins: while an admin's `/pause acme/app` holds, a `ready` label delivery is
 * answered 202 `{status: 'paused'}` and starts no run (the refusal is audited); after `/resume
 * acme/app` a new delivery of the same label starts the run, which goes on to its approval gate.
 */
const keys = makeKeys(47);

describe('the kill switch on the webhook path, end to end', { timeout: E2E_TEST_TIMEOUT_MS }, () => {
  let github: FakeGitHubActions;
  let discord: FakeDiscord;
  const e2e = new E2EStack('e2e-pause-secret');

  beforeAll(async () => {
    github = await new FakeGitHubActions().start();
    discord = await new FakeDiscord('bot-token-pause').start();
    await e2e.start({
      config: configFile(`${READY_TO_CODER}
guards: { ci: { enabled: false } }
discord:
  guilds: ["${GUILD_ID}"]
  admins: { users: ["${ADMIN.id}"] }
`),
      githubUrl: github.url,
      env: {
        DISCORD_PUBLIC_KEY: keys.publicKeyHex,
        DISCORD_APPLICATION_ID: APP_ID,
        DISCORD_BOT_TOKEN: 'bot-token-pause',
        DISCORD_API_URL: discord.url,
      },
    });
  });
  afterAll(async () => {
    await e2e.stop();
    await github.stop();
    await discord.stop();
  });

  async function interact(payload: unknown): Promise<string> {
    const res = await e2e.interact(keys, payload);
    expect(res.status).toBe(200);
    return JSON.stringify(res.body);
  }

  /** A `ready` label delivery for issue `number`, each time with a delivery id of its own. */
  const labeled = (number: number) => e2e.webhook('issues', labeledPayload(number));

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
    expect(await e2e.live.store.listRuns({ repo: REPO })).toEqual([]);
    const audit = (await e2e.live.store.kvList<{ type: string; reason?: string }>('audit')).map(
      (a) => a.value,
    );
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
      const [r] = await e2e.live.store.listRuns({ subject: `${REPO}#701` });
      return r?.status === 'waiting' && r.gate?.kind === 'approval' ? r : undefined;
    });
    expect(run.id).toBe(accepted.body.run);
    expect(await e2e.live.store.listRuns({ repo: REPO })).toHaveLength(1);
  });
});
