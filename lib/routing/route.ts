import type { NewEvent, Run } from '../engine/types.ts';
import type { GitHubClient } from '../github/client.ts';
import type { NormalizedEvent } from '../github/events.ts';
import { AgentRegistry } from './agents.ts';
import type { SwitchyardConfig } from './config.ts';
import { formatIssue } from './errors.ts';
import { type CiVerdict, ciVerdict, confirmCi, guardBranch, readCiRecord } from './guards.ts';
import { applyCiGuard, applyPolicies, decide, type RoutingDecision } from './rules.ts';
import type { GitHubServices, StepScope } from './services.ts';

/**
 * The worker's routing step: the authoritative decision, with everything the webhook request
 * could not afford: the repository's own config (fetched and cached), the files a PR touches,
 * and the CI guard's state confirmed through the API. Every part of the decision (config used,
 * rules evaluated, policy and guard verdicts, agents selected) becomes an event of the run.
 */

/** A confirmation this recent is trusted without asking GitHub again. */
const CONFIRM_FRESH_MS = 2 * 60_000;

export interface RouteResult {
  decision: RoutingDecision;
  /** The config in force for this repository (central + overlay). */
  config: SwitchyardConfig;
  event: NormalizedEvent;
  ci: CiVerdict;
}

const isEvent = (v: unknown): v is NormalizedEvent =>
  typeof v === 'object' &&
  v !== null &&
  typeof (v as NormalizedEvent).name === 'string' &&
  typeof (v as NormalizedEvent).delivery === 'string';

/** The normalised event a run was started from (`run.data.event`), if it came from a webhook. */
export function eventOf(run: Pick<Run, 'data'>): NormalizedEvent | undefined {
  const ev = run.data.event;
  return isEvent(ev) ? ev : undefined;
}

/** The routing decision recorded on the run: the route node's, else the ingress's provisional one. */
export function decisionOf(
  run: Pick<Run, 'data'>,
): (Pick<RoutingDecision, 'outcome' | 'agents' | 'reason'> & Partial<RoutingDecision>) | undefined {
  const d = (run.data.routing ?? run.data.ingress) as Partial<RoutingDecision> | undefined;
  if (!d || typeof d.outcome !== 'string') return undefined;
  return {
    ...d,
    outcome: d.outcome,
    agents: Array.isArray(d.agents) ? d.agents : [],
    reason: d.reason ?? '',
  };
}

/** Edge condition for the pipeline: continue to planning only when routing said `run`. */
export { routedToRun } from '../workflows/issue-pipeline.ts';

/**
 * A run started without a webhook (Discord `/plan`, the CLI) has no event: build one from its
 * subject, reading the issue through the API when possible, so policies and guards still apply.
 */
async function manualEvent(run: Readonly<Run>, client: GitHubClient): Promise<NormalizedEvent> {
  const repo = run.subject.repo;
  const [owner = '', name = ''] = (repo ?? '').split('/');
  const ev: NormalizedEvent = {
    name: `${run.trigger.source}`,
    delivery: run.id,
    ...(repo ? { repo: { fullName: repo, owner, name } } : {}),
    ...(run.trigger.actor ? { sender: { login: run.trigger.actor } } : {}),
  };
  if (repo && run.subject.issue !== undefined) {
    const issue = await client.getIssue(repo, run.subject.issue);
    ev.subject = {
      kind: issue?.pull_request ? 'pull_request' : 'issue',
      number: run.subject.issue,
      title: issue?.title ?? '',
      body: issue?.body ?? '',
      labels: (issue?.labels ?? []).flatMap((l) => (typeof l === 'string' ? [l] : l.name ? [l.name] : [])),
      ...(issue?.state ? { state: issue.state } : {}),
      ...(issue?.user?.login ? { author: issue.user.login } : {}),
    };
  }
  return ev;
}

function compact(d: RoutingDecision): Omit<RoutingDecision, 'rules'> {
  const { rules: _rules, ...rest } = d;
  return rest;
}

