import picomatch from 'picomatch';
import type { ConcurrencyPolicy } from '../engine/ports.ts';
import { eventKey, type NormalizedEvent } from '../github/events.ts';
import { evaluateCondition, variablesOf } from './cel.ts';
import { effectiveRules, type PolicyConfig, type RuleConfig, type SwitchyardConfig } from './config.ts';
import type { CiState, CiVerdict } from './guards.ts';

/**
 * Routing rules: which workflow and agents an event starts. One pure function, `decide`, used
 * twice: at ingress (webhook request; no I/O beyond cached config, so path and CI criteria are
 * deferred) and in the worker's route node (with PR files and the confirmed CI state), whose
 * decision is authoritative and is recorded in the run's history.
 *
 * CEL variables in `when`: event, action, label (just added), labels, sender, senderType, repo,
 * issue {number,title,body,author,authorAssociation,kind,state}, pr {headRef,baseRef,draft},
 * and in the worker only: ci ('green' | 'red' | 'unknown') and paths (files a PR touches).
 */

export type Phase = 'ingress' | 'worker';

export interface RoutingFacts {
  phase: Phase;
  ci?: CiVerdict;
  /** Files the PR touches (worker), or the files of a push. */
  paths?: string[];
}

export interface RuleEvaluation {
  rule: string;
  result: 'match' | 'no' | 'deferred';
  why: string;
}

export interface PolicyVerdict {
  policy: string;
  verdict: 'forbid' | 'require-approval' | 'pass' | 'deferred';
  why: string;
}

export interface GuardVerdict {
  guard: 'ci';
  verdict: 'pass' | 'block';
  state: CiState;
  branch?: string;
  failing: string[];
  confirmed: boolean;
}

export type RoutingOutcome = 'run' | 'triage' | 'ignore' | 'forbidden' | 'blocked';

export interface RoutingDecision {
  outcome: RoutingOutcome;
  phase: Phase;
  /** `issues.labeled` */
  event: string;
  rule?: string;
  workflow?: string;
  agents: string[];
  priority: number;
  concurrency: ConcurrencyPolicy;
  requireApproval: boolean;
  /** Criteria the ingress left to the worker (paths, ci, a condition reading them). */
  deferred: string[];
  /** One line saying why, for the status comment and the 202 body. */
  reason: string;
  rules: RuleEvaluation[];
  policies: PolicyVerdict[];
  guards: GuardVerdict[];
  /** For PR subjects: whether the per-PR routing label is on. */
  prRouting?: 'on' | 'off';
}

/** Only-in-the-worker variables: a condition reading them is deferred at ingress. */
const WORKER_VARIABLES = ['ci', 'paths'];

const globCache = new Map<string, picomatch.Matcher>();
function glob(pattern: string, opts: picomatch.PicomatchOptions = {}): picomatch.Matcher {
  const key = `${pattern}\u0000${JSON.stringify(opts)}`;
  let m = globCache.get(key);
  if (!m) {
    m = picomatch(pattern, opts);
    globCache.set(key, m);
  }
  return m;
}
/** Paths: full picomatch globs (dotfiles included). */
export const matchPath = (pattern: string, path: string) => glob(pattern, { dot: true })(path);
/** Names (repos, logins): `*` wildcards; brackets are literal so `*[bot]` means bots. */
export const matchName = (pattern: string, name: string) =>
  glob(pattern, { nobracket: true, nocase: true, dot: true })(name);

export function labelsOf(event: NormalizedEvent): string[] {
  return event.subject?.labels ?? [];
}

