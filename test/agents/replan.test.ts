import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { plannerFromConfig } from '../../lib/agents/bedrock-planner.ts';
import { createGitHubReporter } from '../../lib/agents/github-reporter.ts';
import { createIssueEditHook, createIssueEditReporter, EDIT_GROUP } from '../../lib/agents/replan.ts';
import { Engine } from '../../lib/engine/engine.ts';
import { StaleApprovalError } from '../../lib/engine/errors.ts';
import {
  type NodeHandler,
  type NodeResult,
  type StepContext,
  Workflow,
  type WorkflowDefinition,
  WorkflowRegistry,
} from '../../lib/engine/workflow.ts';
import { GitHubClientFactory } from '../../lib/github/client.ts';
import { handleGitHubWebhook } from '../../lib/github/webhook.ts';
import { toRequest, type WireRequest as WebhookRequest } from '../../lib/http/request.ts';
import { InMemoryQueue } from '../../lib/queue/memory.ts';
import { parseConfigSource } from '../../lib/routing/config.ts';
import { createDeliveryHandler } from '../../lib/routing/deliveries.ts';
import { ConfigProvider } from '../../lib/routing/repo-config.ts';
import { routedToRun } from '../../lib/routing/route.ts';
import type { GitHubServices } from '../../lib/routing/services.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import * as nodes from '../../lib/workflows/issue-pipeline-nodes.ts';
import { testClock } from '../engine/kit.ts';
import { example, signedRequest, TEST_SECRET } from '../github/support.ts';
import { createTestStore } from '../support/dynamo.ts';
import { FakeBedrock, ISSUE_FIXTURES } from '../support/fake-bedrock.ts';
import { FakeGitHub } from '../support/fake-github.ts';

/**
 * Re-planning on `issues.edited`: through the real webhook handler, ingress hooks, the engine on
 * DynamoDB Local, the Bedrock planner against its Converse stand-in and GitHub's fake. While the
 * run waits for approval an edit re-plans it and the old version can no longer be approved; after
 * approval the work goes on and the status comment says the issue changed.
 */

const TOKEN = 'replan-token';
const MODEL = 'amazon.nova-lite-v1:0';
const REPO = (example('issues', 'labeled').repository as { full_name: string }).full_name;
const BEFORE = ISSUE_FIXTURES.find((f) => f.name === 'no checklist')!;
const AFTER = ISSUE_FIXTURES.find((f) => f.name === 'non-English')!;

const YAML = `
version: 1
repoConfig: { enabled: false }
guards: { ci: { enabled: false } }
routing:
  rules:
    - { name: ready, event: issues, action: labeled, label: ready, workflow: issue-pipeline, agents: [planner, coder, coverage] }
agents:
  planner: { type: planner, permissions: [read] }
  coder: { type: coder, permissions: [read, comment] }
  coverage: { type: coverage, permissions: [read] }
planner: { provider: bedrock, model: ${MODEL}, region: eu-west-1 }
`;

/** Execute steps to hold while they run, by issue number (`started` is called once it runs). */
const executeHolds = new Map<number, { started: () => void; released: Promise<void> }>();

/** The pipeline with an execute node that waits for an agent (work under way), then reports. */
function pipeline(opts: { optionalApproval?: boolean } = {}): WorkflowDefinition<unknown> {
  // The real nodes read the GitHub side from `ctx.services.github` (the engine's services below).
  const h = (fn: (ctx: StepContext<never>) => Promise<NodeResult>) => ({
    handler: fn as NodeHandler<unknown>,
  });
  return {
    name: 'issue-pipeline',
    version: 1,
    start: 'intake',
    nodes: {
      intake: { title: 'Intake', ...h(nodes.intake) },
      route: { title: 'Route', ...h(nodes.route), retry: { maxAttempts: 1 } },
      plan: { title: 'Plan', ...h(nodes.plan) },
      approval: {
        title: 'Approval',
        ...h(nodes.approval),
        ...(opts.optionalApproval ? { optionalGate: true } : {}),
      },
      execute: {
        title: 'Execute',
        handler: async (ctx) => {
          // A test may hold the step while it runs (the run is then `running`, held by its lease).
          const hold = executeHolds.get(ctx.run.subject.issue ?? 0);
          if (hold) {
            executeHolds.delete(ctx.run.subject.issue ?? 0);
            hold.started();
            await hold.released;
          }
          return { wait: { kind: 'agent', expiresInMs: 3_600_000, correlation: 'agent-1' } };
        },
      },
      report: { title: 'Report', handler: async () => ({}) },
    },
    edges: [
      { from: 'intake', to: 'route' },
      { from: 'route', to: 'plan', when: routedToRun },
      { from: 'plan', to: 'approval' },
      { from: 'approval', to: 'execute', on: 'approved' },
      { from: 'execute', to: 'report' },
    ],
  };
}

