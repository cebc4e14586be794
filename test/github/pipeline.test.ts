import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createGitHubReporter } from '../../lib/agents/github-reporter.ts';
import { Engine } from '../../lib/engine/engine.ts';
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
import { loadConfigSource, parseConfigSource } from '../../lib/routing/config.ts';
import { createDeliveryHandler } from '../../lib/routing/deliveries.ts';
import { ConfigProvider } from '../../lib/routing/repo-config.ts';
import { routedToRun } from '../../lib/routing/route.ts';
import { routeLater } from '../../lib/routing/route-later.ts';
import type { GitHubServices } from '../../lib/routing/services.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import * as nodes from '../../lib/workflows/issue-pipeline-nodes.ts';
import { createTestStore } from '../support/dynamo.ts';
import { FakeGitHub } from '../support/fake-github.ts';
import { example, signedRequest, TEST_SECRET } from './support.ts';

const TOKEN = 'pipeline-token';
const REPO = (example('issues', 'labeled').repository as { full_name: string }).full_name;

/** The issue pipeline's graph over the GitHub nodes; execute and report are the executor engineer's (issue 5), here no-ops. */
function pipeline(): WorkflowDefinition<unknown> {
  const done = async (): Promise<NodeResult> => ({});
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
      approval: { title: 'Approval', ...h(nodes.approval) },
      execute: { title: 'Execute', handler: done },
      report: { title: 'Report', handler: done },
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

function labelled(n: number, label: string, labels: string[] = [label]) {
  const p = example('issues', 'labeled');
  const i = p.issue as Record<string, unknown>;
  i.number = n;
  i.labels = labels.map((name) => ({ name }));
  (p.label as { name: string }).name = label;
  return p;
}

describe('issue pipeline over the webhook, the engine and a fake GitHub', () => {
  let gh: FakeGitHub;
  let store: DynamoRunStore;
  let queue: InMemoryQueue;
  let engine: Engine<unknown>;
  let send: (r: WebhookRequest) => ReturnType<typeof handleGitHubWebhook>;

  async function setup(yaml?: string) {
    store = await createTestStore();
    queue = new InMemoryQueue({ timeScale: 0.001, redeliveryMs: 5 });
    const central = yaml
      ? parseConfigSource(yaml, 'test.yml')
      : await loadConfigSource('config/switchyard.yml');
    const config = new ConfigProvider({ central, store });
    const github = new GitHubClientFactory({
      credentials: { kind: 'token', token: TOKEN },
      baseUrl: gh.url,
      throttle: false,
    });
    const services: GitHubServices = { github, store, config };
    engine = new Engine<unknown>({
      store,
      queue,
      workflows: new WorkflowRegistry([new Workflow(pipeline())]),
      services: { github: services },
      reporters: [createGitHubReporter({ github, config: () => central.config })],
    });
    // The worker app's dispatch (lib/app/worker.ts): deliveries to route later, then steps and reports.
    queue.consume(async (m) => {
      if (m.kind === 'route') await routeLater({ engine, config, github }, m);
      else await engine.handle(m);
    });
    const onDelivery = createDeliveryHandler({ engine, queue, config, store, github });
    send = (r) => handleGitHubWebhook({ secrets: () => [TEST_SECRET], onDelivery }, toRequest(r));
  }

  beforeAll(async () => {
    gh = await new FakeGitHub(TOKEN).start();
  });
  afterAll(async () => {
    queue?.stop();
    await gh.stop();
  });
  beforeEach(() => {
    queue?.stop();
    gh.requests.length = 0;
    gh.comments.clear();
    gh.issues.clear();
    gh.files.clear();
  });

  const statusComments = (n: number) =>
    gh.commentsOn(REPO, n).filter((c) => c.body.includes('<!-- switchyard:run:'));

  it('an issue labelled ready is routed, planned and parked for approval, with one status comment edited in place', async () => {
    await setup();
    gh.addIssue(REPO, {
      number: 11,
      title: 'Saving crashes',
      body: 'Saving a file crashes.\n\n- [ ] Fix the null check in `src/save.ts`\n- [ ] Add tests for saving\n',
      labels: ['ready'],
    });
    const res = await send(signedRequest(TEST_SECRET, 'issues', labelled(11, 'ready')));
    expect(res.statusCode).toBe(202);
    const runId = JSON.parse(res.body).run as string;
    await queue.idle();

    let run = (await engine.getRun(runId))!;
    expect(run).toMatchObject({ status: 'waiting', node: 'approval', gate: { kind: 'approval' } });
    const plan = run.data.plan as { version: string; tasks: Array<{ title: string; agent: string }> };
    expect(run.gate?.binding).toBe(plan.version);
    expect(plan.tasks.map((t) => [t.title, t.agent])).toEqual([
      ['Fix the null check in `src/save.ts`', 'coder'],
      ['Add tests for saving', 'coverage'],
    ]);
    const types = (await engine.listEvents(runId)).map((e) => e.type);
    expect(types).toEqual(
      expect.arrayContaining([
        'intake.accepted',
        'routing.config',
        'guard.verdict',
        'routing.decided',
        'plan.created',
        'gate.opened',
      ]),
    );

    expect(statusComments(11)).toHaveLength(1);
    expect(gh.calls('POST', /\/issues\/11\/comments$/)).toHaveLength(1);
    expect(statusComments(11)[0]?.body).toContain('class n_approval current');
    expect(statusComments(11)[0]?.body).toContain(`#### Plan \`${plan.version}\``);

    await engine.signal(runId, { type: 'approve', by: 'maintainer', binding: plan.version });
    await queue.idle();
    run = (await engine.getRun(runId))!;
    expect(run.status).toBe('succeeded');
    expect(statusComments(11)).toHaveLength(1);
    expect(gh.calls('POST', /\/issues\/11\/comments$/)).toHaveLength(1);
    // Edited in place (quick steps before the gate are shown once, in the waiting state they end in).
    expect(gh.calls('PATCH', /\/issues\/comments\/\d+$/).length).toBeGreaterThan(0);
    expect(statusComments(11)[0]?.body).toContain('✅ succeeded');
  });

  it('an unmatched new issue goes to triage: labels applied, missing information asked once, no status comment', async () => {
    await setup();
    const p = example('issues', 'opened');
    const i = p.issue as Record<string, unknown>;
    i.number = 12;
    i.title = 'App crash when saving';
    i.body = 'It crashes.';
    i.labels = [];
    p.repository = example('issues', 'labeled').repository;
    gh.addIssue(REPO, { number: 12, title: 'App crash when saving', body: 'It crashes.' });
    const res = await send(signedRequest(TEST_SECRET, 'issues', p));
    const runId = JSON.parse(res.body).run as string;
    await queue.idle();

    const run = (await engine.getRun(runId))!;
    expect(run).toMatchObject({
      status: 'succeeded',
      node: 'route',
      data: { routing: { outcome: 'triage' } },
    });
    expect(gh.issues.get(`${REPO}#12`)?.labels).toEqual(['bug', 'needs-info']);
    const comments = gh.commentsOn(REPO, 12);
    expect(comments).toHaveLength(1);
    expect(comments[0]?.body).toContain('<!-- switchyard:triage -->');
    expect(comments[0]?.body).toContain('**steps to reproduce**');
    expect(statusComments(12)).toHaveLength(0);
  });

  it('an agent without apply_labels is refused: the refusal is a run event and no label request is sent', async () => {
    const shipped = await loadConfigSource('config/switchyard.yml');
    const yaml = shipped.source.text.replace(
      'permissions: [read, comment, apply_labels]',
      'permissions: [read, comment]',
    );
    await setup(yaml);
    const p = example('issues', 'opened');
    Object.assign(p.issue as object, { number: 13, title: 'Crash on start', body: 'x', labels: [] });
    p.repository = example('issues', 'labeled').repository;
    gh.addIssue(REPO, { number: 13, title: 'Crash on start', body: 'x' });
    const runId = JSON.parse((await send(signedRequest(TEST_SECRET, 'issues', p))).body).run as string;
    await queue.idle();

    const refused = (await engine.listEvents(runId)).filter((e) => e.type === 'github.refused');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({
      node: 'route',
      by: 'triage',
      detail: { permission: 'apply_labels', method: 'POST' },
    });
    expect(gh.calls('POST', /\/labels$/)).toHaveLength(0);
    // Triage still asks for the missing information, which it may do.
    expect(gh.commentsOn(REPO, 13)).toHaveLength(1);
  });

  it('a repository’s own .github/switchyard.yml is fetched in the worker, cached, then used at ingress', async () => {
    await setup();
    gh.files.set(
      `${REPO}:.github/switchyard.yml`,
      'routing:\n  rules:\n    - name: go-label\n      event: issues\n      action: labeled\n      label: go\n      agents: [planner, coder]\n',
    );
    gh.addIssue(REPO, { number: 14, title: 'Use the go label', labels: ['go'] });
    gh.addIssue(REPO, { number: 15, title: 'Again', labels: ['go'] });

    const first = JSON.parse((await send(signedRequest(TEST_SECRET, 'issues', labelled(14, 'go')))).body);
    expect(first).toMatchObject({ status: 'deferred' }); // not known at ingress yet: routed in the worker
    expect(first.run).toBeUndefined();
    await queue.idle();
    const runs = await engine.listRuns({ repo: REPO });
    expect(runs.filter((r) => r.subject.issue === 14)).toHaveLength(1);
    expect(runs.find((r) => r.subject.issue === 14)?.data.routing).toMatchObject({
      outcome: 'run',
      rule: 'go-label',
    });

    const second = JSON.parse((await send(signedRequest(TEST_SECRET, 'issues', labelled(15, 'go')))).body);
    expect(second).toMatchObject({ status: 'accepted', rule: 'go-label' });
    expect(gh.calls('GET', /\/contents\/\.github\/switchyard\.yml$/)).toHaveLength(1);
  });

  it('a bad repository config is refused with its file and line, and the central config applies', async () => {
    await setup();
    gh.files.set(`${REPO}:.github/switchyard.yml`, 'routing:\n  triggerLabel: ready\n  bogus: true\n');
    gh.addIssue(REPO, { number: 16, title: 'x', labels: ['ready'] });
    const runId = JSON.parse((await send(signedRequest(TEST_SECRET, 'issues', labelled(16, 'ready')))).body)
      .run as string;
    await queue.idle();
    const invalid = (await engine.listEvents(runId)).find((e) => e.type === 'config.invalid');
    expect(invalid?.detail).toMatchObject({
      issues: [`${REPO}:.github/switchyard.yml:3: routing: unknown key bogus`],
    });
    expect((await engine.getRun(runId))?.status).toBe('waiting');
  });
});
