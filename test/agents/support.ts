import { createExecuteNode, executeEdges } from '../../lib/agents/execute.ts';
import { AgentHub, type HubOptions } from '../../lib/agents/hub.ts';
import type { Plan, PlanTask } from '../../lib/agents/planner.ts';
import type { DispatchRecord } from '../../lib/agents/work-queue.ts';
import { createWorkReporter } from '../../lib/agents/work-reporter.ts';
import { resumeFromWorkflowRun } from '../../lib/agents/workflow-run.ts';
import type { DiscordRest } from '../../lib/discord/rest.ts';
import type { FaultPoint } from '../../lib/engine/engine.ts';
import type { Run, RunEvent } from '../../lib/engine/types.ts';
import type { WorkflowDefinition } from '../../lib/engine/workflow.ts';
import { GitHubClientFactory } from '../../lib/github/client.ts';
import { parseConfig, type SwitchyardConfig } from '../../lib/routing/config.ts';
import { type TestClock, testClock } from '../engine/kit.ts';
import { FakeGitHubActions } from '../support/fake-github-actions.ts';
import { type Harness, harness } from '../support/harness.ts';

/** The test config: agents (plus `extraAgents`, indented two spaces), executors and escalation. */
export function agentsYaml(extraAgents = '', escalation = 'maxFailures: 2'): string {
  return `
agents:
  planner: { type: planner, permissions: [read] }
  coder:
    type: coder
    executor: actions
    permissions: [read, comment, dispatch_workflow, cancel_workflow]
    concurrency: 1
    envAllowlist: [SWITCHYARD_AGENT_MODEL, GITHUB_TOKEN]
  coder2:
    type: coder
    executor: actions
    permissions: [read, dispatch_workflow, cancel_workflow]
    concurrency: 1
  reviewer:
    type: reviewer
    executor: actions
    permissions: [read, dispatch_workflow, cancel_workflow]
    concurrency: 1
  readonly:
    type: custom
    executor: actions
    permissions: [read]
  ci-triage: { type: ci-triage, permissions: [read, comment] }
${extraAgents}
executors:
  actions: { type: github-actions, workflow: switchyard-agent.yml, ref: main }
escalation:
  ${escalation}
`;
}

export const AGENTS_YAML = agentsYaml();

/** The dispatch record of a run's first item, about to be dispatched to GitHub Actions (`over`: what differs). */
export function firstDispatch(runId: string, over: Partial<DispatchRecord> = {}): DispatchRecord {
  return {
    runId,
    item: `${runId}.t1.1`,
    correlation: `${runId}.t1.1`,
    agent: 'coder',
    executor: 'github-actions',
    state: 'dispatching',
    startedAt: '2026-01-01T00:00:00.000Z',
    expiresAt: '2026-01-01T01:00:00.000Z',
    ...over,
  };
}

export const TEST_ENV: NodeJS.ProcessEnv = {
  SWITCHYARD_AGENT_MODEL: 'model-x',
  GITHUB_TOKEN: 'ghp_test_token_value_123456',
};

/** A workflow that is just the pipeline's tail: execute (with its loop edges) → report. */
export const AGENT_WORKFLOW: WorkflowDefinition<unknown> = {
  name: 'agent-test',
  version: 1,
  start: 'execute',
  nodes: {
    execute: {
      handler: async (ctx) => {
        const services = ctx.services as {
          execute: (c: typeof ctx) => ReturnType<ReturnType<typeof createExecuteNode>>;
        };
        return services.execute(ctx);
      },
      retry: { maxAttempts: 3, initialDelayMs: 10, maxDelayMs: 20 },
    },
    report: { handler: async () => ({ output: { reported: true } }) },
  },
  edges: executeEdges('execute', 'report'),
};

export interface AgentWorld {
  h: Harness<unknown>;
  hub: AgentHub;
  fake: FakeGitHubActions;
  clock: TestClock;
  config: SwitchyardConfig;
  github: GitHubClientFactory;
  start(
    tasks: Array<Partial<PlanTask> & { agent: string }>,
    opts?: { priority?: number; repo?: string; issue?: number },
  ): Promise<Run>;
  run(id: string): Promise<Run>;
  events(id: string): Promise<RunEvent[]>;
  types(id: string): Promise<string[]>;
  /**
   * Finish the agent workflow dispatched for `runId` (the latest one) and deliver its webhook; then
   * wait for the queue, unless `settle: false` (a step held mid-way would never let it go idle).
   */
  complete(runId: string, conclusion?: string, opts?: { settle?: boolean }): Promise<unknown>;
  stop(): Promise<void>;
}

