import { createServer, type Server } from 'node:http';
import type { APIInteraction, APIInteractionResponse } from 'discord-api-types/v10';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatWorkloads, workloads } from '../../lib/agents/work-queue.ts';
import { logger } from '../../lib/common/observability.ts';
import { BINDING_GROUP, type DiscordBinding, TOKEN_GROUP } from '../../lib/discord/binding.ts';
import { encodeButtonId } from '../../lib/discord/custom-id.ts';
import { createDiscordHandler } from '../../lib/discord/handler.ts';
import { AUDIT_GROUP } from '../../lib/discord/interactions.ts';
import type { DiscordPolicy } from '../../lib/discord/policy.ts';
import { createDiscordReporter } from '../../lib/discord/reporter.ts';
import { DiscordRest } from '../../lib/discord/rest.ts';
import { createDiscordWorkerServices } from '../../lib/discord/worker-services.ts';
import type { DiscordWorkflowServices } from '../../lib/discord/workflow-services.ts';
import { discordWorkflowDefinitions } from '../../lib/discord/workflows.ts';
import type { Run } from '../../lib/engine/types.ts';
import type { NodeResult, WorkflowDefinition } from '../../lib/engine/workflow.ts';
import { GitHubClientFactory } from '../../lib/github/client.ts';
import { type HttpResponse, toRequest } from '../../lib/http/request.ts';
import { parseConfig } from '../../lib/routing/config.ts';
import { withNodes } from '../../lib/workflows/graph.ts';
import { issuePipeline, type PipelineNode } from '../../lib/workflows/issue-pipeline.ts';
import { createTestStore } from '../support/dynamo.ts';
import { FakeDiscord } from '../support/fake-discord.ts';
import { type Harness, harness } from '../support/harness.ts';
import {
  ADMIN,
  APP_ID,
  APPROVER,
  autocomplete,
  buttonClick,
  CHANNEL_ID,
  command,
  GUILD_ID,
  makeKeys,
  opt,
  STRANGER,
  signedRequest,
  snowflake,
} from './support.ts';

/**
 * The Discord endpoint end to end, in process: signed requests → handler → real engine on
 * DynamoDB Local → in-process queue and worker → the Discord reporter → a fake Discord on
 * loopback. Only Discord's and GitHub's REST APIs are played by local servers.
 */
const keys = makeKeys(21);
const policy: DiscordPolicy = {
  defaultRepo: 'acme/widgets',
  triggerLabel: 'ready',
  admins: { users: [ADMIN.id], roles: [] },
  permissions: {
    approve: { roles: APPROVER.roles },
    status: { roles: APPROVER.roles },
    // An empty allowlist: admins only.
    plan: { users: [], roles: [] },
  },
  guilds: [GUILD_ID],
  channels: [],
};

/** The plan version each issue's approval gate shows; tests change it to make approvals stale. */
const bindings = new Map<number, string>();
/** Issues whose runs wait at a budget gate instead (as execute opens one when a cap is reached). */
const budgetGates = new Set<number>();
const pipeline: Record<PipelineNode, (ctx: { run: Readonly<Run> }) => Promise<NodeResult>> = {
  intake: async () => ({ output: { intake: { ok: true } } }),
  route: async () => ({ output: { routing: { outcome: 'run', agents: ['planner'] } } }),
  plan: async (ctx) => ({
    output: { plan: { title: `Fix issue ${ctx.run.subject.issue}`, steps: ['reproduce', 'patch', 'test'] } },
  }),
  approval: async (ctx) => ({
    wait: {
      kind: budgetGates.has(ctx.run.subject.issue ?? 0) ? 'budget' : 'approval',
      binding: bindings.get(ctx.run.subject.issue ?? 0) ?? 'plan-v1',
      prompt: 'Approve the plan?',
      expiresInMs: 3_600_000,
    },
  }),
  execute: async () => ({ output: { executed: true } }),
  report: async () => ({ output: {} }),
};

const discord = new FakeDiscord('bot-token-for-tests');
let github: Server;
let githubUrl = '';
const githubRequests: string[] = [];
type TestServices = DiscordWorkflowServices;
let h: Harness<TestServices>;
let handle: (req: ReturnType<typeof signedRequest>) => Promise<HttpResponse>;
const tokensSeen = new Set<string>();

async function send(i: APIInteraction): Promise<APIInteractionResponse & { data?: Record<string, unknown> }> {
  tokensSeen.add(i.token);
  discord.interactionChannels.set(i.token, CHANNEL_ID);
  const res = await handle(signedRequest(keys, i));
  expect(res.statusCode).toBe(200);
  return JSON.parse(res.body) as APIInteractionResponse & { data?: Record<string, unknown> };
}

