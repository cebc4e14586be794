import type { EventType } from '../engine/events.ts';
import { nodeProgress } from '../engine/progress.ts';
import type { Run, RunEvent, RunStatus } from '../engine/types.ts';
import type { Workflow } from '../engine/workflow.ts';
import { codeSpan, escapeGitHub, escapeGitHubInline } from '../github/escape.ts';
import { decisionOf } from '../routing/route.ts';
import type { GuardVerdict, PolicyVerdict } from '../routing/rules.ts';
import { budgetLine } from './budget.ts';
import { renderMermaid } from './mermaid.ts';
import { plannerLine } from './plan-usage.ts';
import type { Plan } from './planner.ts';

/**
 * The body of a run's one status comment: where the run is, the plan, a Mermaid graph with the
 * current node highlighted, why it stopped (if it did), and a link to the Discord message. A
 * hidden marker identifies the comment, so it can be found again after a crash.
 */

export const runMarker = (runId: string) => `<!-- switchyard:run:${runId} -->`;

const STATUS: Record<RunStatus, string> = {
  queued: '⏳ queued',
  running: '🔄 running',
  waiting: '⏸️ waiting',
  succeeded: '✅ succeeded',
  failed: '❌ failed',
  cancelled: '🚫 cancelled',
  expired: '⌛ expired',
};

/** Per-task progress an executor may record in run data (`data.taskStatus[taskId]`). */
type TaskStatus = 'pending' | 'running' | 'done' | 'failed' | 'skipped';

/**
 * Whether the run deserves a comment on its issue: only once routing has chosen to run (or a
 * guard blocked a matched rule). Runs that routing ignores, forbids or hands to triage stay
 * silent, so probing a repository's config never leaves noise on an issue.
 */
export function shouldReport(run: Run): boolean {
  if (!run.subject.repo || run.subject.issue === undefined) return false;
  const routed = run.data.routing as { outcome?: string } | undefined;
  if (routed) return routed.outcome === 'run' || routed.outcome === 'blocked';
  const d = decisionOf(run);
  // Before the route node: a matched rule is worth showing; a probe for repo config is not.
  return d?.outcome === 'run' && typeof d.rule === 'string';
}

function isPlan(v: unknown): v is Plan {
  return (
    typeof v === 'object' &&
    v !== null &&
    Array.isArray((v as Plan).tasks) &&
    typeof (v as Plan).version === 'string'
  );
}

function title(workflow: Workflow<unknown> | undefined, node: string | null): string {
  if (!node) return '';
  return workflow?.nodes.get(node)?.title ?? node;
}

const DECISION_WORDS: Partial<Record<EventType, string>> = {
  'signal.approve': 'approved',
  'signal.reject': 'rejected',
  'signal.cancel': 'cancelled',
  'signal.retry': 'retried',
  'plan.edited': 'edited the plan',
};

/** `/hold` and `/unhold` send no signal of their own: their done command events are the record. */
const HOLD_WORDS: Record<string, string> = { hold: 'held the run', unhold: 'lifted the hold' };

/** Who did what to the run (people's decisions, from Discord, GitHub comments or the CLI), newest last. */
function decisionLines(events: readonly RunEvent[]): string[] {
  const lines: string[] = [];
  for (const e of events) {
    const words = DECISION_WORDS[e.type];
    if (words && e.by) lines.push(`- ${e.at.slice(0, 16).replace('T', ' ')} UTC: ${e.by} ${words}`);
    else if (
      e.type === 'github.command' &&
      e.detail.outcome === 'done' &&
      e.by &&
      HOLD_WORDS[String(e.detail.command)]
    )
      lines.push(
        `- ${e.at.slice(0, 16).replace('T', ' ')} UTC: ${e.by} ${HOLD_WORDS[String(e.detail.command)]}`,
      );
    else if (e.type === 'github.command' && e.detail.outcome === 'refused' && e.by)
      lines.push(
        `- ${e.at.slice(0, 16).replace('T', ' ')} UTC: /${String(e.detail.command)} by ${e.by} refused`,
      );
  }
  return lines.slice(-10);
}

/**
 * What of the issue changed after its plan was approved: the newest `issue.edited` event noted
 * after approval (lib/agents/replan.ts), which is in the history even when the edit came while a
 * step held the run and could not be written to its data; else the run data an older note wrote.
 */
function editedAfterApproval(run: Run, events: readonly RunEvent[]): string[] | undefined {
  const known = (v: unknown): string[] =>
    Array.isArray(v) ? v.filter((c): c is string => c === 'title' || c === 'body') : [];
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    if (e.type === 'issue.edited' && e.detail.afterApproval === true) return known(e.detail.changed);
  }
  const noted = run.data.editedAfterApproval as { changed?: unknown } | undefined;
  return noted ? known(noted.changed) : undefined;
}

