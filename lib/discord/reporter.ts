import { logger } from '../common/observability.ts';
import type { Reporter } from '../engine/engine.ts';
import type { RunStore } from '../engine/ports.ts';
import type { NewEvent, Run, RunEvent } from '../engine/types.ts';
import {
  BINDING_GROUP,
  type DiscordBinding,
  deliver,
  isPermanentDiscordFailure,
  loadBinding,
  saveBinding,
} from './binding.ts';
import { type ChannelsPolicy, channelFor } from './channels.ts';
import { DiscordNotFoundError } from './errors.ts';
import { escapeDiscordInline } from './escape.ts';
import { gateKey, mentionMessage, renderLiveMessage } from './live-message.ts';
import { type MessageBody, textMessage, type WorkflowView } from './render.ts';
import type { DiscordCall, DiscordRest } from './rest.ts';
import { SELF_REPORTING_WORKFLOWS } from './workflow-names.ts';

type ReportPolicy = ChannelsPolicy & { notifyRole?: string };

export interface DiscordReporterDeps {
  store: RunStore;
  rest: DiscordRest;
  applicationId?: string;
  /** Role mentioned when a gate for a person opens on a run with no channel mapping of its own. */
  notifyRole?: string;
  /**
   * Configured guilds and the channel per repository, read per report (runtime config changes
   * apply), with `discord.notifyRole` (wins over `notifyRole` above). Absent: no channel messages
   * and no guild check (tests of the interaction message only).
   */
  channels?: () => ReportPolicy | Promise<ReportPolicy>;
  now?: () => Date;
}

/** KV group of a run's message in its repository's channel (the interaction's own is `discord`). */
export const CHANNEL_BINDING_GROUP = 'discord-channel';

function bodyFor(
  run: Run,
  workflow: WorkflowView | undefined,
  events: readonly RunEvent[],
): MessageBody | undefined {
  if (SELF_REPORTING_WORKFLOWS.has(run.workflow)) {
    // These workflows write their own messages; only an unhappy ending is ours to show.
    if (run.status !== 'failed' && run.status !== 'expired' && run.status !== 'cancelled') return undefined;
    return textMessage(
      `❌ \`${run.workflow}\` ${run.status}: ${run.reason ? escapeDiscordInline(run.reason) : 'no reason recorded'} (run \`${run.id}\`)`,
    );
  }
  return renderLiveMessage(run, { workflow, events });
}

/** One place a run is shown: the interaction's message, or the bot's message in the mapped channel. */
interface Target {
  group: string;
  binding: DiscordBinding;
  version: number;
  /** Role to mention once per gate opening, if any. */
  mention?: string;
  /** The channel's guild must be checked through the API before the first post. */
  verifyGuild: boolean;
}

/**
 * Keeps one Discord message per run and place up to date: the message of the interaction that
 * started it (if any), and one bot message in the channel its repository maps to (whatever
 * started the run). The worker calls it after each committed state change (at most once per
 * version). Messages go only to configured guilds.
 */