async function runsFor(repo: string, issue: number): Promise<Run[]> {
  return h.engine.listRuns({ subject: `${repo}#${issue}` });
}

const originalEdits = (token: string) =>
  discord.calls('PATCH', new RegExp(`/webhooks/${APP_ID}/${token}/messages/@original$`));

beforeAll(async () => {
  await discord.start();
  github = createServer((req, res) => {
    githubRequests.push(`${req.method} ${req.url}`);
    const url = new URL(req.url ?? '/', 'http://x');
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    // The pull request the PR routing toggle works on.
    if (req.method === 'GET' && url.pathname === '/repos/acme/widgets/issues/7') {
      return json(200, {
        number: 7,
        title: 'Refactor the router',
        state: 'open',
        labels: [],
        pull_request: {},
      });
    }
    if (req.method === 'POST' && url.pathname === '/repos/acme/widgets/issues/7/labels') {
      return json(200, [{ name: 'switchyard:route' }]);
    }
    if (req.method === 'POST' && url.pathname === '/repos/acme/widgets/issues/7/comments') {
      return json(201, { id: 1, html_url: 'https://github.com/acme/widgets/pull/7#issuecomment-1' });
    }
    if (url.pathname === '/repos/acme/gadgets/issues' && url.searchParams.get('labels') === 'ready') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify([
          {
            number: 7,
            title: 'Widgets render upside down',
            html_url: 'https://github.com/acme/gadgets/issues/7',
            state: 'open',
          },
          {
            number: 8,
            title: 'Add dark mode',
            html_url: 'https://github.com/acme/gadgets/issues/8',
            state: 'open',
          },
          {
            number: 9,
            title: 'A PR, not an issue',
            html_url: 'https://github.com/acme/gadgets/pull/9',
            pull_request: {},
          },
        ]),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"message":"Not Found"}');
  });
  await new Promise<void>((r) => github.listen(0, '127.0.0.1', r));
  const addr = github.address();
  githubUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;

  const store = await createTestStore();
  const rest = new DiscordRest({ baseUrl: discord.url, botToken: discord.botToken });
  const factory = new GitHubClientFactory({
    credentials: { kind: 'token', token: 'ghp_test' },
    baseUrl: githubUrl,
    throttle: false,
    retries: 0,
  });
  const services: TestServices = {
    discord: createDiscordWorkerServices({
      rest,
      store,
      applicationId: APP_ID,
      startRun: (input) => h.engine.startRun(input),
      github: factory,
      config: () => parseConfig('version: 1\n'),
    }),
  };
  const defs = [
    withNodes(issuePipeline, pipeline),
    ...discordWorkflowDefinitions(),
  ] as unknown as WorkflowDefinition<TestServices>[];
  h = await harness(defs, {
    store,
    services,
    reporters: [createDiscordReporter({ store, rest, applicationId: APP_ID })],
  });
  const endpoint = createDiscordHandler({
    publicKey: keys.publicKeyHex,
    engine: h.engine,
    store,
    policy,
    workloads: async () => formatWorkloads(await workloads(store)),
  });
  handle = (req) => endpoint(toRequest(req));
});

afterAll(async () => {
  await h?.settle();
  h?.queue.stop();
  await discord.stop();
  await new Promise<void>((r) => github.close(() => r()));
});

