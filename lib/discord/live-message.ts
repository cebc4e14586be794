import type {
  APIActionRowComponent,
  APIButtonComponent,
  APIEmbedField,
  RESTPostAPIChannelMessageJSONBody,
} from 'discord-api-types/v10';
import { budgetLine } from '../agents/budget.ts';
import type { Run, RunEvent } from '../engine/types.ts';
import { gateNeedsPerson } from './channels.ts';
import { Limits } from './protocol.ts';
import {
  type MessageBody,
  renderRunMessage,
  runButtons,
  subjectLabel,
  truncate,
  type WorkflowView,
} from './render.ts';

/**
 * The live message of a run in its repository's channel (and of runs started from Discord): the
 * run message of render.ts plus the plan with its task checklist, links to the PRs and Actions
 * runs, and at a gate for a person the buttons Approve (bound to the plan version shown),
 * Edit plan, Reject and Cancel. Kept apart from render.ts so that file stays the shared basics.
 */

interface TaskView {
  id?: string;
  title: string;
  agent?: string;
  status?: string;
  done?: boolean;
  result?: { url?: string };
}

const TASK_ICON: Record<string, string> = {
  pending: '⬜',
  running: '▶️',
  done: '✅',
  failed: '❌',
  skipped: '⏭️',
};

const CHECK_ICON: Record<string, string> = { green: '🟢 ', red: '🔴 ', pending: '🟡 ' };

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const httpsUrl = (v: unknown): string | undefined => {
  const s = str(v);
  return s && /^https:\/\/[^\s<>()]+$/.test(s) ? s : undefined;
};

/** The tasks as the run knows them now: work state once executing, else the plan's. */
export function runTasks(run: Run): TaskView[] {
  const work = run.data.work;
  const plan = run.data.plan;
  const source =
    isObj(work) && Array.isArray(work.tasks) && work.tasks.length > 0
      ? work.tasks
      : isObj(plan) && Array.isArray(plan.tasks)
        ? plan.tasks
        : [];
  return source.filter(isObj).map((t) => ({
    ...(str(t.id) ? { id: str(t.id)! } : {}),
    title: str(t.title) ?? '(untitled)',
    ...(str(t.agent) ? { agent: str(t.agent)! } : {}),
    ...(str(t.status) ? { status: str(t.status)! } : {}),
    ...(typeof t.done === 'boolean' ? { done: t.done } : {}),
    ...(isObj(t.result)
      ? { result: { ...(httpsUrl(t.result.url) ? { url: httpsUrl(t.result.url)! } : {}) } }
      : {}),
  }));
}

/** The plan field: title, summary, who edited it, and the task checklist. */
export function planField(run: Run): APIEmbedField | undefined {
  const plan = run.data.plan;
  if (!isObj(plan)) return undefined;
  const lines: string[] = [];
  const title = str(plan.title);
  if (title) lines.push(`**${truncate(title, 200)}**`);
  const summary = str(plan.summary);
  if (summary) lines.push(truncate(summary, 300));
  const edited = isObj(plan.edited) ? plan.edited : undefined;
  if (edited && str(edited.by)) lines.push(`✏️ edited by ${truncate(str(edited.by)!, 60)}`);
  const tasks = runTasks(run);
  for (const t of tasks.slice(0, 12)) {
    const icon = TASK_ICON[t.status ?? (t.done ? 'done' : 'pending')] ?? '⬜';
    lines.push(`${icon} ${t.agent ? `\`${truncate(t.agent, 40)}\` ` : ''}${truncate(t.title, 120)}`);
  }
  if (tasks.length > 12) lines.push(`… and ${tasks.length - 12} more`);
  const version = str(plan.version);
  return {
    name: truncate(`Plan${version ? ` ${version}` : ''}`, Limits.embedFieldName),
    value: truncate(lines.join('\n') || '—', Limits.embedFieldValue),
  };
}

/** Pull requests (task results) and Actions runs (linked workflow runs) of this run. */
export function workLinks(run: Run, events: readonly RunEvent[]): string[] {
  // Each task's PR with the state of its checks (execute's taskPrs), as the status comment shows.
  const taskPrs = isObj(run.data.taskPrs) ? Object.entries(run.data.taskPrs) : [];
  const checked: string[] = [];
  const seen = new Set<string>();
  for (const [task, pr] of taskPrs.slice(0, 5)) {
    if (!isObj(pr) || typeof pr.number !== 'number') continue;
    const url = httpsUrl(pr.url);
    if (!url) continue;
    seen.add(url);
    const checks = str(pr.checks) ?? 'pending';
    checked.push(
      `${truncate(task, 20)}: [PR #${pr.number}](${url}) checks ${CHECK_ICON[checks] ?? ''}${truncate(checks, 20)}`,
    );
  }
  const prs = new Set<string>();
  for (const t of runTasks(run)) {
    const url = t.result?.url;
    if (url && /\/pull\/\d+/.test(url) && !seen.has(url)) prs.add(url);
  }
  const actions = new Set<string>();
  for (const e of events) {
    if (e.type !== 'agent.workflow-run.linked') continue;
    const url = httpsUrl(e.detail.url);
    if (url) actions.add(url);
  }
  return [
    ...checked,
    ...[...prs].slice(0, 5).map((u) => `[PR #${/\/pull\/(\d+)/.exec(u)?.[1]}](${u})`),
    ...[...actions].slice(0, 5).map((u, i) => `[Actions run ${i + 1}](${u})`),
  ];
}