export function renderStatusComment(
  run: Run,
  events: readonly RunEvent[],
  workflow: Workflow<unknown> | undefined,
): string {
  const out: string[] = [runMarker(run.id)];
  const at = run.node ? ` at **${title(workflow, run.node)}**` : '';
  out.push(`### Switchyard run \`${run.id}\` · ${STATUS[run.status]}${at}`);
  const trigger = [`workflow \`${run.workflow}\``];
  const ev = typeof run.trigger.event === 'string' ? run.trigger.event : run.trigger.source;
  trigger.push(`started by ${run.trigger.actor ? `@${run.trigger.actor}` : run.trigger.source} (${ev})`);
  const discord = run.data.discordMessageUrl;
  if (typeof discord === 'string' && /^https:\/\//.test(discord)) trigger.push(`[Discord](${discord})`);
  out.push(trigger.join(' · '));

  if (run.status === 'waiting' && run.gate) {
    const g = run.gate;
    const what =
      g.kind === 'approval'
        ? `approval${g.binding ? ` of plan \`${g.binding}\`` : ''}`
        : g.kind === 'agent'
          ? 'an agent result'
          : g.kind === 'ci'
            ? 'green CI'
            : g.kind === 'hold'
              ? '`/unhold`'
              : g.kind === 'budget'
                ? 'a budget decision'
                : 'a person';
    out.push(
      '',
      `> Waiting for ${what} until ${g.expiresAt}.${g.prompt ? ` ${escapeGitHubInline(g.prompt)}` : ''}`,
    );
    if (g.kind === 'budget') {
      out.push(
        `> Raise the cap with \`npm run runs -- approve ${run.id} --budget <usd>\` (or Approve in Discord); reject to stop the run.`,
      );
    }
    if (g.kind === 'approval') {
      out.push(`> Approve with \`/approve ${run.id}\` in Discord or \`npm run runs -- approve ${run.id}\`.`);
    }
  }
  if (run.reason && run.status !== 'running' && run.status !== 'waiting')
    out.push('', `> ${escapeGitHubInline(run.reason)}`);
  const spend = budgetLine(run.data.budget);
  if (spend) out.push('', `Spend: ${spend}`);

  const plan = run.data.plan;
  if (isPlan(plan)) {
    const progress = (run.data.taskStatus ?? {}) as Record<string, TaskStatus>;
    const prs = (run.data.taskPrs ?? {}) as Record<string, { number: number; url: string; checks: string }>;
    out.push('', `#### Plan \`${plan.version}\``);
    const who = plannerLine(plan);
    if (who) out.push(`_Planned by ${who}_`, '');
    const changed = editedAfterApproval(run, events);
    if (changed) {
      const what = changed.length > 0 ? changed.join(' and ') : 'text';
      // With the approval gate switched off by config nobody approved it: the work follows it all the same.
      out.push(
        run.data.approval
          ? `> ⚠️ The issue's ${what} changed after this plan was approved; the work under way follows the approved plan.`
          : `> ⚠️ The issue's ${what} changed after this plan was made; the work under way follows it (no approval gate).`,
        '',
      );
    }
    const edited = (plan as { edited?: { by?: unknown; from?: unknown } }).edited;
    if (edited && typeof edited.by === 'string') {
      out.push(
        `_Edited by ${escapeGitHubInline(edited.by)}${typeof edited.from === 'string' ? ` (was ${codeSpan(edited.from)})` : ''}._`,
        '',
      );
    }
    if (plan.summary) out.push(escapeGitHub(plan.summary), '');
    for (const t of plan.tasks) {
      const st = progress[t.id];
      const box = t.done || st === 'done' ? 'x' : ' ';
      const files = t.files.length > 0 ? ` · ${t.files.map(codeSpan).join(', ')}` : '';
      const tag = st && st !== 'done' && st !== 'pending' ? ` _(${st})_` : '';
      const pr = prs[t.id];
      const prText =
        pr && /^https:\/\//.test(pr.url) ? ` · [PR #${pr.number}](${pr.url}) checks: **${pr.checks}**` : '';
      out.push(`- [${box}] ${escapeGitHubInline(t.title)} → \`${t.agent}\`${files}${tag}${prText}`);
    }
    const fixes = plan.adjustments ?? [];
    if (fixes.length > 0) {
      // The details quote the model's answer: keep mentions and HTML inert.
      const inert = (s: string) => s.replace(/@/g, '@\u200b').replace(/</g, '&lt;');
      out.push(
        '',
        `<details><summary>Planner corrections (${fixes.length})</summary>`,
        '',
        ...fixes.map((f) => `- ${inert(f.detail)}`),
        '',
        '</details>',
      );
    }
  }

  const decisions = decisionLines(events);
  if (decisions.length > 0) out.push('', '#### Decisions', ...decisions);

  if (workflow) {
    out.push('', '```mermaid', renderMermaid(workflow, nodeProgress(run, events)), '```');
  }

  const d = decisionOf(run);
  if (d) {
    const lines: string[] = [];
    lines.push(`- ${escapeGitHubInline(d.reason || d.outcome)}`);
    if (d.agents.length > 0) lines.push(`- agents: ${d.agents.map((a) => `\`${a}\``).join(', ')}`);
    for (const g of (d.guards ?? []) as GuardVerdict[]) {
      lines.push(
        `- ${g.guard} guard: **${g.verdict}** (CI ${g.state}${g.branch ? ` on ${g.branch}` : ''}${g.confirmed ? ', confirmed' : ''})`,
      );
    }
    for (const p of (d.policies ?? []) as PolicyVerdict[])
      if (p.verdict !== 'pass') lines.push(`- policy \`${p.policy}\`: ${escapeGitHubInline(p.why)}`);
    if (d.prRouting) lines.push(`- PR routing: **${d.prRouting}**`);
    if (d.requireApproval) lines.push('- approval required by policy');
    out.push('', '<details><summary>Routing</summary>', '', ...lines, '', '</details>');
  }
  return out.join('\n');
}