describe('/plan with an issue', () => {
  it('answers deferred, then the worker edits @original once per state it reports, ending at the approval gate', async () => {
    const i = command('plan', [opt.str('issue', '42')]);
    const res = await send(i);
    expect(res).toEqual({ type: 5 });
    await h.settle();

    const [run] = await runsFor('acme/widgets', 42);
    expect(run?.status).toBe('waiting');
    expect(run?.trigger).toEqual({
      source: 'discord',
      actor: ADMIN.id,
      interactionId: i.id,
      applicationId: APP_ID,
      channelId: CHANNEL_ID,
      guildId: i.guild_id,
    });
    const edits = originalEdits(i.token);
    expect(edits.length).toBeGreaterThan(0);
    const versions = edits.map((e) => Number(/v(\d+) ·/.exec(JSON.stringify(e.body))?.[1]));
    // One edit per reported state: versions only go forward, never the same state twice.
    expect(new Set(versions).size).toBe(versions.length);
    expect([...versions].sort((a, b) => a - b)).toEqual(versions);
    expect(versions.at(-1)).toBe(run?.version);
    const last = JSON.stringify(edits.at(-1)?.body);
    expect(last).toContain('⏸️ **Approval**');
    expect(last).toContain(`sy:approve:${run?.id}:plan-v1`);
  });

  it('starts one run when the same interaction is delivered twice', async () => {
    const i = command('plan', [opt.str('issue', 'acme/widgets#43')]);
    expect(await send(i)).toEqual({ type: 5 });
    expect(await send(i)).toEqual({ type: 5 });
    await h.settle();
    expect(await runsFor('acme/widgets', 43)).toHaveLength(1);
  });

  it('starts one run when the same interaction is delivered eight times at once', async () => {
    const i = command('plan', [opt.str('issue', 'https://github.com/acme/widgets/issues/44')]);
    const answers = await Promise.all(Array.from({ length: 8 }, () => send(i)));
    expect(answers.every((a) => a.type === 5)).toBe(true);
    await h.settle();
    expect(await runsFor('acme/widgets', 44)).toHaveLength(1);
  });

  it('attaches a second /plan to the active run and shows its state at once', async () => {
    const i = command('plan', [opt.str('issue', '42')]);
    const res = await send(i);
    const [run] = await runsFor('acme/widgets', 42);
    expect(res.type).toBe(4);
    expect(res.data?.content).toContain(`attached to \`${run?.id}\``);
    const binding = await h.store.kvGet<DiscordBinding>(BINDING_GROUP, run!.id);
    expect(binding?.value.interactionId).toBe(i.id);
  });

  it('explains an issue reference it cannot read', async () => {
    const res = await send(command('plan', [opt.str('issue', 'the login bug')]));
    expect(res.type).toBe(4);
    expect(res.data?.flags).toBe(64);
    expect(res.data?.content).toContain('is not an issue');
  });
});

describe('/status', () => {
  it('lists active and recent runs, privately', async () => {
    const res = await send(command('status', [], { user: APPROVER }));
    expect(res.type).toBe(4);
    expect(res.data?.flags).toBe(64);
    const text = JSON.stringify(res.data);
    expect(text).toContain('Active (');
    expect(text).toContain('acme/widgets#42');
    // The agents' queue depth and workloads (issue 5), read from the same store.
    expect(text).toContain('Agent queue: 0 waiting');
  });

  it('shows one run with its plan, gate and last events', async () => {
    const [run] = await runsFor('acme/widgets', 42);
    const res = await send(command('status', [opt.str('run', run!.id)], { user: APPROVER }));
    const embed = (res.data?.embeds ?? []) as Array<{ fields: Array<{ name: string; value: string }> }>;
    const fields = Object.fromEntries((embed[0]?.fields ?? []).map((f) => [f.name, f.value]));
    expect(fields.Plan).toContain('Fix issue 42');
    expect(fields.Gate).toContain('Plan version: `plan-v1`');
    expect(fields['Last events']).toContain('gate.opened');
  });

  it('finds a run by a unique id prefix', async () => {
    const [run] = await runsFor('acme/widgets', 43);
    const res = await send(
      command('status', [opt.str('run', run!.id.slice(0, run!.id.length - 2))], { user: APPROVER }),
    );
    expect(JSON.stringify(res.data)).toContain(run!.id);
  });

  it('autocompletes runs by repo, issue and id prefix (at most 25 choices)', async () => {
    const [run] = await runsFor('acme/widgets', 44);
    for (const q of ['acme/widgets', '#44', run!.id.slice(0, 8)]) {
      const res = await send(autocomplete('status', q, { user: APPROVER }));
      expect(res.type).toBe(8);
      const choices = (res.data as { choices: Array<{ name: string; value: string }> }).choices;
      expect(choices.length).toBeLessThanOrEqual(25);
      expect(choices.map((c) => c.value)).toContain(run!.id);
      for (const c of choices) expect(c.name.length).toBeLessThanOrEqual(100);
    }
  });

  it('offers no suggestions to someone not allowed to use the command', async () => {
    const res = await send(autocomplete('status', 'acme', { user: STRANGER }));
    expect(res).toEqual({ type: 8, data: { choices: [] } });
  });
});