export function createDiscordReporter(deps: DiscordReporterDeps): Reporter {
  const now = deps.now ?? (() => new Date());

  async function targets(run: Run, policy: ReportPolicy | undefined): Promise<Target[]> {
    const out: Target[] = [];
    const found = await loadBinding(deps.store, run, deps.applicationId);
    const mapping = policy ? channelFor(policy.channels, run.subject.repo) : undefined;
    if (found) {
      const inMapped = mapping !== undefined && found.binding.channelId === mapping.channel;
      const role = inMapped ? mapping.mention : mapping ? undefined : (policy?.notifyRole ?? deps.notifyRole);
      if (policy && !(found.binding.guildId && policy.guilds.includes(found.binding.guildId))) {
        logger.warn('discord report skipped: guild not configured', { runId: run.id });
      } else {
        out.push({
          group: BINDING_GROUP,
          binding: found.binding,
          version: found.version,
          ...(role ? { mention: role } : {}),
          verifyGuild: false,
        });
      }
      if (inMapped) return out;
    }
    if (!mapping || !policy) return out;
    const stored = await deps.store.kvGet<DiscordBinding>(CHANNEL_BINDING_GROUP, run.id);
    const binding = stored?.value ?? { channelId: mapping.channel };
    out.push({
      group: CHANNEL_BINDING_GROUP,
      binding,
      version: stored?.version ?? 0,
      ...(mapping.mention ? { mention: mapping.mention } : {}),
      verifyGuild: binding.guildId === undefined || !policy.guilds.includes(binding.guildId),
    });
    return out;
  }

  /** The channel's guild, or undefined when it is not a configured one (or not a channel we can see). */
  async function guildOf(
    rest: DiscordRest,
    channelId: string,
    guilds: readonly string[],
  ): Promise<string | undefined> {
    if (await rest.isDryRun()) return guilds[0] ?? undefined;
    try {
      const channel = await rest.getChannel(channelId);
      return channel.guild_id && guilds.includes(channel.guild_id) ? channel.guild_id : undefined;
    } catch (err) {
      if (err instanceof DiscordNotFoundError) return undefined;
      throw err;
    }
  }

  async function reportTo(
    run: Run,
    target: Target,
    body: MessageBody,
    policy: ChannelsPolicy | undefined,
    current: (() => Promise<boolean>) | undefined,
  ): Promise<void> {
    // The fence: a late writer (an older version than the message shows, or a claim that
    // lapsed) drops its update rather than overwrite a newer state.
    const shownVersion = target.binding.shownVersion;
    if (shownVersion !== undefined && shownVersion >= run.version) return;
    if (current && !(await current())) return;
    const dryRuns: DiscordCall[] = [];
    const rest = deps.rest.withDryRunRecorder((call) => dryRuns.push(call));
    let binding = target.binding;
    const record = async () => {
      for (const call of dryRuns.splice(0)) {
        const event: NewEvent = { type: 'discord.dry-run', by: 'discord-reporter', detail: { ...call } };
        await deps.store.appendEvent(run.id, event);
      }
    };
    try {
      if (target.verifyGuild && binding.channelId) {
        const guildId = await guildOf(rest, binding.channelId, policy?.guilds ?? []);
        if (!guildId) {
          logger.warn('discord report skipped: mapped channel is not in a configured guild', {
            runId: run.id,
            channelId: binding.channelId,
          });
          await deps.store.appendEvent(run.id, {
            type: 'discord.report.refused',
            by: 'discord-reporter',
            detail: { channelId: binding.channelId, reason: 'channel not in a configured guild' },
          });
          return;
        }
        binding = { ...binding, guildId };
      }
      const outcome = await deliver(deps.store, rest, binding, body);
      binding = { ...outcome.binding, shownVersion: run.version };
      const key = gateKey(run);
      const messageId = binding.botMessageId ?? binding.originalMessageId;
      if (target.mention && key && binding.mentioned !== key && binding.channelId) {
        await rest.createMessage(binding.channelId, mentionMessage(run, target.mention, messageId));
        binding = { ...binding, mentioned: key };
      }
    } catch (err) {
      await record();
      // A missing permission or a deleted channel will not fix itself by redelivery.
      if (!isPermanentDiscordFailure(err)) throw err;
      logger.warn('discord report dropped', { runId: run.id, error: (err as Error).message });
      await deps.store.appendEvent(run.id, {
        type: 'discord.report.failed',
        by: 'discord-reporter',
        detail: { error: (err as Error).message, status: (err as { status?: number }).status ?? null },
      });
      return;
    }
    await record();
    if (JSON.stringify(binding) !== JSON.stringify(target.binding)) {
      const saved = await saveBinding(
        deps.store,
        run.id,
        binding,
        target.version,
        now().getTime(),
        target.group,
      );
      // Lost to a rebind (a newer /plan attached to this run): the next report goes there.
      if (!saved) logger.info('discord binding changed while reporting', { runId: run.id });
    }
  }

  return {
    name: 'discord',
    async report(run, ctx) {
      const policy = deps.channels ? await deps.channels() : undefined;
      const list = await targets(run, policy);
      if (list.length === 0) return;
      const body = bodyFor(run, ctx.workflow, ctx.events);
      if (!body) return;
      for (const target of list) await reportTo(run, target, body, policy, ctx.current);
      logger.debug('discord report', { runId: run.id, version: run.version, targets: list.length });
    },
  };
}
