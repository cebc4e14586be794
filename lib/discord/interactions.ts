import type {
  APIApplicationCommandOptionChoice,
  APIInteraction,
  APIInteractionResponse,
  APIMessageComponentInteraction,
  APIModalSubmitInteraction,
} from 'discord-api-types/v10';
import { logger } from '../common/observability.ts';
import type { Signal, StartRunInput, StartRunResult } from '../engine/engine.ts';
import {
  InvalidSignalError,
  RunPausedError,
  StaleApprovalError,
  UnknownWorkflowError,
} from '../engine/errors.ts';
import { describePause, listPauses, setPaused } from '../engine/pause.ts';
import type { ListEventsOptions, ListRunsQuery, RunStore } from '../engine/ports.ts';
import { isTerminal, type NewEvent, type Run, type RunEvent, type Trigger } from '../engine/types.ts';
import { type KvPort, saveBinding, saveInteractionToken, TOKEN_GROUP } from './binding.ts';
import { channelMapsRepo, guildAllowed, isApprover } from './channels.ts';
import { MAX_BUDGET_USD, MIN_BUDGET_USD } from './commands.ts';
import { consoleLinkRow } from './console-link.ts';
import { decodeButtonId, resolveShownBinding } from './custom-id.ts';
import { DiscordInputError } from './errors.ts';
import { planEditable, renderLiveMessage } from './live-message.ts';
import {
  editableAgents,
  editPlan,
  isPlan,
  PLAN_TEXT_INPUT,
  parsePlanText,
  planEditModal,
} from './plan-edit.ts';
import { type Actor, authorize, authorizeFor, type CommandName, type DiscordPolicy } from './policy.ts';
import { InteractionType, Limits, MessageFlags, ResponseType } from './protocol.ts';
import {
  type MessageBody,
  renderRunDetail,
  renderRunList,
  renderRunMessage,
  subjectLabel,
  textMessage,
  truncate,
  type WorkflowView,
} from './render.ts';
import { ISSUE_PIPELINE, PLAN_ALL_WORKFLOW, ROUTE_PR_WORKFLOW } from './workflow-names.ts';

/** The part of the engine the interactions endpoint uses. */
export interface DiscordEnginePort {
  startRun(input: StartRunInput): Promise<StartRunResult>;
  signal(runId: string, signal: Signal): Promise<Run>;
  rebindGate(
    runId: string,
    change: {
      expected: string;
      binding: string;
      data: Record<string, unknown>;
      prompt?: string;
      event: NewEvent;
    },
  ): Promise<Run>;
  recordEvent(runId: string, event: NewEvent): Promise<void>;
  getRun(id: string): Promise<Run | null>;
  listRuns(query: ListRunsQuery): Promise<Run[]>;
  listEvents(id: string, opts?: ListEventsOptions): Promise<RunEvent[]>;
  workflows: { get(name: string): WorkflowView | undefined };
}

/** The run store's KV (tokens, bindings, audit) and its sparse index of active runs (one query). */
export type DiscordStorePort = KvPort & Pick<RunStore, 'listActive' | 'kvList'>;

export interface InteractionDeps {
  engine: DiscordEnginePort;
  store: DiscordStorePort;
  /** The Discord section of the config; loaded lazily, so PING never waits for it. */
  policy: () => Promise<DiscordPolicy>;
  /** Agent queue depth and what each agent is doing, as text; shown by /status when given. */
  workloads?: () => Promise<string>;
  /** A signed link to the run console for this user (lib/discord/console-link.ts); /status offers it. */
  consoleLink?: (actor: Actor, channelId?: string) => Promise<string | undefined>;
  now?: () => Date;
}

export const AUDIT_GROUP = 'audit';
/** `<run id>#<user id>`: the one refusal of a user recorded on a run's history. */
export const REFUSAL_GROUP = 'discord-refused';
/**
 * Active runs read per /status or autocomplete (oldest first, from the active index). Each costs a
 * read of the run item, so keep it to what is shown; more than this is a backlog, shown as "N+".
 */
const ACTIVE_LIMIT = 25;
/** Autocomplete filters what it reads (waiting runs, a typed prefix), so it reads further. */
const SUGGEST_LIMIT = 100;
const AUDIT_TTL_SECONDS = 90 * 86_400;
const REPO = /^[\w.-]+\/[\w.-]+$/;

type Option = { name: string; type: number; value?: unknown; focused?: boolean; options?: Option[] };