describe('/approve and /cancel', () => {
  it('approves when the plan version given is the one the gate shows', async () => {
    const [run] = await runsFor('acme/widgets', 43);
    const res = await send(
      command('approve', [opt.str('run', run!.id), opt.str('plan', 'plan-v1')], { user: APPROVER }),
    );
    expect(res.type).toBe(4);
    expect(res.data?.flags).toBeUndefined();
    expect(res.data?.content).toContain(`approved \`${run!.id}\``);
    await h.settle();
    const after = await h.engine.getRun(run!.id);
    expect(after?.status).toBe('succeeded');
    expect(after?.data.approval).toMatchObject({
      by: `discord:${APPROVER.id}`,
      binding: 'plan-v1',
      bound: true,
    });
  });

  it('refuses a stale approval, privately, and leaves the run waiting', async () => {
    const i = command('plan', [opt.str('issue', '45')]);
    bindings.set(45, 'plan-v2');
    await send(i);
    await h.settle();
    const [run] = await runsFor('acme/widgets', 45);
    const res = await send(
      command('approve', [opt.str('run', run!.id), opt.str('plan', 'plan-v1')], { user: APPROVER }),
    );
    expect(res.data?.flags).toBe(64);
    expect(res.data?.content).toContain('plan changed');
    expect((await h.engine.getRun(run!.id))?.status).toBe('waiting');
    const events = await h.engine.listEvents(run!.id);
    expect(events.map((e) => e.type)).toContain('signal.approve.refused');
  });

  it('answers /approve without a plan version privately with the plan and a bound Approve button, approving nothing', async () => {
    const [run] = await runsFor('acme/widgets', 45);
    const res = await send(command('approve', [opt.str('run', run!.id)], { user: APPROVER }));
    expect(res.type).toBe(4);
    expect(res.data?.flags).toBe(64);
    expect(JSON.stringify(res.data)).toContain(`sy:approve:${run!.id}:plan-v2`);
    expect(res.data?.content).toContain('plan-v2');
    expect((await h.engine.getRun(run!.id))?.status).toBe('waiting');

    const click = await send(buttonClick(`sy:approve:${run!.id}:plan-v2`, { user: APPROVER }));
    expect(click.type).toBe(7);
    await h.settle();
    const after = await h.engine.getRun(run!.id);
    expect(after?.status).toBe('succeeded');
    expect(after?.data.approval).toMatchObject({ binding: 'plan-v2', bound: true });
  });

  it('/reject ends a waiting run with the reason, and /retry is refused while it is not failed', async () => {
    await send(command('plan', [opt.str('issue', '47')]));
    await h.settle();
    const [run] = await runsFor('acme/widgets', 47);
    const early = await send(command('retry', [opt.str('run', run!.id)]));
    expect(early.data?.flags).toBe(64);
    expect(early.data?.content).toContain('only failed or expired runs can be retried');
    const res = await send(
      command('reject', [opt.str('run', run!.id), opt.str('reason', 'wrong approach')], { user: APPROVER }),
    );
    expect(res.data?.content).toContain('rejected');
    const after = await h.engine.getRun(run!.id);
    expect(after?.status).toBe('failed');
    expect(after?.reason).toBe(`rejected by discord:${APPROVER.id}: wrong approach`);

    const retried = await send(command('retry', [opt.str('run', run!.id)]));
    expect(retried.data?.content).toContain('retried');
    expect((await h.engine.getRun(run!.id))?.status).not.toBe('failed');
  });

  it('cancels with a reason kept in the history', async () => {
    await send(command('plan', [opt.str('issue', '46')]));
    await h.settle();
    const [run] = await runsFor('acme/widgets', 46);
    const res = await send(
      command('cancel', [opt.str('run', run!.id), opt.str('reason', 'duplicate of #42')]),
    );
    expect(res.data?.content).toContain('cancelled');
    expect(res.data?.content).toContain('duplicate of #42');
    const after = await h.engine.getRun(run!.id);
    expect(after?.status).toBe('cancelled');
    expect(after?.reason).toBe(`cancelled by discord:${ADMIN.id}: duplicate of #42`);
  });

  it('explains a cancel of a run that already ended', async () => {
    const [run] = await runsFor('acme/widgets', 46);
    const res = await send(command('cancel', [opt.str('run', run!.id)]));
    expect(res.data?.flags).toBe(64);
    expect(res.data?.content).toContain('already cancelled');
  });
});