/** Is the run parked at a gate that needs a person's decision? */
export const waitingForPerson = (run: Run): boolean =>
  run.status === 'waiting' && run.gate !== undefined && gateNeedsPerson(run.gate.kind);

/** Whether the plan of this run can be edited now (a bound approval or escalation gate over a plan). */
export function planEditable(run: Run): boolean {
  const plan = run.data.plan;
  return (
    waitingForPerson(run) &&
    run.gate?.kind === 'approval' &&
    run.gate.binding !== undefined &&
    isObj(plan) &&
    Array.isArray(plan.tasks) &&
    str(plan.version) === run.gate.binding
  );
}

/** The run's buttons, with Edit plan while the plan shown can be edited (the links field has the status comment). */
export function liveButtons(run: Run): APIActionRowComponent<APIButtonComponent>[] {
  return runButtons(run, { editPlan: planEditable(run), statusComment: false });
}

/** The live message: never mentions anyone (edits do not notify; see `mentionMessage`). */
export function renderLiveMessage(
  run: Run,
  opts: { workflow?: WorkflowView | undefined; events?: readonly RunEvent[] } = {},
): MessageBody {
  const events = opts.events ?? [];
  const base = renderRunMessage(run, { workflow: opts.workflow, events });
  const embed = base.embeds[0];
  if (embed) {
    const extra: APIEmbedField[] = [];
    const plan = planField(run);
    if (plan) extra.push(plan);
    const links = workLinks(run, events);
    if (links.length > 0)
      extra.push({ name: 'Work', value: truncate(links.join(' · '), Limits.embedFieldValue) });
    const spend = budgetLine(run.data.budget);
    if (spend) extra.push({ name: 'Spend', value: truncate(spend, Limits.embedFieldValue) });
    const fields = embed.fields ?? [];
    // Plan and work links go before the links field, so the message reads top to bottom.
    const at = fields.findIndex((f) => f.name === 'Links');
    embed.fields = (
      at >= 0 ? [...fields.slice(0, at), ...extra, ...fields.slice(at)] : [...fields, ...extra]
    ).slice(0, Limits.embedFields);
  }
  return { ...base, components: liveButtons(run), allowed_mentions: { parse: [] } };
}

/** The gate a mention is for: one mention per gate opening (node and the run version it opened at). */
export function gateKey(run: Run): string | undefined {
  if (!waitingForPerson(run) || !run.gate) return undefined;
  return `${run.gate.node}@${run.gate.expiresAt}`;
}

const GATE_WORDS: Record<string, string> = {
  approval: 'is waiting for approval',
  escalation: 'needs a person (escalation)',
  budget: 'reached its budget and needs a decision',
};

/**
 * The one message that notifies the role: a reply to the live message (edits never notify), with
 * allowed_mentions limited to exactly that role.
 */
export function mentionMessage(
  run: Run,
  role: string,
  liveMessageId: string | undefined,
): RESTPostAPIChannelMessageJSONBody {
  const kind = run.gate?.kind ?? 'approval';
  const words = GATE_WORDS[kind] ?? `is waiting at a ${truncate(kind, 30)} gate`;
  return {
    content: truncate(`<@&${role}> ${subjectLabel(run)} ${words} (run \`${run.id}\`).`, Limits.content),
    allowed_mentions: { parse: [], roles: [role] },
    ...(liveMessageId ? { message_reference: { message_id: liveMessageId, fail_if_not_exists: false } } : {}),
  };
}