function labelled(n: number) {
  const p = example('issues', 'labeled');
  const i = p.issue as Record<string, unknown>;
  i.number = n;
  i.title = BEFORE.issue.title;
  i.body = BEFORE.issue.body;
  i.labels = [{ name: 'ready' }];
  (p.label as { name: string }).name = 'ready';
  return p;
}

function edited(n: number, changes: Record<string, unknown>, title: string, body: string) {
  const p = example('issues', 'edited');
  p.repository = example('issues', 'labeled').repository;
  const i = p.issue as Record<string, unknown>;
  i.number = n;
  i.title = title;
  i.body = body;
  p.changes = changes;
  return p;
}

/** The engine, queue and webhook endpoint of one world (the fakes and the table are shared). */
interface World {
  engine: Engine<unknown>;
  queue: InMemoryQueue;
  send: (r: WebhookRequest) => ReturnType<typeof handleGitHubWebhook>;
}

describe('re-planning when the issue is edited', () => {
  let gh: FakeGitHub;
  let bedrock: FakeBedrock;
  let store: DynamoRunStore;
  let queue: InMemoryQueue;
  let engine: Engine<unknown>;
  let send: World['send'];
  const worlds: World[] = [];

  /** The webhook, the engine with the GitHub and issue-edit reporters, and a queue feeding it. */
  function world(opts: { approvalOff?: boolean; editStore?: DynamoRunStore; now?: () => Date } = {}): World {
    const q = new InMemoryQueue({ timeScale: 0.001, redeliveryMs: 5 });
    const central = parseConfigSource(YAML, 'replan.yml');
    const config = new ConfigProvider({ central, store });
    const github = new GitHubClientFactory({
      credentials: { kind: 'token', token: TOKEN },
      baseUrl: gh.url,
      throttle: false,
    });
    const services: GitHubServices = {
      github,
      store,
      config,
      planner: plannerFromConfig(central.config.planner),
    };
    const e: Engine<unknown> = new Engine<unknown>({
      store,
      queue: q,
      workflows: new WorkflowRegistry([
        new Workflow(
          pipeline({ optionalApproval: opts.approvalOff === true }),
          opts.approvalOff ? { disabledGates: ['approval'] } : {},
        ),
      ]),
      services: { github: services },
      ...(opts.now ? { now: opts.now } : {}),
      reporters: [
        createGitHubReporter({ github, config: () => central.config }),
        createIssueEditReporter({
          engine: { store: opts.editStore ?? store, signal: (id, signal) => e.signal(id, signal) },
        }),
      ],
    });
    q.consume(async (m) => void (await e.handle(m)));
    const onDelivery = createDeliveryHandler({
      engine: e,
      queue: q,
      config,
      store,
      github,
      hooks: [createIssueEditHook({ engine: e })],
    });
    const w: World = {
      engine: e,
      queue: q,
      send: (r) => handleGitHubWebhook({ secrets: () => [TEST_SECRET], onDelivery }, toRequest(r)),
    };
    worlds.push(w);
    return w;
  }

  beforeAll(async () => {
    gh = await new FakeGitHub(TOKEN).start();
    bedrock = await new FakeBedrock().start();
    process.env.AWS_ENDPOINT_URL_BEDROCK_RUNTIME = bedrock.url;
    process.env.AWS_ACCESS_KEY_ID = 'AKIDREPLAN';
    process.env.AWS_SECRET_ACCESS_KEY = 'replan-secret';
    store = await createTestStore();
    ({ engine, queue, send } = world());
  });
  afterAll(async () => {
    for (const w of worlds) w.queue.stop();
    await gh.stop();
    await bedrock.stop();
  });
  beforeEach(() => {
    bedrock.reset();
  });

  /** The maintainer rewrites issue `n` (title and body, BEFORE to AFTER): its `issues.edited` delivery. */
  function rewrite(n: number) {
    const issue = gh.issues.get(`${REPO}#${n}`)!;
    issue.title = AFTER.issue.title;
    issue.body = AFTER.issue.body;
    return signedRequest(
      TEST_SECRET,
      'issues',
      edited(
        n,
        { title: { from: BEFORE.issue.title }, body: { from: BEFORE.issue.body } },
        issue.title,
        issue.body,
      ),
    );
  }

  const statusComment = (n: number) =>
    gh.commentsOn(REPO, n).find((c) => c.body.includes('<!-- switchyard:run:'))?.body ?? '';

  async function parkedRun(n: number) {
    gh.addIssue(REPO, { number: n, title: BEFORE.issue.title, body: BEFORE.issue.body, labels: ['ready'] });
    const res = await send(signedRequest(TEST_SECRET, 'issues', labelled(n)));
    const runId = JSON.parse(res.body).run as string;
    await queue.idle();
    const run = (await engine.getRun(runId))!;
    expect(run).toMatchObject({ status: 'waiting', gate: { kind: 'approval' } });
    return { runId, version: run.gate!.binding! };
  }

  it('re-plans a run waiting for approval; the new version replaces the old and the old approval is refused', async () => {
    const { runId, version: v1 } = await parkedRun(41);
    expect(statusComment(41)).toContain(`#### Plan \`${v1}\``);
    expect(statusComment(41)).toContain(`_Planned by bedrock:${MODEL} · 1843 in / 212 out tokens · ~$`);
    bedrock.reset();

    // The maintainer rewrites the issue.
    const delivery = rewrite(41);
    const res = await send(delivery);
    expect(res.statusCode).toBe(202);
    expect(JSON.parse(res.body)).toMatchObject({
      status: 'issue-edited',
      changed: ['title', 'body'],
      runs: [{ run: runId, outcome: 'replanned' }],
    });
    await queue.idle();

    const run = (await engine.getRun(runId))!;
    const v2 = run.gate?.binding;
    expect(run.status).toBe('waiting');
    expect(v2).toBeDefined();
    expect(v2).not.toBe(v1);
    expect((run.data.plan as { summary: string }).summary).toMatch(/^Paginar GET \/runs/);
    expect(bedrock.requests).toHaveLength(1);
    expect(bedrock.requests[0]!.prompt).toContain(AFTER.issue.title);
    const types = (await engine.listEvents(runId)).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['signal.replan', 'gate.withdrawn']));
    expect(types.filter((t) => t === 'plan.created')).toHaveLength(2);

    // The status comment shows the new plan only.
    expect(statusComment(41)).toContain(`#### Plan \`${v2}\``);
    expect(statusComment(41)).not.toContain(v1);

    // Approving what the maintainer saw before is refused; the run still waits.
    await expect(
      engine.signal(runId, { type: 'approve', by: 'maintainer', binding: v1 }),
    ).rejects.toBeInstanceOf(StaleApprovalError);
    expect((await engine.getRun(runId))!.status).toBe('waiting');

    // A redelivery of the same edit does nothing more.
    const again = await send({ ...delivery });
    expect(JSON.parse(again.body).runs).toEqual([{ run: runId, outcome: 'duplicate' }]);
    await queue.idle();
    expect(bedrock.requests).toHaveLength(1);
    expect((await engine.getRun(runId))!.gate?.binding).toBe(v2);
  });

  it('an edit after approval leaves the work under way alone and says so on the status comment', async () => {
    const { runId, version } = await parkedRun(42);
    await engine.signal(runId, { type: 'approve', by: 'maintainer', binding: version });
    await queue.idle();
    expect((await engine.getRun(runId))!).toMatchObject({ status: 'waiting', gate: { kind: 'agent' } });
    bedrock.reset();

    const res = await send(
      signedRequest(
        TEST_SECRET,
        'issues',
        edited(
          42,
          { body: { from: BEFORE.issue.body } },
          BEFORE.issue.title,
          'Actually, also handle comments.',
        ),
      ),
    );
    expect(JSON.parse(res.body).runs).toEqual([{ run: runId, outcome: 'noted' }]);
    await queue.idle();

    const run = (await engine.getRun(runId))!;
    expect(run).toMatchObject({ status: 'waiting', gate: { kind: 'agent', correlation: 'agent-1' } });
    expect((run.data.plan as { version: string }).version).toBe(version);
    expect(bedrock.requests).toHaveLength(0);
    const events = await engine.listEvents(runId);
    expect(events.find((e) => e.type === 'issue.edited')?.detail).toMatchObject({
      afterApproval: true,
      changed: ['body'],
    });
    expect(statusComment(42)).toContain("The issue's body changed after this plan was approved");
  });

  it('an edit while the approved run has a step running is noted once, and the status comment says so', async () => {
    const { runId, version } = await parkedRun(48);
    let started = () => {};
    let release = () => {};
    const running = new Promise<void>((resolve) => (started = resolve));
    executeHolds.set(48, { started, released: new Promise<void>((resolve) => (release = resolve)) });
    await engine.signal(runId, { type: 'approve', by: 'maintainer', binding: version });
    await running;
    expect((await engine.getRun(runId))!.status).toBe('running');

    const delivery = signedRequest(
      TEST_SECRET,
      'issues',
      edited(48, { body: { from: BEFORE.issue.body } }, BEFORE.issue.title, 'Also handle the replies.'),
    );
    expect(JSON.parse((await send(delivery)).body).runs).toEqual([{ run: runId, outcome: 'noted' }]);
    release();
    await queue.idle();
    expect(await engine.getRun(runId)).toMatchObject({ status: 'waiting', gate: { kind: 'agent' } });
    expect(statusComment(48)).toContain("The issue's body changed after this plan was approved");

    // A redelivery records nothing more, now that the run waits.
    const again = await send({ ...delivery });
    expect(JSON.parse(again.body).runs).toEqual([{ run: runId, outcome: 'duplicate' }]);
    await queue.idle();
    expect((await engine.listEvents(runId)).filter((e) => e.type === 'issue.edited')).toHaveLength(1);
  });

  it('an edit judged at the gate of a run approved meanwhile is noted, not dropped', async () => {
    const { runId, version } = await parkedRun(50);
    bedrock.reset();
    // The hook lists the run at its gate; the approval commits before the hook signals it.
    const racing = Object.create(store) as DynamoRunStore;
    racing.listRuns = async (query) => {
      const listed = await store.listRuns(query);
      await engine.signal(runId, { type: 'approve', by: 'maintainer', binding: version });
      await queue.idle();
      return listed;
    };
    const hook = createIssueEditHook({
      engine: { store: racing, signal: (id, signal) => engine.signal(id, signal) },
    });
    const payload = edited(
      50,
      { body: { from: BEFORE.issue.body } },
      BEFORE.issue.title,
      'Also the replies.',
    );
    const out = await hook({ name: 'issues', id: randomUUID(), event: { name: 'issues' } as never, payload });
    expect(out?.body).toMatchObject({ runs: [{ run: runId, outcome: 'noted' }] });
    await queue.idle();
    expect(await engine.getRun(runId)).toMatchObject({ status: 'waiting', gate: { kind: 'agent' } });
    const events = await engine.listEvents(runId);
    expect(events.filter((e) => e.type === 'issue.edited')).toHaveLength(1);
    expect(events.some((e) => e.type === 'signal.replan')).toBe(false);
    expect(bedrock.requests).toHaveLength(0);
  });

  it('a redelivered edit after approval is noted once, even when a later edit was noted since', async () => {
    const { runId, version } = await parkedRun(51);
    await engine.signal(runId, { type: 'approve', by: 'maintainer', binding: version });
    await queue.idle();
    const first = signedRequest(
      TEST_SECRET,
      'issues',
      edited(51, { body: { from: BEFORE.issue.body } }, BEFORE.issue.title, 'First change.'),
    );
    const second = signedRequest(
      TEST_SECRET,
      'issues',
      edited(51, { title: { from: BEFORE.issue.title } }, 'Second change', 'First change.'),
    );
    for (const [delivery, outcome] of [
      [first, 'noted'],
      [second, 'noted'],
      [first, 'duplicate'],
      [second, 'duplicate'],
    ] as const) {
      expect(JSON.parse((await send({ ...delivery })).body).runs).toEqual([{ run: runId, outcome }]);
      await queue.idle();
    }
    expect((await engine.listEvents(runId)).filter((e) => e.type === 'issue.edited')).toHaveLength(2);
    // The comment names what the newest edit changed.
    expect(statusComment(51)).toContain("The issue's title changed after this plan was approved");
  });

  it('the reporter judges a parked edit on the run as it is, not on the version it reports', async () => {
    const { runId, version } = await parkedRun(52);
    const atGate = (await engine.getRun(runId))!;
    // An edit parked while the run planned, not yet seen by a report; the run is approved since.
    const edit = {
      delivery: randomUUID(),
      at: new Date().toISOString(),
      by: 'alice',
      changed: ['body' as const],
      title: BEFORE.issue.title,
      body: 'Also the replies.',
    };
    await store.kvPut(EDIT_GROUP, runId, { edit, by: 'github:alice' }, { expectedVersion: 0 });
    await engine.signal(runId, { type: 'approve', by: 'maintainer', binding: version });
    await queue.idle();
    bedrock.reset();
    // A late report of the gate version: the edit is noted on the approved run, not re-planned.
    const reporter = createIssueEditReporter({
      engine: { store, signal: (id, signal) => engine.signal(id, signal) },
    });
    await reporter.report(atGate, { events: [], workflow: undefined, store });
    await queue.idle();
    const events = await engine.listEvents(runId);
    expect(events.filter((e) => e.type === 'issue.edited')).toHaveLength(1);
    expect(events.some((e) => e.type === 'signal.replan')).toBe(false);
    expect(await store.kvGet(EDIT_GROUP, runId)).toBeUndefined();
    expect(bedrock.requests).toHaveLength(0);
  });

  it('an edit that changes neither title nor body (labels, assignees) is left to routing', async () => {
    const { runId, version } = await parkedRun(43);
    const res = await send(
      signedRequest(TEST_SECRET, 'issues', edited(43, {}, BEFORE.issue.title, BEFORE.issue.body)),
    );
    expect(JSON.parse(res.body).status).not.toBe('issue-edited');
    await queue.idle();
    expect((await engine.getRun(runId))!.gate?.binding).toBe(version);
  });
  /** A labelled issue whose plan step has read it and waits for the model (answer held back). */
  async function labelWhilePlanning(
    w: World,
    n: number,
    text: { title: string; body: string } = BEFORE.issue,
  ) {
    gh.addIssue(REPO, { number: n, title: text.title, body: text.body, labels: ['ready'] });
    const release = bedrock.holdNext();
    const res = await w.send(signedRequest(TEST_SECRET, 'issues', labelled(n)));
    const runId = JSON.parse(res.body).run as string;
    expect(runId).toBeTypeOf('string');
    await bedrock.received(1);
    return { runId, release };
  }

  it('an edit that lands while the plan is being made re-plans the run once it reaches its gate', async () => {
    const { runId, release } = await labelWhilePlanning({ engine, queue, send }, 44);
    const delivery = rewrite(44);
    // The plan step holds the run: the edit waits for it.
    expect(JSON.parse((await send(delivery)).body).runs).toEqual([{ run: runId, outcome: 'parked' }]);
    expect(await store.kvGet(EDIT_GROUP, runId)).toBeDefined();

    release();
    await queue.idle();
    const run = (await engine.getRun(runId))!;
    expect(run).toMatchObject({ status: 'waiting', gate: { kind: 'approval' } });
    expect((run.data.plan as { summary: string }).summary).toMatch(/^Paginar GET \/runs/);
    expect(bedrock.requests).toHaveLength(2);
    expect(bedrock.requests[1]!.prompt).toContain(AFTER.issue.title);
    const events = await engine.listEvents(runId);
    expect(events.filter((e) => e.type === 'plan.created')).toHaveLength(2);
    expect(events.find((e) => e.type === 'signal.replan')?.detail).toMatchObject({
      reason: "the issue's title and body changed after the plan read it",
    });
    expect(await store.kvGet(EDIT_GROUP, runId)).toBeUndefined();
    expect(statusComment(44)).toContain(`#### Plan \`${run.gate!.binding}\``);

    // A redelivery of the same edit does nothing more.
    const again = await send({ ...delivery });
    expect(JSON.parse(again.body).runs).toEqual([{ run: runId, outcome: 'duplicate' }]);
    await queue.idle();
    expect(bedrock.requests).toHaveLength(2);
  });

  it('an edit the plan already read changes nothing, whether it waited for the plan or came late', async () => {
    // The issue already reads as edited when the plan step reads it; the edit's webhook comes later.
    const { runId, release } = await labelWhilePlanning({ engine, queue, send }, 45, AFTER.issue);
    const payload = edited(45, { body: { from: BEFORE.issue.body } }, AFTER.issue.title, AFTER.issue.body);
    const parked = await send(signedRequest(TEST_SECRET, 'issues', payload));
    expect(JSON.parse(parked.body).runs).toEqual([{ run: runId, outcome: 'parked' }]);
    release();
    await queue.idle();
    const run = (await engine.getRun(runId))!;
    expect(run).toMatchObject({ status: 'waiting', gate: { kind: 'approval' } });
    expect(bedrock.requests).toHaveLength(1);
    expect(await store.kvGet(EDIT_GROUP, runId)).toBeUndefined();

    // The same text in a later delivery, with the run at its gate: nothing to re-plan.
    const late = await send(signedRequest(TEST_SECRET, 'issues', payload));
    expect(JSON.parse(late.body).runs).toEqual([{ run: runId, outcome: 'current' }]);
    await queue.idle();
    const after = (await engine.getRun(runId))!;
    expect(after.gate?.binding).toBe(run.gate?.binding);
    expect(after.version).toBe(run.version);
    expect(bedrock.requests).toHaveLength(1);
    expect((await engine.listEvents(runId)).some((e) => e.type === 'signal.replan')).toBe(false);
  });

  it('with the approval gate switched off, an edit while planning or during the work is noted, not re-planned', async () => {
    const w = world({ approvalOff: true });
    const { runId, release } = await labelWhilePlanning(w, 46);
    const issue = gh.issues.get(`${REPO}#46`)!;
    issue.body = 'Actually, also handle comments.';
    const first = await w.send(
      signedRequest(
        TEST_SECRET,
        'issues',
        edited(46, { body: { from: BEFORE.issue.body } }, issue.title, issue.body),
      ),
    );
    expect(JSON.parse(first.body).runs).toEqual([{ run: runId, outcome: 'parked' }]);
    release();
    await w.queue.idle();
    const run = (await w.engine.getRun(runId))!;
    // No gate to re-plan at: the work started on the plan as made, and the edit says so.
    expect(run).toMatchObject({ status: 'waiting', gate: { kind: 'agent' } });
    expect(bedrock.requests).toHaveLength(1);
    expect(await store.kvGet(EDIT_GROUP, runId)).toBeUndefined();
    const noted = (await w.engine.listEvents(runId)).filter((e) => e.type === 'issue.edited');
    expect(noted).toHaveLength(1);
    expect(noted[0]!.detail).toMatchObject({ afterApproval: true, changed: ['body'] });
    expect(statusComment(46)).toContain(
      "The issue's body changed after this plan was made; the work under way follows it (no approval gate).",
    );

    // Another edit while the agent works: noted at once (it was dropped when the gate was off).
    issue.body = 'And the replies too.';
    const second = await w.send(
      signedRequest(
        TEST_SECRET,
        'issues',
        edited(46, { body: { from: 'Actually, also handle comments.' } }, issue.title, issue.body),
      ),
    );
    expect(JSON.parse(second.body).runs).toEqual([{ run: runId, outcome: 'noted' }]);
    await w.queue.idle();
    expect((await w.engine.listEvents(runId)).filter((e) => e.type === 'issue.edited')).toHaveLength(2);
    expect(bedrock.requests).toHaveLength(1);
  });
  it('a run that reaches its gate while the hook parks the edit is re-planned by the hook itself', async () => {
    const { runId, release } = await labelWhilePlanning({ engine, queue, send }, 47);
    const issue = gh.issues.get(`${REPO}#47`)!;
    issue.body = AFTER.issue.body;
    // The hook listed the run while it planned; before its park is written, the plan is made and
    // the gate's report has looked for a parked edit and found none.
    const racing = Object.create(store) as DynamoRunStore;
    racing.kvPut = async (group, key, value, opts) => {
      if (group === EDIT_GROUP) {
        release();
        await queue.idle();
        expect((await engine.getRun(runId))!.gate?.kind).toBe('approval');
      }
      return store.kvPut(group, key, value, opts);
    };
    const hook = createIssueEditHook({
      engine: { store: racing, signal: (id, signal) => engine.signal(id, signal) },
    });
    const payload = edited(47, { body: { from: BEFORE.issue.body } }, issue.title, issue.body);
    const out = await hook({ name: 'issues', id: randomUUID(), event: { name: 'issues' } as never, payload });
    expect(out?.body).toMatchObject({ runs: [{ run: runId, outcome: 'replanned' }] });
    await queue.idle();
    const run = (await engine.getRun(runId))!;
    expect(run).toMatchObject({ status: 'waiting', gate: { kind: 'approval' } });
    expect(bedrock.requests).toHaveLength(2);
    expect(await store.kvGet(EDIT_GROUP, runId)).toBeUndefined();
  });
  it('a reporter that fails after re-planning, before the park is removed, re-plans nothing twice', async () => {
    // The park's removal fails once (a throttle, or the worker stopping there): the report fails
    // and is retried; the next look finds the edit already taken by the run.
    let failures = 0;
    const flaky = Object.create(store) as DynamoRunStore;
    flaky.kvDelete = async (group, key, opts) => {
      if (group === EDIT_GROUP && failures++ === 0)
        throw Object.assign(new Error('throttled'), { name: 'ThrottlingException' });
      return store.kvDelete(group, key, opts);
    };
    const clock = testClock();
    const w = world({ editStore: flaky, now: clock.now });
    const { runId, release } = await labelWhilePlanning(w, 49);
    const delivery = rewrite(49);
    expect(JSON.parse((await w.send(delivery)).body).runs).toEqual([{ run: runId, outcome: 'parked' }]);
    release();
    await w.queue.idle();
    // The failed report's claim held back the reports after it; once it lapses, the sweeper (the
    // reports' backstop) shows the run at its new gate, and that report finds the edit taken.
    clock.advance(60_000);
    await w.engine.sweep();
    await w.queue.idle();
    const run = (await w.engine.getRun(runId))!;
    expect(run).toMatchObject({ status: 'waiting', gate: { kind: 'approval' } });
    expect(failures).toBe(2);
    expect(bedrock.requests).toHaveLength(2);
    expect((await w.engine.listEvents(runId)).filter((e) => e.type === 'signal.replan')).toHaveLength(1);
    expect(await store.kvGet(EDIT_GROUP, runId)).toBeUndefined();
    expect(statusComment(49)).toContain(`#### Plan \`${run.gate!.binding}\``);
  });
});