describe('buttons', () => {
  async function waitingRun(issue: number, binding = 'plan-v1'): Promise<Run> {
    bindings.set(issue, binding);
    await send(command('plan', [opt.str('issue', String(issue))]));
    await h.settle();
    const [run] = await runsFor('acme/widgets', issue);
    expect(run?.status).toBe('waiting');
    return run!;
  }

  it('Approve updates the message in place (type 7) with the run moved on', async () => {
    const run = await waitingRun(50);
    const res = await send(
      buttonClick(encodeButtonId({ action: 'approve', runId: run.id, binding: 'plan-v1' }), {
        user: APPROVER,
      }),
    );
    expect(res.type).toBe(7);
    const text = JSON.stringify(res.data);
    expect(text).not.toContain('sy:approve:');
    expect(text).toContain('✅ Approval');
    await h.settle();
    expect((await h.engine.getRun(run.id))?.status).toBe('succeeded');
  });

  it('Approve from a message showing an older plan is refused, privately', async () => {
    const run = await waitingRun(51, 'plan-v2');
    const res = await send(
      buttonClick(encodeButtonId({ action: 'approve', runId: run.id, binding: 'plan-v1' }), {
        user: APPROVER,
      }),
    );
    expect(res.type).toBe(4);
    expect(res.data?.flags).toBe(64);
    expect((await h.engine.getRun(run.id))?.status).toBe('waiting');
  });

  it('Reject ends the run and updates the message', async () => {
    const run = await waitingRun(52);
    const res = await send(
      buttonClick(encodeButtonId({ action: 'reject', runId: run.id, binding: 'plan-v1' }), {
        user: APPROVER,
      }),
    );
    expect(res.type).toBe(7);
    const after = await h.engine.getRun(run.id);
    expect(after?.status).toBe('failed');
    expect(after?.reason).toContain('rejected');
  });

  it('Cancel is checked against /cancel permissions: an approver may not cancel', async () => {
    const run = await waitingRun(53);
    const res = await send(
      buttonClick(encodeButtonId({ action: 'cancel', runId: run.id }), { user: APPROVER }),
    );
    expect(res.type).toBe(4);
    expect(res.data?.flags).toBe(64);
    expect((await h.engine.getRun(run.id))?.status).toBe('waiting');
    const refusal = (await h.engine.listEvents(run.id)).find((e) => e.type === 'discord.refused');
    expect(refusal).toMatchObject({ by: `discord:${APPROVER.id}`, detail: { command: 'cancel' } });
  });

  it('Cancel by an admin updates the message (type 7)', async () => {
    const [run] = await runsFor('acme/widgets', 53);
    const res = await send(buttonClick(encodeButtonId({ action: 'cancel', runId: run!.id })));
    expect(res.type).toBe(7);
    expect(JSON.stringify(res.data)).toContain('⏹️ cancelled');
  });
});

describe('permissions', () => {
  it('refuses /plan to a user on no allowlist, privately, and audits it', async () => {
    const i = command('plan', [opt.str('issue', '60')], { user: STRANGER });
    const res = await send(i);
    expect(res.type).toBe(4);
    expect(res.data?.flags).toBe(64);
    expect(res.data?.content).toContain('⛔');
    expect(await runsFor('acme/widgets', 60)).toHaveLength(0);
    const audit = await h.store.kvList<Record<string, unknown>>(AUDIT_GROUP);
    expect(audit.map((a) => a.value)).toContainEqual(
      expect.objectContaining({
        type: 'discord.refused',
        command: 'plan',
        interactionId: i.id,
        user: STRANGER.id,
      }),
    );
  });

  it('fails closed: a command with no allowlist is for admins only', async () => {
    const res = await send(
      command('route', [opt.sub('pr', [opt.int('pr', 7), opt.bool('enabled', true)])], { user: APPROVER }),
    );
    expect(res.data?.content).toBe('⛔ /route is limited to admins.');
  });

  it('records a refused /approve on the run it concerns', async () => {
    const [run] = await runsFor('acme/widgets', 51);
    await send(command('approve', [opt.str('run', run!.id)], { user: STRANGER }));
    const events = await h.engine.listEvents(run!.id);
    expect(events.find((e) => e.type === 'discord.refused')).toMatchObject({
      by: `discord:${STRANGER.id}`,
      detail: { command: 'approve', user: STRANGER.id },
    });
  });
});