/** Command options by name, with a subcommand's options flattened in. */
function readOptions(options: readonly Option[] | undefined): { sub?: string; values: Map<string, Option> } {
  const values = new Map<string, Option>();
  let sub: string | undefined;
  for (const o of options ?? []) {
    if (o.options) {
      sub = o.name;
      for (const inner of o.options) values.set(inner.name, inner);
    } else values.set(o.name, o);
  }
  return { ...(sub !== undefined ? { sub } : {}), values };
}

const str = (o: Option | undefined): string | undefined =>
  typeof o?.value === 'string' && o.value.trim() !== '' ? o.value.trim() : undefined;

function actorOf(i: APIInteraction): Actor & { name: string } {
  const user = i.member?.user ?? i.user;
  return { userId: user?.id ?? 'unknown', roles: i.member?.roles ?? [], name: user?.username ?? 'unknown' };
}

const byOf = (a: Actor) => `discord:${a.userId}`;

const channelIdOf = (i: APIInteraction): string | undefined => i.channel?.id ?? i.channel_id;

export const ephemeral = (content: string): APIInteractionResponse => ({
  type: ResponseType.ChannelMessageWithSource,
  data: { ...textMessage(content), flags: MessageFlags.Ephemeral },
});

const message = (body: MessageBody, opts: { ephemeral?: boolean } = {}): APIInteractionResponse => ({
  type: ResponseType.ChannelMessageWithSource,
  data: { ...body, ...(opts.ephemeral ? { flags: MessageFlags.Ephemeral } : {}) },
});

const deferred = (): APIInteractionResponse => ({ type: ResponseType.DeferredChannelMessageWithSource });