/** The variables a `when` condition sees. */
export function celContext(event: NormalizedEvent, facts: RoutingFacts): Record<string, unknown> {
  const s = event.subject;
  const ctx: Record<string, unknown> = {
    event: event.name,
    action: event.action ?? '',
    label: event.label ?? '',
    labels: labelsOf(event),
    sender: event.sender?.login ?? '',
    senderType: event.sender?.type ?? '',
    repo: event.repo?.fullName ?? '',
    issue: {
      number: s?.number ?? 0,
      title: s?.title ?? '',
      body: s?.body ?? '',
      author: s?.author ?? '',
      authorAssociation: s?.authorAssociation ?? '',
      kind: s?.kind ?? '',
      state: s?.state ?? '',
    },
    pr: {
      headRef: event.pr?.headRef ?? '',
      baseRef: event.pr?.baseRef ?? '',
      draft: event.pr?.draft ?? false,
    },
  };
  if (facts.phase === 'worker') {
    ctx.ci = facts.ci?.state ?? 'unknown';
    ctx.paths = facts.paths ?? [];
  } else if (event.push) {
    ctx.paths = event.push.files;
  }
  return ctx;
}

function pathsFor(event: NormalizedEvent, facts: RoutingFacts): string[] | undefined {
  if (event.push) return event.push.files;
  return facts.phase === 'worker' ? (facts.paths ?? []) : undefined;
}

/** Whether a condition can be evaluated now (ingress lacks `ci` and `paths`, except a push's files). */
function conditionReady(expr: string, event: NormalizedEvent, facts: RoutingFacts): boolean {
  if (facts.phase === 'worker') return true;
  const vars = variablesOf(expr);
  return !WORKER_VARIABLES.some((v) => vars.has(v) && !(v === 'paths' && event.push));
}

export function evaluateRule(rule: RuleConfig, event: NormalizedEvent, facts: RoutingFacts): RuleEvaluation {
  const no = (why: string): RuleEvaluation => ({ rule: rule.name, result: 'no', why });
  if (!rule.enabled) return no('disabled');
  if (!rule.event.includes(event.name)) return no(`event ${event.name} is not ${rule.event.join('|')}`);
  if (rule.action && !rule.action.includes(event.action ?? '')) {
    return no(`action ${event.action ?? '(none)'} is not ${rule.action.join('|')}`);
  }
  if (rule.label && !(event.label !== undefined && rule.label.includes(event.label))) {
    return no(`label ${event.label ?? '(none)'} is not ${rule.label.join('|')}`);
  }
  const labels = labelsOf(event);
  if (rule.labels?.all && !rule.labels.all.every((l) => labels.includes(l)))
    return no(`needs all labels ${rule.labels.all.join(', ')}`);
  if (rule.labels?.any && !rule.labels.any.some((l) => labels.includes(l)))
    return no(`needs one of labels ${rule.labels.any.join(', ')}`);
  if (rule.labels?.none?.some((l) => labels.includes(l)))
    return no(`has an excluded label (${rule.labels.none.join(', ')})`);
  const repo = event.repo?.fullName ?? '';
  if (rule.repos && !rule.repos.some((g) => matchName(g, repo)))
    return no(`repo ${repo || '(none)'} not in ${rule.repos.join(', ')}`);
  const sender = event.sender?.login ?? '';
  if (rule.senders?.include && !rule.senders.include.some((g) => matchName(g, sender)))
    return no(`sender ${sender} not included`);
  if (rule.senders?.exclude?.some((g) => matchName(g, sender))) return no(`sender ${sender} excluded`);

  const deferred: string[] = [];
  if (rule.ci !== 'any') {
    if (facts.phase === 'ingress') deferred.push(`ci=${rule.ci}`);
    else if ((facts.ci?.state ?? 'unknown') !== rule.ci)
      return no(`CI is ${facts.ci?.state ?? 'unknown'}, rule needs ${rule.ci}`);
  }
  if (rule.paths) {
    const paths = pathsFor(event, facts);
    if (event.subject?.kind !== 'pull_request' && !event.push)
      return no('path rules apply to pull requests and pushes');
    if (paths === undefined) deferred.push('paths');
    else if (!paths.some((p) => rule.paths!.some((g) => matchPath(g, p))))
      return no(`no touched path matches ${rule.paths.join(', ')}`);
  }
  if (rule.when) {
    if (!conditionReady(rule.when, event, facts)) deferred.push('when');
    else {
      try {
        if (!evaluateCondition(rule.when, celContext(event, facts)))
          return no(`condition false: ${rule.when}`);
      } catch (err) {
        // A condition that cannot be decided does not match (and says why in the audit trail).
        return no(`condition error: ${(err as Error).message}`);
      }
    }
  }
  if (deferred.length > 0)
    return { rule: rule.name, result: 'deferred', why: `left to the worker: ${deferred.join(', ')}` };
  return { rule: rule.name, result: 'match', why: 'all criteria hold' };
}