export function plan(
  tasks: Array<Partial<PlanTask> & { agent: string }>,
  repo = 'acme/app',
  issue = 7,
): Plan {
  return {
    version: 'p-test',
    title: 'Test issue',
    summary: 'Do the thing',
    planner: 'test',
    repo,
    issue,
    files: [],
    tasks: tasks.map((t, i) => ({ id: `t${i + 1}`, title: `Task ${i + 1}`, files: [], done: false, ...t })),
  };
}

export async function agentWorld(
  opts: {
    yaml?: string;
    options?: Partial<HubOptions>;
    dryRun?: boolean;
    env?: NodeJS.ProcessEnv;
    publicUrl?: string;
    discord?: DiscordRest;
    fetch?: typeof fetch;
    /** The engine's fault points (a worker that dies mid-step). */
    faults?: (point: FaultPoint, run: Run) => void | Promise<void>;
  } = {},
): Promise<AgentWorld> {
  const fake = await new FakeGitHubActions().start();
  const clock = testClock();
  const config = parseConfig(opts.yaml ?? AGENTS_YAML);
  const github = new GitHubClientFactory({
    ...(opts.dryRun ? {} : { credentials: { kind: 'token', token: 'gh-test-token' } }),
    baseUrl: fake.url,
    throttle: false,
    retries: 0,
  });
  const services: Record<string, unknown> = {};
  const h = await harness<unknown>([AGENT_WORKFLOW], {
    services,
    now: clock.now,
    ...(opts.faults ? { faults: opts.faults } : {}),
  });
  const hub = new AgentHub({
    store: h.store,
    config: { central: config },
    github,
    engine: () => h.engine,
    env: opts.env ?? TEST_ENV,
    now: clock.now,
    ...(opts.publicUrl ? { publicUrl: opts.publicUrl } : {}),
    ...(opts.discord ? { discord: opts.discord } : {}),
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
    options: { repoConcurrency: 10, ...opts.options },
  });
  services.execute = createExecuteNode(hub);
  h.engine.addReporter(createWorkReporter(hub));

  const world: AgentWorld = {
    h,
    hub,
    fake,
    clock,
    config,
    github,
    async start(tasks, o = {}) {
      const repo = o.repo ?? 'acme/app';
      const issue = o.issue ?? 7;
      const { run } = await h.engine.startRun({
        workflow: 'agent-test',
        subject: { repo, issue, key: `${repo}#${issue}` },
        trigger: { source: 'test' },
        input: {
          plan: plan(tasks, repo, issue),
          ...(o.priority !== undefined ? { priority: o.priority } : {}),
        },
      });
      await h.settle();
      return (await h.engine.getRun(run.id))!;
    },
    async run(id) {
      return (await h.engine.getRun(id))!;
    },
    events: (id) => h.engine.listEvents(id),
    async types(id) {
      return (await h.engine.listEvents(id)).map((e) => e.type);
    },
    async complete(runId, conclusion = 'success', { settle = true } = {}) {
      const wr = [...fake.runs]
        .reverse()
        .find((r) => r.display_title.includes(runId) && r.status !== 'completed');
      if (!wr) throw new Error(`no running workflow run for ${runId}`);
      fake.finish(wr, conclusion);
      const res = await resumeFromWorkflowRun(h.engine, fake.payload(wr, 'completed'), { now: clock.now });
      if (settle) await h.settle();
      return res;
    },
    async stop() {
      await h.settle();
      h.queue.stop();
      await fake.stop();
    },
  };
  return world;
}

/** Answer the run's current work item directly, as the HTTP callback path would (payload included). */
export async function answer(
  world: AgentWorld,
  runId: string,
  result: { ok: boolean; payload?: Record<string, unknown> },
): Promise<string> {
  const rec = await world.hub.queue.getDispatch(runId);
  if (!rec) throw new Error(`nothing dispatched for ${runId}`);
  const out = await world.hub.deliver({
    runId,
    item: rec.value.item,
    correlation: rec.value.correlation,
    ok: result.ok,
    by: rec.value.agent,
    payload: { conclusion: result.ok ? 'success' : 'failure', ...result.payload },
  });
  await world.h.settle();
  return out;
}
