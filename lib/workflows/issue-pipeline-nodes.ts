import { withPlanCost } from '../agents/budget.ts';
import { createExecuteNode } from '../agents/execute.ts';
import { ciWait } from '../agents/gates.ts';
import { plan as makePlan } from '../agents/plan.ts';
import { triage } from '../agents/triage.ts';
import type { NodeResult, StepContext } from '../engine/workflow.ts';
import { AgentRegistry } from '../routing/agents.ts';
import { RunBlockedError } from '../routing/errors.ts';
import { route as decide, decisionOf, eventOf } from '../routing/route.ts';
import type { WorkflowServices } from './services.ts';

/**
 * The issue pipeline's nodes (the graph is ./issue-pipeline.ts): every export is a node handler,
 * and only the worker imports this module, when one of them first runs. They are thin: routing,
 * planning and triage live in lib/routing and lib/agents, execution in the agents hub.
 *
 * `route` continues to `plan` only when `routedToRun(data)` holds: a run that routing ignores, or
 * hands to triage, ends at `route` as succeeded. Forbidden (policy) runs end `failed` with a
 * RunBlockedError whose message says why; the policy verdicts are events of the run (committed
 * through `ctx.emit` even though the step fails). A run the CI guard blocks parks at a `ci` gate
 * until CI is green (route's `next` and `expired` self-edges), and fails the same way after
 * `guards.ci.maxWaitHours`.
 */

type Ctx = StepContext<Pick<WorkflowServices, 'github' | 'hub'>>;

/** How long a plan waits for approval before the run expires with a report. */
const APPROVAL_EXPIRY_MS = 3 * 24 * 3600_000;

/** Check the run has something to work on; warm the repository's config for the next steps. */
export async function intake(ctx: Ctx): Promise<NodeResult> {
  const services = ctx.services.github;
  const ev = eventOf(ctx.run);
  const repo = ev?.repo?.fullName ?? ctx.run.subject.repo;
  if (repo) {
    const client = services.github.forAgent(new AgentRegistry(services.config.central).identity('router'), {
      runId: ctx.run.id,
      node: ctx.node,
      sink: ctx.emit,
    });
    await services.config.forRepo(repo, client);
  }
  ctx.emit({
    type: 'intake.accepted',
    node: ctx.node,
    detail: {
      source: ev ? 'github' : ctx.run.trigger.source,
      ...(ev ? { event: ev.action ? `${ev.name}.${ev.action}` : ev.name, delivery: ev.delivery } : {}),
      ...(repo ? { repo } : {}),
      ...(ctx.run.subject.issue !== undefined ? { issue: ctx.run.subject.issue } : {}),
    },
  });
  return {};
}

export async function route(ctx: Ctx): Promise<NodeResult> {
  const services = ctx.services.github;
  const { decision, config } = await decide(services, ctx);
  // Red CI parks the run at a `ci` gate that resumes by itself (lib/agents/gates.ts).
  if (decision.outcome === 'blocked')
    return ciWait(ctx.run, decision, config.guards.ci.maxWaitHours, services.now?.() ?? new Date(), ctx.node);
  if (decision.outcome === 'forbidden') {
    const verdicts = [
      ...decision.guards
        .filter((g) => g.verdict === 'block')
        .map((g) => `${g.guard}: ${g.failing.join('; ')}`),
      ...decision.policies.filter((p) => p.verdict === 'forbid').map((p) => `${p.policy}: ${p.why}`),
    ];
    throw new RunBlockedError(decision.reason, { verdicts, runId: ctx.run.id, node: ctx.node });
  }
  if (decision.outcome === 'triage') {
    const t = await triage(services, ctx, decision.agents[0] ? { agent: decision.agents[0] } : {});
    return {
      output: {
        routing: decision,
        triage: {
          agent: t.agent,
          applied: t.applied,
          refused: t.refused,
          missing: t.missing.map((m) => m.name),
          comment: t.comment,
        },
      },
    };
  }
  return { output: { routing: decision } };
}

export async function plan(ctx: Ctx): Promise<NodeResult> {
  const services = ctx.services.github;
  const { plan: p } = await makePlan(services, ctx);
  // The agents an edited plan may name (Discord's Edit plan): the decision's, minus planners.
  const registry = new AgentRegistry(services.config.central);
  const planAgents = (decisionOf(ctx.run)?.agents ?? []).filter((a) => registry.get(a)?.type !== 'planner');
  // Every plan's estimated cost counts against the run's budget (budget.ts).
  const budget = withPlanCost(ctx.run.data.budget, p);
  return {
    output: {
      plan: p,
      planAgents: [...new Set([...planAgents, ...p.tasks.map((t) => t.agent)])],
      ...(budget ? { budget } : {}),
    },
  };
}

/** The approval gate binds to the plan's version: approving an older plan is refused by the engine. */
export async function approval(ctx: Ctx): Promise<NodeResult> {
  const p = ctx.run.data.plan as { version?: unknown; tasks?: unknown[] } | undefined;
  const binding = typeof p?.version === 'string' ? p.version : undefined;
  const tasks = Array.isArray(p?.tasks) ? p.tasks.length : 0;
  return {
    wait: {
      kind: 'approval',
      ...(binding ? { binding } : {}),
      expiresInMs: APPROVAL_EXPIRY_MS,
      prompt: `Approve plan ${binding ?? '(none)'} (${tasks} task${tasks === 1 ? '' : 's'}).`,
    },
  };
}

/** Hand the approved plan's tasks to agents, one at a time, through the hub (lib/agents/execute.ts). */
export function execute(ctx: Ctx): Promise<NodeResult> {
  return createExecuteNode(ctx.services.hub)(ctx);
}

/**
 * The status comment and the Discord message are kept current by the reporters after every
 * commit; the report node records the outcome of the work for the history.
 */
export async function report(ctx: Ctx): Promise<NodeResult> {
  const work = ctx.run.data.work as { tasks?: Array<{ status?: string }> } | undefined;
  const tasks = work?.tasks ?? [];
  const done = tasks.filter((t) => t.status === 'done').length;
  ctx.emit({
    type: 'report.summary',
    node: ctx.node,
    detail: { tasks: tasks.length, done, failed: tasks.filter((t) => t.status === 'failed').length },
  });
  return { output: { summary: { tasks: tasks.length, done } } };
}