export async function route(services: GitHubServices, scope: StepScope): Promise<RouteResult> {
  const run = scope.run;
  const now = services.now?.() ?? new Date();
  const emit = (e: Omit<NewEvent, 'node'>) => scope.emit({ ...e, node: scope.node });
  const central = services.config.central;
  const client = services.github.forAgent(new AgentRegistry(central).identity('router'), {
    runId: run.id,
    node: scope.node,
    sink: scope.emit,
  });

  const fromWebhook = eventOf(run);
  const event = fromWebhook ?? (await manualEvent(run, client));
  const repo = event.repo?.fullName ?? run.subject.repo;

  // 1. Config: central + the repository's overlay (fetched when the cache is stale).
  const cfg = await services.config.forRepo(repo, client);
  const config = cfg.config;
  emit({
    type: 'routing.config',
    detail: { origin: cfg.origin, fetched: cfg.fetched, ...(cfg.file ? { file: cfg.file } : {}) },
  });
  if (cfg.error) {
    emit({
      type: 'config.invalid',
      detail: { file: cfg.error.file, issues: cfg.error.issues.map(formatIssue) },
    });
  }

  // 2. PR files, only when some rule looks at paths.
  let paths: string[] | undefined;
  const needsPaths =
    config.routing.rules.some((r) => r.paths) || config.routing.rules.some((r) => r.when?.includes('paths'));
  if (repo && event.subject?.kind === 'pull_request' && needsPaths) {
    paths = await client.listPullFiles(repo, event.subject.number);
  }

  // 3. CI state: the deliveries' record, confirmed through the API when red or unknown.
  let ci: CiVerdict = { state: 'unknown', failing: [] };
  let confirmed = false;
  if (repo && config.guards.ci.enabled) {
    const record = await readCiRecord(services.store, repo);
    ci = ciVerdict(record, config);
    const recent = record?.confirmedAt && now.getTime() - Date.parse(record.confirmedAt) < CONFIRM_FRESH_MS;
    if (config.guards.ci.confirm && ci.state !== 'green' && !recent && !client.dryRun) {
      const branch = guardBranch(
        config,
        event.repo?.defaultBranch ?? (await client.getRepository(repo))?.default_branch,
      );
      if (branch) {
        const fresh = await confirmCi(client, services.store, repo, branch, now);
        if (fresh) {
          ci = ciVerdict(fresh, config);
          confirmed = true;
        }
      }
    } else if (recent) {
      confirmed = true;
    }
  }

  // 4. Decide, then apply the guard.
  let decision: RoutingDecision;
  if (fromWebhook) {
    decision = decide(config, event, { phase: 'worker', ci, ...(paths ? { paths } : {}) });
    if ((decision.outcome === 'run' || decision.outcome === 'triage') && decision.workflow !== run.workflow) {
      decision = {
        ...decision,
        outcome: 'ignore',
        reason: `${decision.reason}, but it selects ${decision.workflow}, not ${run.workflow}`,
      };
    }
  } else {
    // Started on purpose by a person: no rule needed, but every policy still applies. `decide`
    // alone would stop at "no rule matched" before reading a policy, so the policies are applied
    // to the requested workflow and agents here.
    const facts = { phase: 'worker' as const, ci, ...(paths ? { paths } : {}) };
    const probe = decide(config, event, facts);
    const requested = Array.isArray(run.data.agents)
      ? (run.data.agents as unknown[]).filter((a): a is string => typeof a === 'string')
      : [];
    decision = applyPolicies(config, event, facts, {
      ...probe,
      outcome: 'run',
      workflow: run.workflow,
      agents: requested.length > 0 ? requested : config.routing.defaultAgents,
      requireApproval: false,
      deferred: [],
      policies: [],
      reason: `started from ${run.trigger.source} by ${run.trigger.actor ?? 'someone'}`,
    });
  }
  decision = applyCiGuard(config, decision, ci, confirmed);

  // 5. Audit.
  for (const g of decision.guards) emit({ type: 'guard.verdict', detail: { ...g } });
  for (const p of decision.policies)
    if (p.verdict !== 'pass') emit({ type: 'policy.verdict', detail: { ...p } });
  emit({
    type: 'routing.decided',
    detail: {
      outcome: decision.outcome,
      reason: decision.reason,
      ...(decision.rule ? { rule: decision.rule } : {}),
      ...(decision.workflow ? { workflow: decision.workflow } : {}),
      agents: decision.agents,
      priority: decision.priority,
      requireApproval: decision.requireApproval,
      ...(decision.prRouting ? { prRouting: decision.prRouting } : {}),
      rules: decision.rules.map((r) => `${r.rule}: ${r.result} (${r.why})`),
    },
  });
  return { decision: { ...compact(decision), rules: [] }, config, event, ci };
}
