import type {
  APIActionRowComponent,
  APIButtonComponent,
  APIEmbed,
  APIEmbedField,
  APIMessageTopLevelComponent,
} from 'discord-api-types/v10';
import { budgetLine } from '../agents/budget.ts';
import { plannerLine } from '../agents/plan-usage.ts';
import { type NodeProgress, nodeProgress, progressOf } from '../engine/progress.ts';
import { isTerminal, type Run, type RunEvent, type RunStatus } from '../engine/types.ts';
import { encodeButtonId } from './custom-id.ts';
import { escapeDiscord, escapeDiscordInline } from './escape.ts';
import { ButtonStyle, ComponentType, Limits } from './protocol.ts';

/** What rendering needs of a workflow: its nodes in checklist order, with titles. */
export interface WorkflowView {
  name: string;
  order(): string[];
  nodes: ReadonlyMap<string, { title?: string | undefined }>;
}

/** A message body usable as an interaction response, a webhook edit, or a channel message. */
export interface MessageBody {
  content?: string;
  embeds: APIEmbed[];
  components: APIMessageTopLevelComponent[];
  allowed_mentions: { parse: []; roles?: string[] };
}

export type StepState = NodeProgress;

export const STEP_ICON: Record<StepState, string> = {
  done: '✅',
  current: '▶️',
  waiting: '⏸️',
  failed: '❌',
  cancelled: '⏹️',
  pending: '⬜',
};

const STATUS_ICON: Record<RunStatus, string> = {
  queued: '🕓',
  running: '▶️',
  waiting: '⏸️',
  succeeded: '✅',
  failed: '❌',
  cancelled: '⏹️',
  expired: '⌛',
};

const STATUS_COLOR: Record<RunStatus, number> = {
  queued: 0x95a5a6,
  running: 0x3498db,
  waiting: 0xf1c40f,
  succeeded: 0x2ecc71,
  failed: 0xe74c3c,
  cancelled: 0x7f8c8d,
  expired: 0xe67e22,
};

export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** Discord's own timestamp markup: each viewer sees it in their time zone. */
export const discordTime = (iso: string, style: 'R' | 'f' = 'R'): string =>
  `<t:${Math.floor(Date.parse(iso) / 1000)}:${style}>`;

export const issueUrl = (repo: string, issue: number): string => `https://github.com/${repo}/issues/${issue}`;

export function subjectLabel(run: Pick<Run, 'subject'>): string {
  const { repo, issue, key } = run.subject;
  if (repo && issue !== undefined) return `${repo}#${issue}`;
  return repo ?? key;
}

function subjectLink(run: Run): string {
  const { repo, issue } = run.subject;
  return repo && issue !== undefined ? `[${repo}#${issue}](${issueUrl(repo, issue)})` : subjectLabel(run);
}

/** Each node of the workflow in order, with its progress (lib/engine/progress.ts). */
export function stepStates(
  run: Run,
  workflow: WorkflowView | undefined,
  events: readonly RunEvent[],
): Array<{ node: string; title: string; state: StepState }> {
  const order = workflow ? workflow.order() : run.node ? [run.node] : [];
  const progress = nodeProgress(run, events);
  return order.map((node) => ({
    node,
    title: workflow?.nodes.get(node)?.title ?? node,
    state: progressOf(progress, node),
  }));
}

export function checklist(run: Run, workflow: WorkflowView | undefined, events: readonly RunEvent[]): string {
  return stepStates(run, workflow, events)
    .map(
      (s) =>
        `${STEP_ICON[s.state]} ${s.node === run.node && !isTerminal(run.status) ? `**${s.title}**` : s.title}`,
    )
    .join('\n');
}

/**
 * Approve/Reject while waiting at a decision gate (with Edit plan between them when the plan can
 * be edited); Cancel while active; links to the issue and (unless left out) the status comment.
 */