describe('/approve budget:', () => {
  it('sets the run spend cap at a budget gate, refusing an amount out of bounds', async () => {
    budgetGates.add(91);
    bindings.set(91, 'budget-1');
    await send(command('plan', [opt.str('issue', '91')]));
    await h.settle();
    const [run] = await runsFor('acme/widgets', 91);
    expect(run).toMatchObject({ status: 'waiting', gate: { kind: 'budget', binding: 'budget-1' } });

    // Rights come first: a stranger is refused whatever the amount.
    const stranger = await send(
      command('approve', [opt.str('run', run!.id), opt.num('budget', -5)], { user: STRANGER }),
    );
    expect(stranger.data?.content).toContain('⛔');
    // Discord enforces min_value, but the request is checked all the same.
    for (const amount of [0, 0.004, -5, 2_000_000]) {
      const bad = await send(
        command('approve', [opt.str('run', run!.id), opt.num('budget', amount)], { user: APPROVER }),
      );
      expect(bad.data?.flags).toBe(64);
      expect(bad.data?.content).toContain('a USD amount from 0.01 to 1,000,000');
    }
    expect((await h.engine.getRun(run!.id))?.status).toBe('waiting');

    const res = await send(
      command('approve', [opt.str('run', run!.id), opt.num('budget', 24.999)], { user: APPROVER }),
    );
    expect(res.data?.flags).toBeUndefined();
    expect(res.data?.content).toContain(`approved \`${run!.id}\``);
    expect(res.data?.content).toContain('with a spend cap of $25.00');
    await h.settle();
    expect((await h.engine.getRun(run!.id))?.data.approval).toMatchObject({
      by: `discord:${APPROVER.id}`,
      binding: 'budget-1',
      budget: 25,
    });
  });

  it('refuses a budget at a plan approval gate, and leaves the run waiting', async () => {
    await send(command('plan', [opt.str('issue', '92')]));
    await h.settle();
    const [run] = await runsFor('acme/widgets', 92);
    expect(run?.gate?.kind).toBe('approval');
    const res = await send(
      command('approve', [opt.str('run', run!.id), opt.str('plan', 'plan-v1'), opt.num('budget', 25)], {
        user: APPROVER,
      }),
    );
    expect(res.data?.flags).toBe(64);
    expect(res.data?.content).toContain('not at a budget gate');
    const after = await h.engine.getRun(run!.id);
    expect(after?.status).toBe('waiting');
    expect(after?.data.approval).toBeUndefined();
  });
});

describe('refusals on a run', () => {
  it('are recorded on its history once per user; repeats go to the expiring audit log', async () => {
    const [run] = await runsFor('acme/widgets', 51);
    const before = (await h.engine.listEvents(run!.id)).length;
    const sent: string[] = [];
    for (let n = 0; n < 4; n++) {
      const i = command('cancel', [opt.str('run', run!.id)], { user: STRANGER });
      sent.push(i.id);
      await send(i);
    }

    const events = await h.engine.listEvents(run!.id);
    expect(events.length - before).toBeLessThanOrEqual(1);
    const audit = (await h.store.kvList<Record<string, unknown>>(AUDIT_GROUP)).map((a) => a.value);
    expect(audit.filter((a) => sent.includes(a.interactionId as string)).length).toBeGreaterThanOrEqual(3);
  });
});

describe('follow-ups after the interaction token is gone', () => {
  it('falls back to one bot message in the channel, then edits it', async () => {
    const i = command('plan', [opt.str('issue', '70')]);
    await send(i);
    await h.settle();
    const [run] = await runsFor('acme/widgets', 70);
    // Discord answers 404 for tokens before their 15 minutes are up (discord-api-docs#6851).
    discord.expiredTokens.add(i.token);
    const before = discord.calls('POST', new RegExp(`/channels/${CHANNEL_ID}/messages$`)).length;
    await send(command('approve', [opt.str('run', run!.id), opt.str('plan', 'plan-v1')]));
    await h.settle();
    const posts = discord.calls('POST', new RegExp(`/channels/${CHANNEL_ID}/messages$`)).slice(before);
    expect(posts).toHaveLength(1);
    expect(posts[0]?.headers.authorization).toBe(`Bot ${discord.botToken}`);
    const binding = (await h.store.kvGet<DiscordBinding>(BINDING_GROUP, run!.id))?.value;
    expect(binding?.tokenDead).toBe(true);
    expect(binding?.botMessageId).toBeDefined();
    expect(await h.store.kvGet(TOKEN_GROUP, i.id)).toBeUndefined();
    const edits = discord.calls(
      'PATCH',
      new RegExp(`/channels/${CHANNEL_ID}/messages/${binding?.botMessageId}$`),
    );
    const shown = [posts[0], ...edits].map((r) => JSON.stringify(r?.body));
    expect(shown.at(-1)).toContain('succeeded');
  });

  it('keeps the token only 15 minutes', async () => {
    const i = command('plan', [opt.str('issue', '71')]);
    const sent = Math.floor(Date.now() / 1000);
    await send(i);
    const item = await h.store.kvGet<{ token: string }>(TOKEN_GROUP, i.id);
    expect(item?.value.token).toBe(i.token);
    expect(item?.ttl).toBeLessThanOrEqual(sent + 15 * 60);
    expect(item?.ttl).toBeGreaterThan(sent + 14 * 60);
    await h.settle();
  });
});

