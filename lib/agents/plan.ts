import { AgentRegistry } from '../routing/agents.ts';
import { decisionOf, eventOf } from '../routing/route.ts';
import type { GitHubServices, StepScope } from '../routing/services.ts';
import { NoSubjectError } from './errors.ts';
import { limitPlan } from './plan-limits.ts';
import { deterministicPlanner, type Plan, type PlanInput, planVersion } from './planner.ts';

/**
 * The pipeline's plan step: read the issue (fresh from the API when there are credentials, else
 * from the webhook payload), hand it to the planner, and version the result. The plan is shown in
 * the run's status comment (the reporter); the approval gate binds to `version`.
 */
export async function plan(
  services: GitHubServices,
  scope: StepScope,
): Promise<{ plan: Plan; version: string }> {
  const run = scope.run;
  const repo = run.subject.repo;
  const number = run.subject.issue;
  if (!repo || number === undefined)
    throw new NoSubjectError(`run ${run.id} has no issue to plan`, { runId: run.id });
  const config = (await services.config.cached(repo)).config;
  const registry = new AgentRegistry(config);
  const selected = decisionOf(run)?.agents ?? [];
  const planner =
    selected.map((n) => registry.get(n)).find((a) => a?.type === 'planner') ?? registry.byType('planner')[0];
  const client = services.github.forAgent(
    planner ? registry.identity(planner.name) : registry.identity('router'),
    {
      runId: run.id,
      node: scope.node,
      sink: scope.emit,
    },
  );

  const event = eventOf(run);
  const fresh = await client.getIssue(repo, number);
  const labels = fresh?.labels
    ? fresh.labels.flatMap((l) => (typeof l === 'string' ? [l] : l.name ? [l.name] : []))
    : (event?.subject?.labels ?? []);
  const candidates = selected
    .map((n) => registry.get(n))
    .filter((a) => a !== undefined && a.type !== 'planner');
  const pool = candidates.length > 0 ? candidates : registry.list().filter((a) => a.type !== 'planner');
  const input: PlanInput = {
    repo,
    issue: number,
    title: fresh?.title ?? event?.subject?.title ?? '',
    body: fresh?.body ?? event?.subject?.body ?? '',
    labels,
    agents: pool.map((a) => ({ name: a!.name, type: a!.type })),
  };
  const impl = services.planner ?? deterministicPlanner;
  const draft = limitPlan(await impl.plan(input));
  const version = planVersion(draft);
  const result: Plan = { ...draft, version, planner: impl.name, repo, issue: number };
  scope.emit({
    type: 'plan.created',
    node: scope.node,
    by: planner?.name ?? impl.name,
    detail: {
      version,
      planner: impl.name,
      tasks: result.tasks.map((t) => ({ id: t.id, agent: t.agent, done: t.done })),
      files: result.files.length,
      source: fresh ? 'api' : 'webhook',
    },
  });
  return { plan: result, version };
}