export function runButtons(
  run: Run,
  opts: { editPlan?: boolean; statusComment?: boolean } = {},
): APIActionRowComponent<APIButtonComponent>[] {
  const buttons: APIButtonComponent[] = [];
  const gate = run.gate;
  if (
    run.status === 'waiting' &&
    gate &&
    (gate.kind === 'approval' || gate.kind === 'escalation' || gate.kind === 'budget')
  ) {
    const binding = gate.binding !== undefined ? { binding: gate.binding } : {};
    buttons.push({
      type: ComponentType.Button,
      style: ButtonStyle.Success,
      label: 'Approve',
      custom_id: encodeButtonId({ action: 'approve', runId: run.id, ...binding }),
    });
    if (opts.editPlan)
      buttons.push({
        type: ComponentType.Button,
        style: ButtonStyle.Primary,
        label: 'Edit plan',
        custom_id: encodeButtonId({ action: 'edit', runId: run.id, ...binding }),
      });
    buttons.push({
      type: ComponentType.Button,
      style: ButtonStyle.Danger,
      label: 'Reject',
      custom_id: encodeButtonId({ action: 'reject', runId: run.id, ...binding }),
    });
  }
  if (!isTerminal(run.status)) {
    buttons.push({
      type: ComponentType.Button,
      style: ButtonStyle.Secondary,
      label: 'Cancel',
      custom_id: encodeButtonId({ action: 'cancel', runId: run.id }),
    });
  }
  const { repo, issue } = run.subject;
  if (repo && issue !== undefined) {
    buttons.push({
      type: ComponentType.Button,
      style: ButtonStyle.Link,
      label: 'Issue',
      url: issueUrl(repo, issue),
    });
  }
  const comment = opts.statusComment === false ? undefined : statusCommentUrl(run);
  if (comment)
    buttons.push({
      type: ComponentType.Button,
      style: ButtonStyle.Link,
      label: 'Status comment',
      url: comment,
    });
  return buttons.length > 0 ? [{ type: ComponentType.ActionRow, components: buttons.slice(0, 5) }] : [];
}

function statusCommentUrl(run: Run): string | undefined {
  const url = run.data.statusCommentUrl;
  return typeof url === 'string' && /^https:\/\//.test(url) ? url : undefined;
}

function field(name: string, value: string, inline = false): APIEmbedField {
  return {
    name: truncate(name, Limits.embedFieldName),
    value: truncate(value || '—', Limits.embedFieldValue),
    inline,
  };
}

function gateField(run: Run): APIEmbedField | undefined {
  const gate = run.gate;
  if (run.status !== 'waiting' || !gate) return undefined;
  const lines = [
    gate.kind === 'agent'
      ? `Waiting for an agent at **${gate.node}**`
      : gate.kind === 'ci' || gate.kind === 'hold'
        ? `Parked at **${gate.node}** (${gate.kind})`
        : `Waiting for a decision at **${gate.node}**`,
    ...(gate.prompt ? [truncate(escapeDiscordInline(gate.prompt), 400)] : []),
    ...(gate.binding !== undefined ? [`Plan version: \`${truncate(gate.binding, 80)}\``] : []),
    `Expires ${discordTime(gate.expiresAt)}`,
  ];
  return field('Gate', lines.join('\n'));
}

/** The one message per run: checklist of steps, current node, gate, links, and its buttons. */
export function renderRunMessage(
  run: Run,
  opts: {
    workflow?: WorkflowView | undefined;
    events?: readonly RunEvent[];
    notifyRole?: string | undefined;
  } = {},
): MessageBody {
  const fields: APIEmbedField[] = [
    field('Status', `${STATUS_ICON[run.status]} ${run.status}`, true),
    field('Node', run.node ? `\`${run.node}\`` : '—', true),
    field('Run', `\`${run.id}\``, true),
  ];
  const gate = gateField(run);
  if (gate) fields.push(gate);
  if (isTerminal(run.status) && run.reason) fields.push(field('Outcome', escapeDiscordInline(run.reason)));
  const links = [
    ...(run.subject.repo && run.subject.issue !== undefined ? [subjectLink(run)] : []),
    ...(statusCommentUrl(run) ? [`[status comment](${statusCommentUrl(run)})`] : []),
  ];
  if (links.length > 0) fields.push(field('Links', links.join(' · ')));

  const embed: APIEmbed = {
    title: truncate(`${run.workflow} · ${subjectLabel(run)}`, Limits.embedTitle),
    description: truncate(checklist(run, opts.workflow, opts.events ?? []) || '—', Limits.embedDescription),
    color: STATUS_COLOR[run.status],
    fields,
    footer: {
      text: `v${run.version} · started ${new Date(run.createdAt).toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    },
    timestamp: run.updatedAt,
  };
  const { repo, issue } = run.subject;
  if (repo && issue !== undefined) embed.url = issueUrl(repo, issue);

  // Parked at a gate that resumes by itself (agent, ci, hold): nobody is mentioned.
  const waitingForPerson =
    run.status === 'waiting' && run.gate !== undefined && !['agent', 'ci', 'hold'].includes(run.gate.kind);
  const role = waitingForPerson ? opts.notifyRole : undefined;
  return {
    ...(role ? { content: `<@&${role}> ${subjectLabel(run)} is waiting for approval` } : {}),
    embeds: [embed],
    components: runButtons(run),
    // Edits never ping; a role is allowed only when named here, and users never.
    allowed_mentions: role ? { parse: [], roles: [role] } : { parse: [] },
  };
}

/** A short, readable view of whatever the planner stored as `data.plan`. */
export function summarizePlan(plan: unknown): string | undefined {
  if (plan === undefined || plan === null) return undefined;
  if (typeof plan === 'string') return truncate(escapeDiscord(plan), 900);
  if (typeof plan !== 'object') return escapeDiscordInline(String(plan));
  const p = plan as Record<string, unknown>;
  const lines: string[] = [];
  for (const k of ['title', 'summary'])
    if (typeof p[k] === 'string') lines.push(escapeDiscord(p[k] as string));
  const steps = (Array.isArray(p.steps) ? p.steps : Array.isArray(p.tasks) ? p.tasks : []) as unknown[];
  steps.slice(0, 10).forEach((s, i) => {
    const text =
      typeof s === 'string'
        ? s
        : typeof s === 'object' && s && 'title' in s
          ? String((s as { title: unknown }).title)
          : JSON.stringify(s);
    lines.push(`${i + 1}. ${escapeDiscordInline(text)}`);
  });
  if (steps.length > 10) lines.push(`… and ${steps.length - 10} more`);
  if (lines.length === 0) lines.push(`\`${truncate(JSON.stringify(plan).replace(/`/g, "'"), 800)}\``);
  return truncate(lines.join('\n'), 900);
}