describe('/plan without an issue', () => {
  it('lists ready issues in the worker, posts the plan with a thread, and starts one run per issue', async () => {
    const i = command('plan', [opt.str('repo', 'acme/gadgets')]);
    expect(await send(i)).toEqual({ type: 5 });
    await h.settle();

    expect(
      githubRequests.some(
        (r) => r.startsWith('GET /repos/acme/gadgets/issues?') && r.includes('labels=ready'),
      ),
    ).toBe(true);
    const edit = originalEdits(i.token).at(-1)?.body as {
      content: string;
      embeds: Array<{ description: string }>;
    };
    expect(edit.content).toBe('📋 **Plan** - 2 issues ready');
    expect(edit.embeds[0]?.description).toBe(
      '[#7: Widgets render upside down](https://github.com/acme/gadgets/issues/7)\n[#8: Add dark mode](https://github.com/acme/gadgets/issues/8)',
    );
    const thread = discord.threads.at(-1)!;
    expect(thread.name).toBe(`Plan - ${new Date().toISOString().slice(0, 10)}`);
    expect(thread.autoArchive).toBe(1440);
    expect(thread.parentId).toBe(CHANNEL_ID);

    const inThread = [
      ...discord.calls('POST', new RegExp(`/channels/${thread.id}/messages$`)),
      ...discord.calls('PATCH', new RegExp(`/channels/${thread.id}/messages/\\d+$`)),
    ];
    const texts = inThread.map((r) => JSON.stringify(r.body));
    expect(texts.some((t) => t.includes('/approve'))).toBe(true);
    const runs = [...(await runsFor('acme/gadgets', 7)), ...(await runsFor('acme/gadgets', 8))];
    expect(runs.map((r) => r.status)).toEqual(['waiting', 'waiting']);
    for (const r of runs) {
      expect(r.trigger).toMatchObject({ source: 'discord', channelId: thread.id });
      // Each run has its own live message in the thread, posted by the bot.
      expect(texts.some((t) => t.includes(r.id) && t.includes('sy:approve:'))).toBe(true);
    }
    expect(await runsFor('acme/gadgets', 9)).toHaveLength(0);
  });

  it('planning again attaches to the runs already active instead of starting new ones', async () => {
    await send(command('plan', [opt.str('repo', 'acme/gadgets')]));
    await h.settle();
    expect(await runsFor('acme/gadgets', 7)).toHaveLength(1);
    expect(await runsFor('acme/gadgets', 8)).toHaveLength(1);
  });
});

describe('signed but unexpected interactions', () => {
  it.each([
    ['a command without data', { type: 2 }],
    ['an unknown command', { type: 2, data: { name: 'deploy', type: 1 } }],
    ['a button without data', { type: 3 }],
    ['a button that is not ours', { type: 3, data: { custom_id: 'other-bot:click', component_type: 2 } }],
    ['a modal submit', { type: 5, data: { custom_id: 'm', components: [] } }],
    ['an unknown interaction type', { type: 99 }],
    [
      'options of the wrong types',
      { type: 2, data: { name: 'cancel', options: [{ name: 'run', type: 3, value: 7 }] } },
    ],
  ])('answers %s politely and privately, never with a 5xx', async (_name, shape) => {
    const base = command('status');
    const res = await handle(
      signedRequest(keys, { ...base, ...shape, data: (shape as { data?: unknown }).data }),
    );
    expect(res.statusCode).toBe(200);
    const body = JSON.parse(res.body) as { type: number; data: { flags: number } };
    expect(body.type).toBe(4);
    expect(body.data.flags).toBe(64);
  });
});

describe('the reporter', () => {
  it('leaves runs that did not come from Discord alone', async () => {
    const before = discord.requests.length;
    const { run } = await h.engine.startRun({
      workflow: 'issue-pipeline',
      subject: { repo: 'acme/widgets', issue: 90, key: 'acme/widgets#90' },
      trigger: { source: 'github', actor: 'octocat', deliveryId: '72d3162e-cc78-11e3-81ab-4c9367dc0958' },
    });
    await h.settle();
    expect((await h.engine.getRun(run.id))?.status).toBe('waiting');
    expect(discord.requests.slice(before).filter((r) => JSON.stringify(r.body).includes(run.id))).toEqual([]);
  });

  it('shows a failed plan in place of the deferred answer', async () => {
    const i = command('plan', [opt.str('repo', 'acme/missing')]);
    expect(await send(i)).toEqual({ type: 5 });
    await h.settle();
    const edit = originalEdits(i.token).at(-1)?.body as { content: string };
    expect(edit.content).toMatch(/^❌ `discord-plan-all` failed: /);
  });
});

