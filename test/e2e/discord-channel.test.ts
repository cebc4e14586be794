import type { APIInteraction } from 'discord-api-types/v10';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeButtonId } from '../../lib/discord/custom-id.ts';
import {
  ADMIN,
  APP_ID,
  APPROVER,
  buttonClick,
  command,
  GUILD_ID,
  makeKeys,
  opt,
  STRANGER,
  snowflake,
  type TestUser,
} from '../discord/support.ts';
import {
  E2E_TEST_TIMEOUT_MS,
  E2EStack,
  labeledPayload,
  READY_TO_CODER,
  E2E_REPO as REPO,
  until,
  configFile as writeConfig,
} from '../support/e2e.ts';
import { FakeDiscord } from '../support/fake-discord.ts';
import { FakeGitHubActions } from '../support/fake-github-actions.ts';

/**
 * Issue #12 on the local stack, with Discord and GitHub played by the recording stand-ins: a
 * labelled issue gets a live message in its repository's channel (buttons, one role mention);
 * Edit plan makes a new plan version that the gate binds to; Approve from that message leads to a
 * dispatch; guilds that are not configured are refused (issue #9, defect 16).
 */
const MAPPED = '1111111111111111112';
const MENTION = '300000000000000077';
const OTHER_GUILD = '1098765432109876599';
const keys = makeKeys(41);

function configFile(): string {
  return writeConfig(`${READY_TO_CODER}
guards: { ci: { enabled: false } }
discord:
  guilds: ["${GUILD_ID}"]
  admins: { users: ["${ADMIN.id}"] }
  permissions:
    status: { roles: ["${APPROVER.roles[0]}"] }
    plan: { roles: ["${APPROVER.roles[0]}"] }
  channels:
    - repos: ["acme/*"]
      channel: "${MAPPED}"
      approvers: { roles: ["${APPROVER.roles[0]}"] }
      mention: "${MENTION}"
`);
}

