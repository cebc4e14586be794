import { linearTest } from '../common/re2.ts';
import { type GitHubClient, type GitHubClientFactory, isOwnComment } from '../github/client.ts';
import { PermissionDeniedError } from '../github/errors.ts';
import { escapeGitHubInline } from '../github/escape.ts';
import type { NormalizedEvent } from '../github/events.ts';
import { AgentRegistry } from '../routing/agents.ts';
import { evaluateCondition } from '../routing/cel.ts';
import type { TriageConfig } from '../routing/config.ts';
import { decisionOf, eventOf } from '../routing/route.ts';
import { celContext } from '../routing/rules.ts';
import { effectIn, type GitHubServices, type StepScope } from '../routing/services.ts';
import { NoSubjectError } from './errors.ts';

/**
 * The triage agent (the hub's safe default handler): labels an issue by the rules in
 * `triage.labels`, and asks for missing information (`triage.required`, `triage.minBodyChars`)
 * in ONE comment that it edits on later passes instead of adding another. Every GitHub write goes
 * through the triage agent's permission-checked client: without `apply_labels` the labels are
 * refused (and the refusal is recorded), and triage carries on with what it may do.
 */

export const TRIAGE_MARKER = '<!-- switchyard:triage -->';

export interface TriageAssessment {
  /** Labels the rules call for that the issue does not have yet. */
  labels: string[];
  missing: Array<{ name: string; ask: string }>;
}

export interface TriageResult extends TriageAssessment {
  agent: string;
  applied: string[];
  refused: string[];
  comment: 'created' | 'updated' | 'unchanged' | 'none' | 'refused' | 'dry-run';
}

function words(text: string): string {
  return ` ${text.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, ' ')} `;
}

/** Pure: what triage would do for this event. */
export function assessIssue(config: TriageConfig, event: NormalizedEvent): TriageAssessment {
  const subject = event.subject;
  const present = new Set(subject?.labels ?? []);
  const text = words(`${subject?.title ?? ''}\n${subject?.body ?? ''}`);
  const ctx = celContext(event, { phase: 'worker' });
  const cond = (expr: string | undefined) => {
    if (!expr) return true;
    try {
      return evaluateCondition(expr, ctx);
    } catch {
      return false;
    }
  };
  const labels: string[] = [];
  for (const rule of config.labels) {
    // A keyword matches at the start of a word, so `crash` also finds `crashes`.
    const byWords = rule.keywords?.some((k) => text.includes(` ${words(k).trim()}`)) ?? false;
    const byCondition = rule.when !== undefined && cond(rule.when);
    if ((byWords || byCondition) && !present.has(rule.label) && !labels.includes(rule.label))
      labels.push(rule.label);
  }
  // Requirements may depend on the labels triage is about to apply (e.g. only bugs need repro steps).
  const withNew: NormalizedEvent = subject
    ? { ...event, subject: { ...subject, labels: [...present, ...labels] } }
    : event;
  const ctxAfter = celContext(withNew, { phase: 'worker' });
  const body = subject?.body ?? '';
  const missing: TriageAssessment['missing'] = [];
  if (config.minBodyChars > 0 && body.trim().length < config.minBodyChars) {
    missing.push({
      name: 'description',
      ask: `The description is shorter than ${config.minBodyChars} characters.`,
    });
  }
  for (const r of config.required) {
    let applies = true;
    if (r.when) {
      try {
        applies = evaluateCondition(r.when, ctxAfter);
      } catch {
        applies = false;
      }
    }
    if (applies && !linearTest(r.pattern, body, 'i')) missing.push({ name: r.name, ask: r.ask });
  }
  return { labels, missing };
}

/**
 * The ask comment. Its texts come from configuration, which a repository's own
 * `.github/switchyard.yml` may set: they are escaped like any untrusted text (issue #9, defect 11),
 * so no mention, link, HTML or forged marker reaches the issue.
 */
export function renderAsk(config: TriageConfig, missing: TriageAssessment['missing']): string {
  return [
    TRIAGE_MARKER,
    `**${escapeGitHubInline(config.askHeading)}**`,
    '',
    ...missing.map((m) => `- **${escapeGitHubInline(m.name)}**: ${escapeGitHubInline(m.ask)}`),
  ].join('\n');
}

