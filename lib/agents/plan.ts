import { AgentRegistry } from '../routing/agents.ts';
import { decisionOf, eventOf } from '../routing/route.ts';
import type { GitHubServices, StepScope } from '../routing/services.ts';
import { NoSubjectError } from './errors.ts';
import { planContext } from './plan-context.ts';
import { limitPlan } from './plan-limits.ts';
import { deterministicPlanner, type Plan, type PlanInput, planVersion } from './planner.ts';
import { type IssueEdit, issueTextHash, type PlanSource } from './replan.ts';

/**
 * The pipeline's plan step: read the issue (fresh from the API when there are credentials, else
 * from the webhook payload), hand it to the planner, and version the result. The plan is shown in
 * the run's status comment (the reporter); the approval gate binds to `version`.
 *
 * A model planner also gets the issue's last comments, the repository's instructions for agents
 * and its top-level tree. `plan.created` records who planned, the tokens used and their estimated
 * cost (what budgets add up); a model planner that gave up adds a `plan.fallback` event first.
 * On a re-plan after an edit, the edited title and body (run data `issueEdit`) stand in for the
 * API's when there are no credentials. The plan records what it was made from (`source`), so an
 * edit it already saw does not re-plan it.
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
  const plannerAgent =
    selected.map((n) => registry.get(n)).find((a) => a?.type === 'planner') ?? registry.byType('planner')[0];
  const client = services.github.forAgent(
    plannerAgent ? registry.identity(plannerAgent.name) : registry.identity('router'),
    {
      runId: run.id,
      node: scope.node,
      sink: scope.emit,
    },
  );

  const event = eventOf(run);
  const edit = run.data.issueEdit as Partial<IssueEdit> | undefined;
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
    title:
      fresh?.title ??
      (typeof edit?.title === 'string' ? edit.title : undefined) ??
      event?.subject?.title ??
      '',
    body:
      (fresh ? (fresh.body ?? '') : undefined) ??
      (typeof edit?.body === 'string' ? edit.body : undefined) ??
      event?.subject?.body ??
      '',
    labels,
    agents: pool.map((a) => ({
      name: a!.name,
      type: a!.type,
      ...(a!.description ? { description: a!.description } : {}),
    })),
  };
  const impl = services.planner ?? deterministicPlanner;
  if (impl.wantsContext) Object.assign(input, await planContext(client, repo, number));
  const draft = limitPlan(await impl.plan(input));
  const version = planVersion(draft);
  const planner = draft.planner ?? impl.name;
  // What the plan was made from: an edit parked while it planned is news only if it differs
  // (lib/agents/replan.ts).
  const updatedAt = fresh ? fresh.updated_at : edit?.updatedAt;
  const source: PlanSource = {
    hash: issueTextHash(input.title, input.body),
    ...(typeof updatedAt === 'string' ? { updatedAt } : {}),
  };
  const result: Plan = { ...draft, version, planner, repo, issue: number, source };
  const by = plannerAgent?.name ?? impl.name;
  if (draft.fallback) {
    scope.emit({
      type: 'plan.fallback',
      node: scope.node,
      by,
      detail: { ...draft.fallback, planner },
    });
  }
  scope.emit({
    type: 'plan.created',
    node: scope.node,
    by,
    detail: {
      version,
      planner,
      ...(draft.usage ? { usage: draft.usage } : {}),
      ...(draft.costUsd !== undefined ? { costUsd: draft.costUsd } : {}),
      ...(draft.adjustments ? { adjustments: draft.adjustments } : {}),
      ...(draft.fallback ? { fallbackFrom: draft.fallback.from } : {}),
      tasks: result.tasks.map((t) => ({ id: t.id, agent: t.agent, done: t.done })),
      files: result.files.length,
      source: fresh ? 'api' : edit ? 'edit' : 'webhook',
    },
  });
  return { plan: result, version };
}