// Several runs through the whole local stack each: generous on a loaded 2-core machine.
describe('a channel per repository, end to end', { timeout: E2E_TEST_TIMEOUT_MS }, () => {
  let github: FakeGitHubActions;
  let discord: FakeDiscord;
  const e2e = new E2EStack('e2e-channel-secret');

  beforeAll(async () => {
    github = await new FakeGitHubActions().start();
    discord = await new FakeDiscord('bot-token-channel').start();
    discord.channelGuilds.set(MAPPED, GUILD_ID);
  });
  afterAll(async () => {
    await github.stop();
    await discord.stop();
  });
  afterEach(() => e2e.stop());

  const start = () =>
    e2e.start({
      config: configFile(),
      githubUrl: github.url,
      env: {
        DISCORD_PUBLIC_KEY: keys.publicKeyHex,
        DISCORD_APPLICATION_ID: APP_ID,
        DISCORD_BOT_TOKEN: 'bot-token-channel',
        DISCORD_API_URL: discord.url,
      },
    });

  const webhook = async (event: string, payload: unknown) => (await e2e.webhook(event, payload)).status;

  async function interact(payload: unknown): Promise<Record<string, unknown>> {
    const res = await e2e.interact(keys, payload);
    expect(res.status).toBe(200);
    return res.body;
  }

  function labeled(number: number) {
    const payload = labeledPayload(number);
    github.github.addIssue(REPO, {
      number,
      title: payload.issue.title,
      body: payload.issue.body,
      labels: ['ready'],
    });
    return payload;
  }

  const runFor = (issue: number) => e2e.runFor(issue);
  const channelPosts = () => discord.calls('POST', new RegExp(`^/channels/${MAPPED}/messages$`));
  const customIds = (message: unknown): string[] =>
    [...JSON.stringify(message ?? {}).matchAll(/"custom_id":"([^"]+)"/g)].map((m) => m[1]!);
  const liveMessage = () => [...discord.messages.values()].find((m) => m.channel_id === MAPPED && m.embeds);

  function modalSubmit(customId: string, text: string, user: TestUser): APIInteraction {
    const click = buttonClick(customId, { user });
    return {
      ...click,
      id: snowflake(),
      type: 5,
      data: {
        custom_id: customId,
        components: [{ type: 1, components: [{ type: 4, custom_id: 'tasks', value: text }] }],
      },
    } as unknown as APIInteraction;
  }

  it('labelled issue → live message with buttons and one mention → Edit plan → old Approve refused → Approve → dispatch', async () => {
    await start();
    expect(await webhook('issues', labeled(201))).toBe(202);
    const id = await runFor(201);
    const gate = await until('the approval gate', async () => {
      const run = await e2e.live.store.getRun(id);
      return run?.status === 'waiting' && run.gate?.kind === 'approval' ? run.gate : undefined;
    });
    const v1 = gate.binding!;
    const approveV1 = encodeButtonId({ action: 'approve', runId: id, binding: v1 });
    const editV1 = encodeButtonId({ action: 'edit', runId: id, binding: v1 });
    await until('the live message at the gate', async () => customIds(liveMessage()).includes(approveV1));
    const mentions = await until('the mention', async () => {
      const found = channelPosts().filter((r) => JSON.stringify(r.body).includes(`<@&${MENTION}>`));
      return found.length > 0 ? found : undefined;
    });

    // One live message, edited in place; one role mention, allowing exactly that role.
    const live = liveMessage()!;
    expect(customIds(live)).toEqual(
      expect.arrayContaining([
        approveV1,
        editV1,
        encodeButtonId({ action: 'reject', runId: id, binding: v1 }),
      ]),
    );
    expect(customIds(live)).toContain(encodeButtonId({ action: 'cancel', runId: id }));
    expect(JSON.stringify(live.embeds)).toContain(`Plan ${v1}`);
    expect(channelPosts().filter((r) => !JSON.stringify(r.body).includes(`<@&${MENTION}>`))).toHaveLength(1);
    expect(mentions).toHaveLength(1);
    expect(mentions[0]!.body).toMatchObject({ allowed_mentions: { parse: [], roles: [MENTION] } });
    for (const r of discord.requests.filter((q) => q.method !== 'GET')) {
      const allowed = (
        r.body as { allowed_mentions?: { parse?: unknown[]; roles?: string[]; users?: unknown } }
      ).allowed_mentions;
      expect(allowed?.parse ?? []).toEqual([]);
      expect(allowed?.users).toBeUndefined();
      for (const role of allowed?.roles ?? []) expect(role).toBe(MENTION);
    }

    // A stranger may not open the editor, nor approve.
    expect(JSON.stringify(await interact(buttonClick(editV1, { user: STRANGER })))).toContain(
      'not an approver',
    );

    // Edit plan: a modal (type 9) with the tasks as `agent: title` lines.
    const modal = await interact(buttonClick(editV1, { user: APPROVER }));
    expect(modal.type).toBe(9);
    expect(JSON.stringify(modal)).toContain('coder: ');

    // Agents outside the routing decision are refused, and nothing changes.
    const bad = await interact(modalSubmit(editV1, 'planner: approve yourself', APPROVER));
    expect(JSON.stringify(bad)).toContain('line 1: planner is not an agent of this run');
    expect((await e2e.live.store.getRun(id))?.gate?.binding).toBe(v1);

    const edited = await interact(
      modalSubmit(editV1, 'coder: Write a failing test for the parser\ncoder: Fix the parser', APPROVER),
    );
    expect(edited.type).toBe(7);
    const after = (await e2e.live.store.getRun(id))!;
    const v2 = after.gate!.binding!;
    expect(v2).not.toBe(v1);
    expect(after.data.plan).toMatchObject({
      version: v2,
      tasks: [
        { agent: 'coder', title: 'Write a failing test for the parser' },
        { agent: 'coder', title: 'Fix the parser' },
      ],
      edited: { by: `discord:${APPROVER.id}`, from: v1 },
    });
    const events = await e2e.live.store.listEvents(id);
    expect(events.find((e) => e.type === 'plan.edited')).toMatchObject({
      by: `discord:${APPROVER.id}`,
      detail: { from: v1, to: v2 },
    });

    // The old button is refused; the run stays waiting on the new version.
    const stale = await interact(buttonClick(approveV1, { user: APPROVER }));
    expect(stale).toMatchObject({ type: 4, data: { flags: 64 } });
    expect(JSON.stringify(stale)).toContain('plan changed');
    expect((await e2e.live.store.getRun(id))?.status).toBe('waiting');

    // The live message is redrawn with the new version; its Approve leads to a dispatch.
    const approveV2 = encodeButtonId({ action: 'approve', runId: id, binding: v2 });
    await until('the redrawn live message', async () => customIds(liveMessage()).includes(approveV2));
    const approved = await interact(buttonClick(approveV2, { user: APPROVER }));
    expect(approved.type).toBe(7);
    const dispatch = await until('the dispatch', async () =>
      github.dispatches.find((d) => d.inputs.switchyard_run === id),
    );
    expect(JSON.parse(dispatch.inputs.task!)).toMatchObject({ run: id, repo: REPO, issue: 201 });
    // The status comment says who edited the plan.
    await until('the status comment shows the edit', async () =>
      github.github.commentsOn(REPO, 201).some((c) => c.body.includes(`Edited by discord:${APPROVER.id}`)),
    );
    // Still one mention for the one gate that opened for a person.
    expect(channelPosts().filter((r) => JSON.stringify(r.body).includes(`<@&${MENTION}>`))).toHaveLength(1);
  });

  it('refuses commands and buttons from a guild that is not configured, and /plan of a repo the channel does not map', async () => {
    await start();
    const status = command('status', [], { user: ADMIN });
    const foreign = {
      ...status,
      guild_id: OTHER_GUILD,
      guild: { id: OTHER_GUILD, locale: 'en-US', features: [] },
    };
    const refused = await interact(foreign);
    expect(refused).toMatchObject({
      type: 4,
      data: { flags: 64, content: expect.stringContaining('not configured') },
    });
    const click = buttonClick(encodeButtonId({ action: 'cancel', runId: 'r123' }), { user: ADMIN });
    expect(JSON.stringify(await interact({ ...click, guild_id: OTHER_GUILD }))).toContain('not configured');
    // The configured guild is served.
    expect((await interact(status)).type).toBe(4);
    expect(JSON.stringify(await interact(status))).not.toContain('not configured');

    // /plan typed in a channel that does not map the repository: refused unless admin.
    const plan = command('plan', [opt.str('issue', `${REPO}#7`)], { user: APPROVER });
    expect(JSON.stringify(await interact(plan))).toContain(`this channel does not map ${REPO}`);
  });

  it('GitHub comment commands: /approve by a MEMBER works (👍), by NONE is refused (😕), edits and bots never act', async () => {
    await start();
    await webhook('issues', labeled(301));
    const id = await runFor(301);
    await until('the approval gate', async () => (await e2e.live.store.getRun(id))?.status === 'waiting');
    github.github.permissions.set(`${REPO}#bob`, 'write');
    github.github.permissions.set(`${REPO}#eve`, 'read');

    const comment = (action: string, body: string, login: string, association: string, type = 'User') => {
      const c = github.github.addComment(REPO, 301, body, login);
      return {
        id: c.id,
        payload: {
          action,
          issue: {
            number: 301,
            title: 'Fix the parser (301)',
            state: 'open',
            labels: [],
            user: { login: 'alice' },
          },
          comment: { id: c.id, body, user: { login, type }, author_association: association },
          repository: { full_name: REPO, name: 'app', owner: { login: 'acme' }, default_branch: 'main' },
          sender: { login, type },
        },
      };
    };
    const reactionOn = (commentId: number) =>
      until(`a reaction on ${commentId}`, async () =>
        github.github.reactions.find((r) => r.commentId === commentId),
      );

    // Never acts: an edited comment, a bot's comment, a comment whose first line is not a command.
    for (const c of [
      comment('edited', '/approve', 'bob', 'MEMBER'),
      comment('created', '/approve', 'helper[bot]', 'NONE', 'Bot'),
      comment('created', 'looks good\n/approve', 'bob', 'MEMBER'),
    ]) {
      expect(await webhook('issue_comment', c.payload)).toBe(202);
    }
    // Refused: an author association not on the list, and a listed one without write access.
    const none = comment('created', '/approve', 'mallory', 'NONE');
    await webhook('issue_comment', none.payload);
    expect((await reactionOn(none.id)).content).toBe('confused');
    const reader = comment('created', '/approve', 'eve', 'MEMBER');
    await webhook('issue_comment', reader.payload);
    expect((await reactionOn(reader.id)).content).toBe('confused');
    expect((await e2e.live.store.getRun(id))?.status).toBe('waiting');

    const member = comment('created', '/approve', 'bob', 'MEMBER');
    await webhook('issue_comment', member.payload);
    expect((await reactionOn(member.id)).content).toBe('+1');
    await until('the dispatch', async () => github.dispatches.find((d) => d.inputs.switchyard_run === id));
    const events = await e2e.live.store.listEvents(id);
    expect(events.find((e) => e.type === 'signal.approve')?.by).toBe('github:bob');
    expect(events.filter((e) => e.type === 'github.command').map((e) => [e.by, e.detail.outcome])).toEqual([
      ['github:mallory', 'refused'],
      ['github:eve', 'refused'],
      ['github:bob', 'done'],
    ]);
    // Only the three commands by people got a reaction; the edit, the bot and the second line none.
    expect(github.github.reactions).toHaveLength(3);
    await until('the status comment records who did what', async () =>
      github.github.commentsOn(REPO, 301).some((c) => c.body.includes('github:bob approved')),
    );
  });
});