export function evaluatePolicy(
  policy: PolicyConfig,
  event: NormalizedEvent,
  facts: RoutingFacts,
  target: { workflow?: string; agents: string[] },
): PolicyVerdict {
  const pass = (why: string): PolicyVerdict => ({ policy: policy.name, verdict: 'pass', why });
  const forbid = (why: string): PolicyVerdict => ({ policy: policy.name, verdict: 'forbid', why });
  const repo = event.repo?.fullName ?? '';
  if (policy.repos && !policy.repos.some((g) => matchName(g, repo))) return pass('repo out of scope');
  if (policy.workflows && !(target.workflow && policy.workflows.includes(target.workflow)))
    return pass('workflow out of scope');
  if (policy.when) {
    if (!conditionReady(policy.when, event, facts))
      return { policy: policy.name, verdict: 'deferred', why: 'condition needs worker facts' };
    try {
      if (!evaluateCondition(policy.when, celContext(event, facts))) return pass('condition false');
    } catch (err) {
      // Fail closed: a policy we cannot evaluate forbids rather than silently allowing.
      return forbid(`condition error: ${(err as Error).message}`);
    }
  }
  const labels = labelsOf(event);
  const f = policy.forbid;
  if (f) {
    if (f.always) return forbid('automation is forbidden here');
    const hit = f.labels?.find((l) => labels.includes(l));
    if (hit) return forbid(`label ${hit} forbids automation`);
    const sender = event.sender?.login ?? '';
    if (f.senders?.some((g) => matchName(g, sender)))
      return forbid(`sender ${sender} may not trigger automation`);
    const key = eventKey(event);
    if (f.events?.some((e) => e === key || e === event.name))
      return forbid(`event ${key} may not trigger automation`);
    const agent = f.agents?.find((a) => target.agents.includes(a));
    if (agent) return forbid(`agent ${agent} is forbidden here`);
  }
  const r = policy.require;
  if (r) {
    const missing = r.labels?.filter((l) => !labels.includes(l)) ?? [];
    if (missing.length > 0) return forbid(`requires label ${missing.join(', ')}`);
    const assoc = event.subject?.authorAssociation;
    if (r.authorAssociation && !(assoc && r.authorAssociation.includes(assoc))) {
      return forbid(`author association ${assoc ?? 'unknown'} is not ${r.authorAssociation.join('|')}`);
    }
    if (r.approval) return { policy: policy.name, verdict: 'require-approval', why: 'approval required' };
  }
  return pass('no restriction applies');
}

export function prRoutingState(config: SwitchyardConfig, labels: readonly string[]): 'on' | 'off' {
  return labels.includes(config.routing.prRouteLabel) ? 'on' : 'off';
}