/** Our own marked comment: a marker in someone else's comment is not ours (issue #9, defect 10). */
async function findMarked(
  factory: GitHubClientFactory,
  client: GitHubClient,
  repo: string,
  issue: number,
  marker: string,
) {
  const comments = await client.listIssueComments(repo, issue);
  if (!comments?.length) return undefined;
  const self = await factory.selfLogin();
  return comments.find((c) => isOwnComment(c, marker, self));
}

export async function triage(
  services: GitHubServices,
  scope: StepScope,
  opts: { agent?: string } = {},
): Promise<TriageResult> {
  const run = scope.run;
  const repo = run.subject.repo;
  const number = run.subject.issue;
  if (!repo || number === undefined)
    throw new NoSubjectError(`run ${run.id} has no issue to triage`, { runId: run.id });
  const config = (await services.config.cached(repo)).config;
  const registry = new AgentRegistry(config);
  const agentName =
    opts.agent ??
    decisionOf(run)?.agents.find((a) => registry.get(a)?.type === 'triage') ??
    config.routing.unmatched?.agent ??
    registry.byType('triage')[0]?.name;
  if (!agentName) throw new NoSubjectError('no triage agent is configured', { runId: run.id });
  const client = services.github.forAgent(registry.identity(agentName), {
    runId: run.id,
    node: scope.node,
    sink: scope.emit,
  });

  let event = eventOf(run);
  if (!event?.subject) {
    const issue = await client.getIssue(repo, number);
    event = {
      name: 'manual',
      delivery: run.id,
      subject: {
        kind: issue?.pull_request ? 'pull_request' : 'issue',
        number,
        title: issue?.title ?? '',
        body: issue?.body ?? '',
        labels: (issue?.labels ?? []).flatMap((l) => (typeof l === 'string' ? [l] : l.name ? [l.name] : [])),
      },
    };
  }
  const assessment = assessIssue(config.triage, event);
  const result: TriageResult = { ...assessment, agent: agentName, applied: [], refused: [], comment: 'none' };

  const labelsToAdd = [...assessment.labels];
  const needsInfo = config.triage.needsInfoLabel;
  const hasNeedsInfo = needsInfo !== undefined && (event.subject?.labels ?? []).includes(needsInfo);
  if (needsInfo && assessment.missing.length > 0 && !hasNeedsInfo) labelsToAdd.push(needsInfo);
  try {
    if (labelsToAdd.length > 0) {
      await effectIn(scope, 'triage.labels', () =>
        client.addLabels(repo, number, labelsToAdd).then(() => labelsToAdd),
      );
      result.applied = labelsToAdd;
    }
    if (needsInfo && hasNeedsInfo && assessment.missing.length === 0) {
      await effectIn(scope, 'triage.unlabel', () =>
        client.removeLabel(repo, number, needsInfo).then(() => true),
      );
    }
  } catch (err) {
    // The client already recorded the refusal as a run event; triage goes on with what it may do.
    if (!(err instanceof PermissionDeniedError)) throw err;
    result.refused.push(...labelsToAdd.filter((l) => !result.applied.includes(l)));
  }

  if (assessment.missing.length > 0) {
    const body = renderAsk(config.triage, assessment.missing);
    try {
      result.comment = await effectIn(scope, 'triage.comment', async () => {
        if (client.dryRun) {
          await client.createComment(repo, number, body);
          return 'dry-run' as const;
        }
        const existing = await findMarked(services.github, client, repo, number, TRIAGE_MARKER);
        if (existing?.body === body) return 'unchanged' as const;
        if (existing) {
          await client.updateComment(repo, existing.id, body);
          return 'updated' as const;
        }
        await client.createComment(repo, number, body);
        return 'created' as const;
      });
    } catch (err) {
      if (!(err instanceof PermissionDeniedError)) throw err;
      result.comment = 'refused';
    }
  }
  scope.emit({
    type: 'triage.done',
    node: scope.node,
    by: agentName,
    detail: {
      labels: assessment.labels,
      applied: result.applied,
      refused: result.refused,
      missing: assessment.missing.map((m) => m.name),
      comment: result.comment,
    },
  });
  return result;
}