function eventLine(e: RunEvent): string {
  return `${discordTime(e.at)} \`${e.type}\`${e.node ? ` at ${e.node}` : ''}${e.by ? ` by ${e.by}` : ''}`;
}

/** `/status <run>`: the run message plus plan and the latest history. */
export function renderRunDetail(
  run: Run,
  opts: { workflow?: WorkflowView | undefined; events: readonly RunEvent[] },
): MessageBody {
  const msg = renderRunMessage(run, { workflow: opts.workflow, events: opts.events });
  const embed = msg.embeds[0]!;
  const extra: APIEmbedField[] = [];
  const plan = summarizePlan(run.data.plan);
  if (plan) extra.push(field('Plan', plan));
  const who = plannerLine(run.data.plan);
  if (who) extra.push(field('Planner', who));
  const spend = budgetLine(run.data.budget);
  if (spend) extra.push(field('Spend', spend));
  const last = opts.events.slice(-5);
  if (last.length > 0) extra.push(field('Last events', last.map(eventLine).join('\n')));
  embed.fields = [...(embed.fields ?? []), ...extra].slice(0, Limits.embedFields);
  return { ...msg, allowed_mentions: { parse: [] } };
}

function runLine(run: Run): string {
  return `${STATUS_ICON[run.status]} \`${run.id}\` ${subjectLabel(run)} · ${run.workflow}${run.node && !isTerminal(run.status) ? ` · ${run.node}` : ''} · ${discordTime(run.updatedAt)}`;
}

/** `/status` without a run: active and recent runs. */
export function renderRunList(
  active: readonly Run[],
  recent: readonly Run[],
  activeLimit = Number.POSITIVE_INFINITY,
  agents?: string,
): MessageBody {
  const list = (runs: readonly Run[]) =>
    truncate(runs.map(runLine).join('\n') || 'none', Limits.embedFieldValue);
  return {
    embeds: [
      {
        title: 'Switchyard runs',
        color: 0x5865f2,
        fields: [
          {
            name: `Active (${active.length}${active.length >= activeLimit ? '+' : ''})`,
            value: list(active.slice(0, 10)),
          },
          { name: 'Recently finished', value: list(recent.slice(0, 10)) },
          ...(agents ? [{ name: 'Agents', value: truncate(agents, Limits.embedFieldValue) }] : []),
        ],
        footer: { text: 'Use /status run:<id> for details' },
      },
    ],
    components: [],
    allowed_mentions: { parse: [] },
  };
}

/** A short text message (confirmations and refusals). */
export function textMessage(content: string): MessageBody {
  return {
    content: truncate(content, Limits.content),
    embeds: [],
    components: [],
    allowed_mentions: { parse: [] },
  };
}
