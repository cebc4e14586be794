import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGitHubReporter } from '../../lib/agents/github-reporter.ts';
import { Engine } from '../../lib/engine/engine.ts';
import type { Trigger } from '../../lib/engine/types.ts';
import {
  type NodeHandler,
  type NodeResult,
  type StepContext,
  Workflow,
  type WorkflowDefinition,
  WorkflowRegistry,
} from '../../lib/engine/workflow.ts';
import { GitHubClientFactory } from '../../lib/github/client.ts';
import { InMemoryQueue } from '../../lib/queue/memory.ts';
import { loadConfigSource, parseConfigSource } from '../../lib/routing/config.ts';
import { ConfigProvider } from '../../lib/routing/repo-config.ts';
import { routedToRun } from '../../lib/routing/route.ts';
import type { GitHubServices } from '../../lib/routing/services.ts';
import * as nodes from '../../lib/workflows/issue-pipeline-nodes.ts';
import { createTestStore } from '../support/dynamo.ts';
import { FakeGitHub } from '../support/fake-github.ts';

/**
 * Issue #9, defect 1: central policies apply to runs a person starts (Discord `/plan`, the CLI),
 * not only to runs a webhook starts. Before the fix no rule matched the made-up `discord` event,
 * `decide()` returned before any policy was read, and the run was planned and parked anyway.
 */

const TOKEN = 'manual-policy-token';
const REPO = 'acme/infra';

function pipeline(gate: 'on' | 'off'): WorkflowDefinition<unknown> {
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
      approval: {
        title: 'Approval',
        ...h(nodes.approval),
        // The approval gate switched off by config; a policy's require.approval switches it back on.
        ...(gate === 'off'
          ? {
              optionalGate: true,
              gateRequired: (d: Record<string, unknown>) =>
                (d.routing as { requireApproval?: unknown } | undefined)?.requireApproval === true,
            }
          : {}),
      },
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

describe('policies apply to every trigger source', () => {
  let gh: FakeGitHub;
  const queues: InMemoryQueue[] = [];

  beforeAll(async () => {
    gh = await new FakeGitHub(TOKEN).start();
    gh.addIssue(REPO, { number: 5, title: 'Rotate the keys', body: '- [ ] Rotate\n' });
  });
  afterAll(async () => {
    for (const q of queues) q.stop();
    await gh.stop();
  });

  async function stack(policies: string, opts: { gate?: 'on' | 'off'; disabledGates?: boolean } = {}) {
    const shipped = await loadConfigSource('config/switchyard.yml');
    let yaml = shipped.source.text.replace(/\npolicies:\n(?: {2}.*\n|\s*\n)*/, `\npolicies:\n${policies}\n`);
    // No CI guard here: only policies decide.
    yaml = yaml.replace(
      /guards:\n {2}ci:\n {4}#[^\n]*\n {4}#[^\n]*\n {4}enabled: true/,
      'guards:\n  ci:\n    enabled: false',
    );
    const central = parseConfigSource(yaml, 'test.yml');
    const store = await createTestStore();
    const queue = new InMemoryQueue({ timeScale: 0.001, redeliveryMs: 5 });
    queues.push(queue);
    const github = new GitHubClientFactory({
      credentials: { kind: 'token', token: TOKEN },
      baseUrl: gh.url,
      throttle: false,
    });
    const services: GitHubServices = { github, store, config: new ConfigProvider({ central, store }) };
    const engine = new Engine<unknown>({
      store,
      queue,
      workflows: new WorkflowRegistry([new Workflow(pipeline(opts.gate ?? 'on'))]),
      services: { github: services },
      reporters: [createGitHubReporter({ github, config: () => central.config })],
    });
    queue.consume(async (m) => void (await engine.handle(m)));
    return { engine, queue, central };
  }

  const discord: Trigger = { source: 'discord', actor: '200000000000000001', interactionId: '9' };
  const cli: Trigger = { source: 'cli', actor: 'cli:operator1' };

  it.each([
    ['Discord /plan', discord],
    ['the CLI', cli],
  ])('a run started from %s on a repo under forbid.always fails naming the policy', async (_, trigger) => {
    const { engine, queue } = await stack(
      `  - name: freeze-infra\n    repos: ["acme/infra"]\n    forbid: { always: true }\n`,
    );
    const { run } = await engine.startRun({
      workflow: 'issue-pipeline',
      subject: { repo: REPO, issue: 5, key: `${REPO}#5` },
      trigger,
    });
    await queue.idle();
    const done = (await engine.getRun(run.id))!;
    expect(done.status).toBe('failed');
    expect(done.node).toBe('route');
    expect(done.reason).toContain('policy freeze-infra');
    const types = (await engine.listEvents(run.id)).map((e) => e.type);
    expect(types).toContain('policy.verdict');
    expect(types).not.toContain('plan.created');
  });

  it('require.labels forbids a manual run on an issue without the label', async () => {
    const { engine, queue } = await stack(
      `  - name: needs-triaged\n    repos: ["acme/*"]\n    require: { labels: [triaged] }\n`,
    );
    const { run } = await engine.startRun({
      workflow: 'issue-pipeline',
      subject: { repo: REPO, issue: 5, key: `${REPO}#5` },
      trigger: discord,
    });
    await queue.idle();
    const done = (await engine.getRun(run.id))!;
    expect(done.status).toBe('failed');
    expect(done.reason).toContain('policy needs-triaged');
  });

  it('require.approval parks a manual run at approval even with the gate switched off', async () => {
    const { engine, queue } = await stack(
      `  - name: approve-infra\n    repos: ["acme/infra"]\n    require: { approval: true }\n`,
      { gate: 'off' },
    );
    const { run } = await engine.startRun({
      workflow: 'issue-pipeline',
      subject: { repo: REPO, issue: 5, key: `${REPO}#5` },
      trigger: discord,
    });
    await queue.idle();
    const parked = (await engine.getRun(run.id))!;
    expect(parked.data.routing).toMatchObject({ outcome: 'run', requireApproval: true });
    expect(parked).toMatchObject({ status: 'waiting', node: 'approval' });
  });

  it('a repo out of the policy’s scope is planned as before', async () => {
    const { engine, queue } = await stack(
      `  - name: freeze-other\n    repos: ["acme/other"]\n    forbid: { always: true }\n`,
    );
    const { run } = await engine.startRun({
      workflow: 'issue-pipeline',
      subject: { repo: REPO, issue: 5, key: `${REPO}#5` },
      trigger: discord,
    });
    await queue.idle();
    expect((await engine.getRun(run.id))?.data.routing).toMatchObject({
      outcome: 'run',
      requireApproval: false,
    });
  });
});
