import type { APIEmbed } from 'discord-api-types/v10';
import type { NewEvent, Run } from '../engine/types.ts';
import type { StepContext, WorkflowDefinition } from '../engine/workflow.ts';
import { type DiscordBinding, deliver, loadBinding, saveBinding } from './binding.ts';
import { escapeDiscordInline } from './escape.ts';
import { type MessageBody, textMessage, truncate } from './render.ts';
import type { DiscordRest } from './rest.ts';
import { ISSUE_PIPELINE, PLAN_ALL_WORKFLOW } from './workflow-names.ts';
import type { DiscordWorkflowServices, ReadyIssue } from './workflow-services.ts';

export interface PlanAllInput {
  repo: string;
  label: string;
  /** Role mentioned in the thread summary (config `discord.notifyRole`). */
  notifyRole?: string;
}

export interface PlannedIssue {
  issue: number;
  title: string;
  runId: string;
  outcome: 'created' | 'duplicate' | 'attached' | 'superseded';
}

/** At most this many runs from one `/plan`; the rest wait for the next one. */
export const MAX_PLANNED_ISSUES = 50;
const EMBED_ISSUES = 10;

export function planMessage(repo: string, label: string, issues: readonly ReadyIssue[]): MessageBody {
  const n = issues.length;
  const lines = issues
    .slice(0, EMBED_ISSUES)
    .map((i) => `[#${i.number}: ${escapeDiscordInline(truncate(i.title, 120))}](${i.url})`);
  if (n > EMBED_ISSUES) lines.push(`… and ${n - EMBED_ISSUES} more`);
  const embed: APIEmbed = {
    title: truncate(`${repo}: open issues labelled ${label}`, 256),
    url: `https://github.com/${repo}/issues?q=${encodeURIComponent(`is:open label:"${label}"`)}`,
    description: lines.join('\n') || `No open issue carries \`${label}\`.`,
    color: 0x5865f2,
  };
  return {
    content: `📋 **Plan** - ${n} issue${n === 1 ? '' : 's'} ready`,
    embeds: [embed],
    components: [],
    allowed_mentions: { parse: [] },
  };
}

export function planSummary(planned: readonly PlannedIssue[], notifyRole?: string): MessageBody {
  const lines = planned.map(
    (p) =>
      `• #${p.issue} ${escapeDiscordInline(truncate(p.title, 80))} → \`${p.runId}\`${p.outcome === 'attached' ? ' (already running)' : ''}`,
  );
  const head =
    `🧭 Planning ${planned.length} issue${planned.length === 1 ? '' : 's'}. Each run posts its progress in this thread. ` +
    'When a plan is ready, review it and use `/approve run:<id>` (or the Approve button on its message).';
  const body = textMessage([...(notifyRole ? [`<@&${notifyRole}>`] : []), head, '', ...lines].join('\n'));
  return notifyRole ? { ...body, allowed_mentions: { parse: [], roles: [notifyRole] } } : body;
}

/** "Plan - 2025-06-01", in UTC like every other date we show in text. */
export const threadName = (now: Date): string => `Plan - ${now.toISOString().slice(0, 10)}`;