/** `12`, `#12`, `owner/name#12` or a GitHub issue/PR URL. */
export function parseIssueRef(
  text: string,
  defaultRepo: string | undefined,
): { repo: string; issue: number } {
  const t = text.trim();
  let m = /^#?(\d{1,9})$/.exec(t);
  if (m) {
    if (!defaultRepo)
      throw new DiscordInputError(
        'give the repository (repo option or owner/name#number): no default is configured',
      );
    return { repo: defaultRepo, issue: Number(m[1]) };
  }
  m = /^([\w.-]+\/[\w.-]+)#(\d{1,9})$/.exec(t);
  if (m) return { repo: m[1]!, issue: Number(m[2]) };
  m = /^https:\/\/github\.com\/([\w.-]+\/[\w.-]+)\/(?:issues|pull)\/(\d{1,9})(?:[/?#].*)?$/.exec(t);
  if (m) return { repo: m[1]!, issue: Number(m[2]) };
  throw new DiscordInputError(`"${truncate(t, 80)}" is not an issue: use 12, owner/name#12 or an issue URL`);
}

function repoOption(value: string | undefined, policy: DiscordPolicy): string {
  const repo = value ?? policy.defaultRepo;
  if (!repo) throw new DiscordInputError('give a repo (owner/name): no default is configured');
  if (!REPO.test(repo)) throw new DiscordInputError(`"${truncate(repo, 80)}" is not owner/name`);
  return repo;
}

function commandNameOf(i: APIInteraction): string {
  const data = (i as { data?: { name?: unknown; custom_id?: unknown } }).data;
  if (typeof data?.name === 'string') return truncate(data.name, 32);
  if (typeof data?.custom_id === 'string')
    return `button:${truncate(data.custom_id.split(':')[1] ?? '', 16)}`;
  return `type:${i.type}`;
}

/** What a button stands for, for permissions: Reject is part of approving. */
const BUTTON_COMMAND: Record<string, CommandName> = {
  approve: 'approve',
  reject: 'approve',
  edit: 'approve',
  cancel: 'cancel',
};

/**
 * Route one verified interaction to its command. Everything here reads or writes DynamoDB only,
 * so it answers well inside Discord's 3 seconds; work that touches GitHub is started as a run
 * and answered with a deferral, which the worker edits later.
 */
export function createInteractionRouter(
  deps: InteractionDeps,
): (i: APIInteraction) => Promise<APIInteractionResponse> {
  const now = deps.now ?? (() => new Date());
  const { engine } = deps;
  const kv = deps.store;

  /** Active runs, newest first, from one read of the active index (not one query per status). */
  async function activeRuns(limit: number): Promise<Run[]> {
    const runs = await deps.store.listActive(limit);
    return runs.filter((r) => !isTerminal(r.status)).sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
  }

  async function audit(i: APIInteraction, command: string, reason: string, runId?: string): Promise<void> {
    const actor = actorOf(i);
    const channelId = channelIdOf(i);
    const detail = {
      command,
      reason,
      interactionId: i.id,
      user: actor.userId,
      roles: [...actor.roles],
      ...(i.guild_id ? { guildId: i.guild_id } : {}),
      ...(channelId ? { channelId } : {}),
    };
    // A refused user may not grow a run's history at will (issue #9, defect 14): the first
    // refusal of a user on a run is recorded on that run; every further one, and any for a run
    // that does not exist, goes to the KV audit log, which expires.
    const at0 = now();
    if (
      runId &&
      (await kv.kvPut(
        REFUSAL_GROUP,
        `${runId}#${actor.userId}`,
        { at: at0.toISOString() },
        { expectedVersion: 0, ttl: Math.floor(at0.getTime() / 1000) + AUDIT_TTL_SECONDS },
      ))
    ) {
      try {
        await engine.recordEvent(runId, { type: 'discord.refused', by: byOf(actor), detail });
        return;
      } catch {
        // no such run: the KV audit log below still records the refusal
      }
    }
    const at = now();
    await kv.kvPut(
      AUDIT_GROUP,
      `${at.toISOString()}#${i.id}`,
      { at: at.toISOString(), type: 'discord.refused', ...detail },
      {
        ttl: Math.floor(at.getTime() / 1000) + AUDIT_TTL_SECONDS,
      },
    );
  }

  /** Null when allowed; otherwise the refusal to send (after auditing it). */
  async function guard(
    i: APIInteraction,
    command: CommandName,
    runId?: string,
    repo?: string,
  ): Promise<APIInteractionResponse | null> {
    const decision = authorizeFor(await deps.policy(), command, actorOf(i), repo);
    if (decision.allowed) return null;
    await audit(i, command, decision.reason, runId);
    return ephemeral(`⛔ ${decision.reason}.`);
  }

  function trigger(i: APIInteraction): Trigger {
    const channelId = channelIdOf(i);
    return {
      source: 'discord',
      actor: actorOf(i).userId,
      interactionId: i.id,
      applicationId: i.application_id,
      ...(channelId ? { channelId } : {}),
      ...(i.guild_id ? { guildId: i.guild_id } : {}),
    };
  }

  /** Keep the token (15 min TTL) under the interaction id before any run can report. */
  async function keepToken(i: APIInteraction): Promise<void> {
    await saveInteractionToken(
      kv,
      i.id,
      { token: i.token, applicationId: i.application_id },
      now().getTime(),
    );
  }

  async function start(
    i: APIInteraction,
    input: StartRunInput,
  ): Promise<StartRunResult | APIInteractionResponse> {
    try {
      return await engine.startRun(input);
    } catch (err) {
      if (
        err instanceof UnknownWorkflowError ||
        err instanceof InvalidSignalError ||
        err instanceof RunPausedError
      ) {
        await kv.kvDelete(TOKEN_GROUP, i.id);
        return ephemeral(`⚠️ ${err.message}`);
      }
      throw err;
    }
  }

  async function findRun(idOrPrefix: string): Promise<Run | null> {
    const exact = await engine.getRun(idOrPrefix);
    if (exact) return exact;
    if (idOrPrefix.length < 4) return null;
    const recent = await engine.listRuns({ limit: 100 });
    const matches = recent.filter((r) => r.id.startsWith(idOrPrefix));
    return matches.length === 1 ? matches[0]! : null;
  }

  const workflowOf = (run: Run) => engine.workflows.get(run.workflow);

  // ------------------------------------------------------------------------------ commands

  async function plan(i: APIInteraction, opts: Map<string, Option>): Promise<APIInteractionResponse> {
    const refused = await guard(i, 'plan');
    if (refused) return refused;
    const policy = await deps.policy();
    const issueText = str(opts.get('issue'));
    const repoText = str(opts.get('repo'));
    const target = issueText
      ? parseIssueRef(issueText, repoText !== undefined ? repoOption(repoText, policy) : policy.defaultRepo)
      : { repo: repoOption(repoText, policy), issue: undefined };
    const refusedHere = await channelRefuses(i, policy, target.repo);
    if (refusedHere) return refusedHere;
    await keepToken(i);
    const idempotencyKey = `discord:${i.id}`;

    if (target.issue === undefined) {
      const res = await start(i, {
        workflow: PLAN_ALL_WORKFLOW,
        // One plan per interaction: two people planning at once each get their own message.
        subject: { repo: target.repo, key: `${target.repo}#plan#${i.id}` },
        trigger: trigger(i),
        input: {
          repo: target.repo,
          label: policy.triggerLabel,
          ...(policy.notifyRole ? { notifyRole: policy.notifyRole } : {}),
        },
        idempotencyKey,
        concurrency: 'attach',
      });
      return 'type' in res ? res : deferred();
    }

    const res = await start(i, {
      workflow: ISSUE_PIPELINE,
      subject: { repo: target.repo, issue: target.issue, key: `${target.repo}#${target.issue}` },
      trigger: trigger(i),
      idempotencyKey,
      concurrency: 'attach',
    });
    if ('type' in res) return res;
    if (res.outcome !== 'attached') return deferred();
    // Already running: this message becomes the run's live message, starting with its state now.
    const channelId = channelIdOf(i);
    await saveBinding(
      kv,
      res.run.id,
      {
        interactionId: i.id,
        applicationId: i.application_id,
        ...(channelId ? { channelId } : {}),
        ...(i.guild_id ? { guildId: i.guild_id } : {}),
      },
      undefined,
      now().getTime(),
    );
    const events = await engine.listEvents(res.run.id, { version: res.run.version });
    const body = renderRunMessage(res.run, { workflow: workflowOf(res.run), events });
    return message({ ...body, content: `Already running: attached to \`${res.run.id}\`.` });
  }

  /**
   * With channel mappings configured, /plan acts only on repositories the channel it was typed in
   * maps, so a repository's runs show up where its approvers are; admins may plan anything anywhere.
   */
  async function channelRefuses(
    i: APIInteraction,
    policy: DiscordPolicy,
    repo: string,
  ): Promise<APIInteractionResponse | null> {
    if (policy.channels.length === 0) return null;
    const decision = authorize(policy, 'plan', actorOf(i));
    if (decision.allowed && decision.via.startsWith('admin')) return null;
    const channelId = channelIdOf(i);
    if (channelId && channelMapsRepo(policy.channels, channelId, repo)) return null;
    const reason = `this channel does not map ${repo}`;
    await audit(i, 'plan', reason);
    return ephemeral(`⛔ ${truncate(reason, 200)}: plan it in its own channel, or ask an admin.`);
  }

  async function status(i: APIInteraction, opts: Map<string, Option>): Promise<APIInteractionResponse> {
    const runText = str(opts.get('run'));
    const refused = await guard(i, 'status', runText);
    if (refused) return refused;
    // The console link is a convenience next to the answer: never fail /status for it.
    const link = await deps.consoleLink?.(actorOf(i), channelIdOf(i)).catch((err: unknown) => {
      logger.warn('console link not made', { error: (err as Error).message });
      return undefined;
    });
    const withLink = (body: MessageBody): MessageBody =>
      link ? { ...body, components: [...body.components, consoleLinkRow(link)].slice(0, 5) } : body;
    if (runText) {
      const run = await findRun(runText);
      if (!run) return ephemeral(`No run \`${truncate(runText, 80)}\`.`);
      const events = await engine.listEvents(run.id, { version: run.version });
      return message(withLink(renderRunDetail(run, { workflow: workflowOf(run), events })), {
        ephemeral: true,
      });
    }
    const [active, recent, agents] = await Promise.all([
      activeRuns(ACTIVE_LIMIT),
      engine.listRuns({ limit: 20 }),
      // The workloads are a nice-to-have next to the runs: never fail /status for them.
      deps.workloads?.().catch(() => undefined),
    ]);
    const finished = recent.filter((r) => isTerminal(r.status));
    const body = renderRunList(active, finished, ACTIVE_LIMIT, agents);
    const pauses = await listPauses(kv);
    const paused = pauses.map((p) => `⏸️ ${describePause(p)}`).join('\n');
    return message(withLink(paused ? { ...body, content: truncate(paused, 1900) } : body), {
      ephemeral: true,
    });
  }

  /** The kill switch (admins only): stored in KV, audited, shown by /status. */
  async function pauseCommand(
    i: APIInteraction,
    paused: boolean,
    opts: Map<string, Option>,
  ): Promise<APIInteractionResponse> {
    const command = paused ? 'pause' : 'resume';
    const refused = await guard(i, command);
    if (refused) return refused;
    const repo = str(opts.get('repo'));
    if (repo !== undefined && !REPO.test(repo)) return ephemeral('Give the repository as owner/name.');
    const res = await setPaused(kv, { paused, ...(repo ? { repo } : {}), by: byOf(actorOf(i)), now: now() });
    const what = res.scope === 'global' ? 'everything' : res.scope;
    if (!res.changed) return ephemeral(`${what} was already ${paused ? 'paused' : 'running'}.`);
    return ephemeral(
      paused
        ? `⏸️ Paused ${what}: no new runs start and nothing is dispatched; waiting runs stay where they are.`
        : `▶️ Resumed ${what}.`,
    );
  }

  async function approve(i: APIInteraction, opts: Map<string, Option>): Promise<APIInteractionResponse> {
    const runId = str(opts.get('run'));
    const shown = str(opts.get('plan'));
    const budgetOption = opts.get('budget');
    // In cents, as the cap is shown and kept.
    const budget =
      typeof budgetOption?.value === 'number' ? Math.round(budgetOption.value * 100) / 100 : undefined;
    if (!runId) return ephemeral('Give a run.');
    const run = await findRun(runId);
    const refused = await guard(i, 'approve', run?.id ?? runId, run?.subject.repo);
    if (refused) return refused;
    // Discord enforces the option's bounds; the request is checked all the same.
    if (
      budgetOption !== undefined &&
      (budget === undefined || !Number.isFinite(budget) || budget < MIN_BUDGET_USD || budget > MAX_BUDGET_USD)
    )
      return ephemeral(
        `\`budget\` is a USD amount from ${MIN_BUDGET_USD} to ${MAX_BUDGET_USD.toLocaleString('en-US')}.`,
      );
    if (!run) return ephemeral(`No run \`${truncate(runId, 80)}\`.`);
    const gate = run.gate;
    if (run.status !== 'waiting' || !gate || gate.kind === 'agent') {
      return ephemeral(`Run \`${run.id}\` is not waiting for an approval (it is ${run.status}).`);
    }
    const actor = actorOf(i);
    if (budget !== undefined && gate.kind !== 'budget')
      return ephemeral(
        `Run \`${run.id}\` is waiting at ${gate.node} for ${gate.kind === 'approval' ? 'a plan approval' : `a ${gate.kind} decision`}, not at a budget gate: \`budget\` sets a new spend cap there only.`,
      );
    // Without `plan`, never approve blind: show the plan privately with an Approve button bound to it.
    // A new cap given at a budget gate is the decision itself (the gate's prompt named the spend).
    if (shown === undefined && gate.binding !== undefined && budget === undefined) {
      const events = await engine.listEvents(run.id, { version: run.version });
      const body = renderLiveMessage(run, { workflow: workflowOf(run), events });
      return message(
        { ...body, content: `Review plan \`${truncate(gate.binding, 60)}\`, then approve it here.` },
        { ephemeral: true },
      );
    }
    const binding = shown ?? gate.binding;
    const refusal = await signalOrRefuse(run.id, {
      type: 'approve',
      by: byOf(actor),
      ...(binding !== undefined ? { binding } : {}),
      ...(budget !== undefined ? { budget } : {}),
    });
    if (refusal) return refusal;
    const version =
      budget !== undefined
        ? ` with a spend cap of $${budget.toFixed(2)}`
        : gate.kind === 'budget'
          ? ' (the cap raised by its starting amount)'
          : gate.binding !== undefined
            ? ` (plan version \`${truncate(gate.binding, 60)}\`)`
            : '';
    return message(
      textMessage(
        `✅ <@${actor.userId}> approved \`${run.id}\` ${subjectLabel(run)} at ${gate.node}${version}.`,
      ),
    );
  }

  async function reject(i: APIInteraction, opts: Map<string, Option>): Promise<APIInteractionResponse> {
    const runId = str(opts.get('run'));
    const reason = str(opts.get('reason'));
    if (!runId) return ephemeral('Give a run.');
    const run = await findRun(runId);
    // Rejecting is part of approving: the same people may do it.
    const refused = await guard(i, 'approve', run?.id ?? runId, run?.subject.repo);
    if (refused) return refused;
    if (!run) return ephemeral(`No run \`${truncate(runId, 80)}\`.`);
    const actor = actorOf(i);
    const refusal = await signalOrRefuse(run.id, {
      type: 'reject',
      by: byOf(actor),
      ...(reason ? { reason } : {}),
    });
    if (refusal) return refusal;
    return message(
      textMessage(
        `🚫 <@${actor.userId}> rejected \`${run.id}\` ${subjectLabel(run)}${reason ? `: ${reason}` : ''}.`,
      ),
    );
  }

  async function retry(i: APIInteraction, opts: Map<string, Option>): Promise<APIInteractionResponse> {
    const runId = str(opts.get('run'));
    if (!runId) return ephemeral('Give a run.');
    const run = await findRun(runId);
    const refused = await guard(i, 'retry', run?.id ?? runId, run?.subject.repo);
    if (refused) return refused;
    if (!run) return ephemeral(`No run \`${truncate(runId, 80)}\`.`);
    const actor = actorOf(i);
    const refusal = await signalOrRefuse(run.id, { type: 'retry', by: byOf(actor) });
    if (refusal) return refusal;
    return message(
      textMessage(
        `🔁 <@${actor.userId}> retried \`${run.id}\` ${subjectLabel(run)} at ${run.node ?? 'start'}.`,
      ),
    );
  }

  async function cancel(i: APIInteraction, opts: Map<string, Option>): Promise<APIInteractionResponse> {
    const runId = str(opts.get('run'));
    const reason = str(opts.get('reason'));
    if (!runId) return ephemeral('Give a run.');
    const run = await findRun(runId);
    const refused = await guard(i, 'cancel', run?.id ?? runId, run?.subject.repo);
    if (refused) return refused;
    if (!run) return ephemeral(`No run \`${truncate(runId, 80)}\`.`);
    const actor = actorOf(i);
    const refusal = await signalOrRefuse(run.id, {
      type: 'cancel',
      by: byOf(actor),
      ...(reason ? { reason } : {}),
    });
    if (refusal) return refusal;
    return message(
      textMessage(
        `⏹️ <@${actor.userId}> cancelled \`${run.id}\` ${subjectLabel(run)}${reason ? `: ${reason}` : ''}.`,
      ),
    );
  }

  async function route(
    i: APIInteraction,
    sub: string | undefined,
    opts: Map<string, Option>,
  ): Promise<APIInteractionResponse> {
    if (sub !== 'pr') return ephemeral('Unknown /route subcommand.');
    const refused = await guard(i, 'route');
    if (refused) return refused;
    const policy = await deps.policy();
    const repo = repoOption(str(opts.get('repo')), policy);
    const pr = opts.get('pr')?.value;
    const enabled = opts.get('enabled')?.value;
    if (typeof pr !== 'number' || !Number.isInteger(pr) || pr < 1 || typeof enabled !== 'boolean') {
      return ephemeral('Give a pull request number and enabled true or false.');
    }
    await keepToken(i);
    const res = await start(i, {
      workflow: ROUTE_PR_WORKFLOW,
      subject: { repo, issue: pr, key: `${repo}#${pr}#route#${i.id}` },
      trigger: trigger(i),
      input: { repo, pr, enabled },
      idempotencyKey: `discord:${i.id}`,
      concurrency: 'attach',
    });
    return 'type' in res ? res : deferred();
  }

  /** Send a signal; a signal that does not fit the run's state is an ephemeral explanation. */
  async function signalOrRefuse(runId: string, signal: Signal): Promise<APIInteractionResponse | null> {
    try {
      await engine.signal(runId, signal);
      return null;
    } catch (err) {
      if (err instanceof StaleApprovalError) {
        return ephemeral(
          '⚠️ The plan changed after the version you approved, so the approval was refused. Review the current plan and approve again.',
        );
      }
      if (err instanceof InvalidSignalError) return ephemeral(`⚠️ ${err.message}.`);
      throw err;
    }
  }

  // ------------------------------------------------------------------------------- buttons

  async function button(i: APIMessageComponentInteraction): Promise<APIInteractionResponse> {
    const id = decodeButtonId(i.data.custom_id);
    if (!id) return ephemeral('This button is not ours (or too old).');
    const run = await engine.getRun(id.runId);
    const refused = await guard(i, BUTTON_COMMAND[id.action]!, id.runId, run?.subject.repo);
    if (refused) return refused;
    if (!run) return ephemeral(`No run \`${id.runId}\`.`);
    if (id.action === 'edit') return openPlanEditor(run, id.binding);
    const by = byOf(actorOf(i));
    const signal: Signal =
      id.action === 'approve'
        ? (() => {
            const binding = resolveShownBinding(id.binding, run.gate?.binding);
            return { type: 'approve', by, ...(binding !== undefined ? { binding } : {}) };
          })()
        : id.action === 'reject'
          ? { type: 'reject', by, reason: 'rejected from Discord' }
          : { type: 'cancel', by, reason: 'cancelled from Discord' };
    const refusal = await signalOrRefuse(run.id, signal);
    if (refusal) return refusal;
    const after = (await engine.getRun(run.id)) ?? run;
    const events = await engine.listEvents(after.id, { version: after.version });
    return {
      type: ResponseType.UpdateMessage,
      data: renderLiveMessage(after, { workflow: workflowOf(after), events }),
    };
  }

  /** The Edit plan button: a modal with the plan shown on the message, if it is still the gate's. */
  function openPlanEditor(run: Run, shown: string | undefined): APIInteractionResponse {
    const plan = run.data.plan;
    if (!planEditable(run) || !isPlan(plan)) {
      return ephemeral(`Run \`${run.id}\` has no plan waiting for approval (it is ${run.status}).`);
    }
    if (resolveShownBinding(shown, run.gate?.binding) !== plan.version) {
      return ephemeral('⚠️ The plan changed since this message was drawn: edit the current one.');
    }
    return planEditModal(run, plan);
  }

  /** A submitted plan edit: validate, store as a new plan version, rebind the gate, redraw the message. */
  async function planEdited(i: APIModalSubmitInteraction): Promise<APIInteractionResponse> {
    const id = decodeButtonId(i.data.custom_id);
    if (id?.action !== 'edit') return ephemeral('This form is not ours (or too old).');
    const run = await engine.getRun(id.runId);
    const refused = await guard(i, 'approve', id.runId, run?.subject.repo);
    if (refused) return refused;
    if (!run) return ephemeral(`No run \`${id.runId}\`.`);
    const plan = run.data.plan;
    const shown = resolveShownBinding(id.binding, run.gate?.binding);
    if (!planEditable(run) || !isPlan(plan) || shown !== plan.version) {
      return ephemeral(
        '⚠️ The plan changed (or was decided) while you edited it, so your edit was not applied.',
      );
    }
    const text = i.data.components
      .flatMap((row) => ('components' in row ? row.components : 'component' in row ? [row.component] : []))
      .find((c) => c.custom_id === PLAN_TEXT_INPUT);
    const value = text && 'value' in text && typeof text.value === 'string' ? text.value : '';
    const tasks = parsePlanText(value, editableAgents(run));
    const actor = actorOf(i);
    const by = byOf(actor);
    const next = editPlan(plan, tasks, by, now().toISOString());
    if (next.version === plan.version) return ephemeral('Nothing changed: the plan is the same.');
    try {
      await engine.rebindGate(run.id, {
        expected: plan.version,
        binding: next.version,
        data: { plan: next },
        prompt: `Approve plan ${next.version} (${next.tasks.length} task${next.tasks.length === 1 ? '' : 's'}, edited by ${by}).`,
        event: {
          type: 'plan.edited',
          by,
          detail: {
            from: plan.version,
            to: next.version,
            interactionId: i.id,
            tasks: next.tasks.map((t) => ({ id: t.id, agent: t.agent })),
          },
        },
      });
    } catch (err) {
      if (err instanceof StaleApprovalError || err instanceof InvalidSignalError) {
        return ephemeral(
          '⚠️ The plan changed (or was decided) while you edited it, so your edit was not applied.',
        );
      }
      throw err;
    }
    const after = (await engine.getRun(run.id)) ?? run;
    const events = await engine.listEvents(after.id, { version: after.version });
    return {
      type: ResponseType.UpdateMessage,
      data: renderLiveMessage(after, { workflow: workflowOf(after), events }),
    };
  }

  // -------------------------------------------------------------------------- autocomplete

  async function autocomplete(
    i: APIInteraction & { data: { name: string; options?: Option[] } },
  ): Promise<APIInteractionResponse> {
    const typed = i.data.name;
    // Reject is part of approving (the same people, the same waiting runs).
    const command = (typed === 'reject' ? 'approve' : typed) as CommandName;
    const { values } = readOptions(i.data.options);
    const focused = [...values.values()].find((o) => o.focused);
    const empty: APIInteractionResponse = {
      type: ResponseType.ApplicationCommandAutocompleteResult,
      data: { choices: [] },
    };
    if (focused?.name !== 'run' || !['status', 'approve', 'cancel', 'retry'].includes(command)) return empty;
    // Run ids and repos are not for everyone: no allowlist (or channel approver role), no suggestions.
    const policy = await deps.policy();
    const actor = actorOf(i);
    const mayDecide = policy.channels.some((c) => isApprover(c.approvers, actor));
    if (!authorize(policy, command, actor).allowed && !(mayDecide && command !== 'status')) return empty;
    const visible = (r: Run) =>
      command === 'status' || authorizeFor(policy, command, actor, r.subject.repo).allowed;
    const q = String(focused.value ?? '')
      .trim()
      .toLowerCase()
      .replace(/^#/, '');
    let runs: Run[];
    if (command === 'approve') runs = (await activeRuns(SUGGEST_LIMIT)).filter((r) => r.status === 'waiting');
    else if (command === 'cancel') runs = await activeRuns(SUGGEST_LIMIT);
    else if (command === 'retry')
      runs = (await engine.listRuns({ limit: 100 })).filter(
        (r) => r.status === 'failed' || r.status === 'expired',
      );
    else runs = await engine.listRuns({ limit: 100 });
    runs = runs.filter(visible);
    const matches = (r: Run) =>
      q === '' ||
      r.id.toLowerCase().startsWith(q) ||
      (r.subject.repo?.toLowerCase().includes(q) ?? false) ||
      (r.subject.issue !== undefined &&
        (String(r.subject.issue) === q || subjectLabel(r).toLowerCase().includes(q))) ||
      r.workflow.toLowerCase().includes(q);
    const choices: APIApplicationCommandOptionChoice<string>[] = runs
      .filter(matches)
      .slice(0, Limits.autocompleteChoices)
      .map((r) => ({
        name: truncate(`${r.id} · ${subjectLabel(r)} · ${r.workflow} · ${r.status}`, Limits.choiceName),
        value: r.id,
      }));
    return { type: ResponseType.ApplicationCommandAutocompleteResult, data: { choices } };
  }

  // ------------------------------------------------------------------------------ dispatch

  async function dispatch(i: APIInteraction): Promise<APIInteractionResponse> {
    // Fail closed: only configured guilds are served (a DM has no guild and is refused too).
    if (!guildAllowed(await deps.policy(), i.guild_id)) {
      if (i.type === InteractionType.ApplicationCommandAutocomplete) {
        return { type: ResponseType.ApplicationCommandAutocompleteResult, data: { choices: [] } };
      }
      await audit(i, commandNameOf(i), 'guild not configured');
      return ephemeral('⛔ Switchyard is not configured for this server.');
    }
    switch (i.type) {
      case InteractionType.ApplicationCommand: {
        const data = i.data as { name: string; options?: Option[] };
        const { sub, values } = readOptions(data.options);
        switch (data.name) {
          case 'plan':
            return plan(i, values);
          case 'status':
            return status(i, values);
          case 'approve':
            return approve(i, values);
          case 'cancel':
            return cancel(i, values);
          case 'reject':
            return reject(i, values);
          case 'retry':
            return retry(i, values);
          case 'route':
            return route(i, sub, values);
          case 'pause':
          case 'resume':
            return pauseCommand(i, data.name === 'pause', values);
          default:
            return ephemeral(`Unknown command /${truncate(String(data.name), 32)}.`);
        }
      }
      case InteractionType.MessageComponent:
        return button(i);
      case InteractionType.ModalSubmit:
        return planEdited(i);
      case InteractionType.ApplicationCommandAutocomplete:
        return autocomplete(i as APIInteraction & { data: { name: string; options?: Option[] } });
      default:
        return ephemeral('This kind of interaction is not supported.');
    }
  }

  return async (i) => {
    try {
      return await dispatch(i);
    } catch (err) {
      if (err instanceof DiscordInputError) return ephemeral(`⚠️ ${err.message}.`);
      // Never log the interaction itself: it carries the token.
      logger.error('discord interaction failed', {
        interactionId: i.id,
        type: i.type,
        error:
          err instanceof Error ? { name: err.name, message: err.message, stack: err.stack } : String(err),
      });
      if (i.type === InteractionType.ApplicationCommandAutocomplete) {
        return { type: ResponseType.ApplicationCommandAutocompleteResult, data: { choices: [] } };
      }
      return ephemeral(`Something went wrong on our side (reference \`${i.id}\`). It has been logged.`);
    }
  };
}