/** Decide what an event starts. Pure: every input is an argument. */
export function decide(
  config: SwitchyardConfig,
  event: NormalizedEvent,
  facts: RoutingFacts,
): RoutingDecision {
  const base: RoutingDecision = {
    outcome: 'ignore',
    phase: facts.phase,
    event: eventKey(event),
    agents: [],
    priority: 0,
    concurrency: config.routing.concurrency,
    requireApproval: false,
    deferred: [],
    reason: '',
    rules: [],
    policies: [],
    guards: [],
  };
  const isPr = event.subject?.kind === 'pull_request';
  if (isPr) base.prRouting = prRoutingState(config, labelsOf(event));
  if (!config.routing.enabled) return { ...base, reason: 'routing is disabled' };
  if (isPr && config.routing.prRequiresLabel && base.prRouting === 'off') {
    return { ...base, reason: `routing is off for this PR (no ${config.routing.prRouteLabel} label)` };
  }

  const rules = [...effectiveRules(config)].sort((a, b) => b.priority - a.priority);
  const evaluations: RuleEvaluation[] = [];
  let chosen: { rule: RuleConfig; evaluation: RuleEvaluation } | undefined;
  for (const rule of rules) {
    const evaluation = evaluateRule(rule, event, facts);
    evaluations.push(evaluation);
    if (!chosen && evaluation.result !== 'no') chosen = { rule, evaluation };
  }
  base.rules = evaluations;

  let decision: RoutingDecision;
  if (chosen) {
    decision = {
      ...base,
      outcome: 'run',
      rule: chosen.rule.name,
      workflow: chosen.rule.workflow ?? config.routing.defaultWorkflow,
      agents: chosen.rule.agents,
      priority: chosen.rule.priority,
      concurrency: chosen.rule.concurrency ?? config.routing.concurrency,
      deferred: chosen.evaluation.result === 'deferred' ? [chosen.evaluation.why] : [],
      reason: `rule ${chosen.rule.name} matched ${base.event}`,
    };
  } else {
    const u = config.routing.unmatched;
    const key = eventKey(event);
    if (u && event.subject && (u.events.includes(key) || u.events.includes(event.name))) {
      decision = {
        ...base,
        outcome: 'triage',
        workflow: u.workflow ?? config.routing.defaultWorkflow,
        agents: [u.agent],
        reason: `no rule matched ${key}: sent to the ${u.agent} agent`,
      };
    } else {
      return { ...base, reason: `no rule matched ${key}` };
    }
  }

  return applyPolicies(config, event, facts, decision);
}

/**
 * Every central (and overlay) policy over a decision that would start work: the first `forbid`
 * ends it as `forbidden` with that policy named as the reason; `require.approval` sets
 * `requireApproval`. Used by `decide` and by the worker for runs a person started (Discord,
 * the CLI), which no rule selects, so that no trigger source skips a policy.
 */
export function applyPolicies(
  config: SwitchyardConfig,
  event: NormalizedEvent,
  facts: RoutingFacts,
  decision: RoutingDecision,
): RoutingDecision {
  const policies = config.policies.map((p) =>
    evaluatePolicy(p, event, facts, {
      ...(decision.workflow ? { workflow: decision.workflow } : {}),
      agents: decision.agents,
    }),
  );
  const next: RoutingDecision = { ...decision, policies };
  const forbidden = policies.find((p) => p.verdict === 'forbid');
  if (forbidden)
    return { ...next, outcome: 'forbidden', reason: `policy ${forbidden.policy}: ${forbidden.why}` };
  if (policies.some((p) => p.verdict === 'require-approval')) next.requireApproval = true;
  const deferredPolicies = policies.filter((p) => p.verdict === 'deferred').map((p) => `policy ${p.policy}`);
  if (deferredPolicies.length > 0) next.deferred = [...next.deferred, ...deferredPolicies];
  return next;
}

/** The CI guard's verdict for a decision (worker). Triage still runs on red CI: it only labels and asks. */
export function applyCiGuard(
  config: SwitchyardConfig,
  decision: RoutingDecision,
  verdict: CiVerdict,
  confirmed: boolean,
): RoutingDecision {
  if (!config.guards.ci.enabled || decision.outcome !== 'run') return decision;
  const failing = verdict.failing.map((f) => `${f.name} (${f.conclusion}${f.url ? `, ${f.url}` : ''})`);
  const g: GuardVerdict = {
    guard: 'ci',
    verdict: verdict.state === 'red' ? 'block' : 'pass',
    state: verdict.state,
    ...(verdict.branch ? { branch: verdict.branch } : {}),
    failing,
    confirmed,
  };
  const next = { ...decision, guards: [...decision.guards, g] };
  if (g.verdict === 'pass') return next;
  return {
    ...next,
    outcome: 'blocked',
    reason: `CI guard: ${verdict.branch ?? 'the default branch'} is red (${failing.join('; ') || 'failing'})`,
  };
}