async function planAll(ctx: StepContext<DiscordWorkflowServices>) {
  const svc = ctx.services.discord;
  const { repo, label, notifyRole } = ctx.run.data as unknown as PlanAllInput;
  // Per run, not per step: a second plan message, thread or summary would be visible to people.
  const once = <T>(name: string, fn: () => Promise<T>) => ctx.effect(name, fn, { scope: 'run' });
  const trigger = ctx.run.trigger;
  const record = (e: Omit<NewEvent, 'node'>) => ctx.emit({ ...e, node: ctx.node });
  const rest: DiscordRest = svc.rest.withDryRunRecorder((call) =>
    record({ type: 'discord.dry-run', by: PLAN_ALL_WORKFLOW, detail: { ...call } }),
  );
  const callCtx = { runId: ctx.run.id, node: ctx.node, sink: ctx.emit };

  const listed = await svc.listReadyIssues(repo, label, callCtx);
  const issues = (listed ?? []).slice(0, MAX_PLANNED_ISSUES);

  // 1. The plan message, in place of the deferred answer ("thinking...").
  const posted = await once('plan-message', async () => {
    const found = await loadBinding(svc.store, ctx.run, svc.applicationId);
    if (!found) return { channelId: null, messageId: null };
    const out = await deliver(svc.store, rest, found.binding, planMessage(repo, label, issues));
    await saveBinding(svc.store, ctx.run.id, out.binding, found.version, ctx.now.getTime());
    return {
      channelId: out.message?.channel_id ?? out.binding.channelId ?? null,
      messageId: out.message?.id ?? null,
    };
  });

  // 2. A thread under it, where the runs will report.
  const thread =
    issues.length > 0 && posted.channelId && posted.messageId
      ? await once('thread', async () => {
          const ch = await rest.startThreadFromMessage(posted.channelId!, posted.messageId!, {
            name: threadName(ctx.now),
            auto_archive_duration: 1440,
          });
          return { threadId: ch.id };
        })
      : null;
  const reportChannel = thread?.threadId ?? posted.channelId;

  // 3. One run per issue, attached to any run already active on it (idempotent per plan run).
  const planned: PlannedIssue[] = [];
  for (const issue of issues) {
    const res = await svc.startRun({
      workflow: ISSUE_PIPELINE,
      subject: { repo, issue: issue.number, key: `${repo}#${issue.number}` },
      trigger: {
        source: 'discord',
        ...(trigger.actor !== undefined ? { actor: trigger.actor } : {}),
        planRunId: ctx.run.id,
        ...(reportChannel ? { channelId: reportChannel } : {}),
        ...(typeof trigger.guildId === 'string' ? { guildId: trigger.guildId } : {}),
      },
      idempotencyKey: `${ctx.run.id}:${repo}#${issue.number}`,
      concurrency: 'attach',
    });
    planned.push({ issue: issue.number, title: issue.title, runId: res.run.id, outcome: res.outcome });
    if (res.outcome === 'attached' && reportChannel) {
      // A run someone else started: show it in the thread too, unless it already has a message.
      const binding: DiscordBinding = {
        channelId: reportChannel,
        ...(svc.applicationId ? { applicationId: svc.applicationId } : {}),
        ...(typeof trigger.guildId === 'string' ? { guildId: trigger.guildId } : {}),
      };
      if (!(await alreadyBound(svc.store, res.run))) {
        await saveBinding(svc.store, res.run.id, binding, 0, ctx.now.getTime());
      }
    }
  }

  // 4. The summary in the thread.
  if (thread) {
    await once('summary', async () => {
      const m = await rest.createMessage(thread.threadId, planSummary(planned, notifyRole));
      return { messageId: m.id };
    });
  }
  return {
    output: {
      planned,
      ...(thread ? { threadId: thread.threadId } : {}),
      ...(listed === undefined ? { githubDryRun: true } : {}),
    },
  };
}

async function alreadyBound(store: DiscordWorkflowServices['discord']['store'], run: Run): Promise<boolean> {
  return (await loadBinding(store, run)) !== undefined;
}

/**
 * `/plan` without an issue: list the open issues carrying the trigger label, post the plan with a
 * thread, start one issue-pipeline run per issue, and summarise in the thread. Listing touches
 * GitHub, so it happens here in the worker, after the interaction was answered with a deferral.
 */
export function planAllWorkflow<S extends DiscordWorkflowServices>(): WorkflowDefinition<S> {
  return {
    name: PLAN_ALL_WORKFLOW,
    version: 1,
    description: 'Plan every open issue carrying the trigger label, from Discord',
    start: 'plan',
    deadlineMs: 30 * 60_000,
    nodes: {
      // Below the worker function's timeout with the lease grace (lib/engine/timeouts.ts).
      // Lists the ready issues (a read) before its first effect: `lazyLease` (lib/engine/workflow.ts).
      plan: { title: 'Plan ready issues', handler: planAll, timeoutMs: 100_000, lazyLease: true },
    },
    edges: [],
  };
}