describe('/route pr', () => {
  it('defers, toggles routing in the worker, and edits the answer with the outcome', async () => {
    const i = command('route', [opt.sub('pr', [opt.int('pr', 7), opt.bool('enabled', true)])]);
    expect(await send(i)).toEqual({ type: 5 });
    await h.settle();
    expect(githubRequests).toContain('POST /repos/acme/widgets/issues/7/labels');
    expect(githubRequests).toContain('POST /repos/acme/widgets/issues/7/comments');
    const edit = originalEdits(i.token).at(-1)?.body as { content: string };
    expect(edit.content).toBe('🔀 Agent routing for acme/widgets#7 is on: label switchyard:route added');
    const runs = await h.engine.listRuns({ repo: 'acme/widgets' });
    const toggle = runs.find((r) => r.workflow === 'discord-route-pr');
    expect(toggle?.status).toBe('succeeded');
    const events = await h.engine.listEvents(toggle!.id);
    expect(events.some((e) => e.type === 'github.request')).toBe(true);
  });
});

describe('interaction tokens', () => {
  it('never appear in run events or in the logs', async () => {
    const written: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      written.push(String(chunk));
      return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stdout.write;
    logger.setLogLevel('DEBUG');
    try {
      const i = command('plan', [opt.str('issue', '80')]);
      await send(i);
      await h.settle();
      const [run] = await runsFor('acme/widgets', 80);
      await send(buttonClick(encodeButtonId({ action: 'approve', runId: run!.id, binding: 'plan-v1' })));
      await send(command('status', [opt.str('run', `${snowflake()}-missing`)]));
      await h.settle();
    } finally {
      logger.setLogLevel('SILENT');
      process.stdout.write = write;
    }
    expect(written.join('').length).toBeGreaterThan(0);
    const all = await h.engine.listRuns({ limit: 200 });
    expect(all.length).toBeGreaterThan(10);
    const history = JSON.stringify(
      await Promise.all(all.map(async (r) => [r, await h.engine.listEvents(r.id)])),
    );
    const logs = written.join('');
    for (const token of tokensSeen) {
      expect(history).not.toContain(token);
      expect(logs).not.toContain(token);
    }
  });
});

describe('the kill switch: /pause and /resume', () => {
  const content = (r: { data?: Record<string, unknown> }) => String(r.data?.content ?? '');

  it('is for admins only: a stranger is refused and nothing is paused', async () => {
    const res = await send(command('pause', [], { user: STRANGER }));
    expect(content(res)).toContain('/pause is limited to admins');
    expect(await h.store.kvList('pause')).toEqual([]);
  });

  it('blocks new runs in the paused repository, shows it in /status, and lets them through after /resume', async () => {
    const paused = await send(command('pause', [opt.str('repo', 'acme/widgets')]));
    expect(content(paused)).toContain('Paused acme/widgets');

    const refused = await send(command('plan', [opt.str('issue', '61')]));
    expect(content(refused)).toContain('no new runs: acme/widgets is paused');
    expect(await runsFor('acme/widgets', 61)).toHaveLength(0);
    // Another repository is not paused.
    expect(await send(command('plan', [opt.str('issue', 'acme/other#61')]))).toEqual({ type: 5 });

    const status = await send(command('status'));
    expect(content(status)).toContain('⏸️ acme/widgets is paused');

    const audit = (await h.store.kvList<{ type: string; scope?: string }>(AUDIT_GROUP)).map((a) => a.value);
    expect(audit).toContainEqual(expect.objectContaining({ type: 'pause', scope: 'acme/widgets' }));
    expect(audit).toContainEqual(expect.objectContaining({ type: 'run.refused' }));

    expect(content(await send(command('resume', [opt.str('repo', 'acme/widgets')])))).toContain(
      'Resumed acme/widgets',
    );
    expect(await send(command('plan', [opt.str('issue', '61')]))).toEqual({ type: 5 });
    await h.settle();
    expect(await runsFor('acme/widgets', 61)).toHaveLength(1);
    expect(content(await send(command('status')))).not.toContain('paused');
  });
});
