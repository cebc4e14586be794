import { logger } from '../common/observability.ts';
import type { Reporter } from '../engine/engine.ts';
import type { NewEvent, Run, RunEvent } from '../engine/types.ts';
import type { RunStore } from '../store/port.ts';
import { deliver, isPermanentDiscordFailure, loadBinding, saveBinding } from './binding.ts';
import { escapeDiscordInline } from './escape.ts';
import { type MessageBody, renderRunMessage, textMessage, type WorkflowView } from './render.ts';
import type { DiscordCall, DiscordRest } from './rest.ts';
import { SELF_REPORTING_WORKFLOWS } from './workflow-names.ts';

export interface DiscordReporterDeps {
  store: RunStore;
  rest: DiscordRest;
  applicationId?: string;
  notifyRole?: string;
  now?: () => Date;
}

function bodyFor(
  run: Run,
  workflow: WorkflowView | undefined,
  events: readonly RunEvent[],
  notifyRole: string | undefined,
): MessageBody | undefined {
  if (SELF_REPORTING_WORKFLOWS.has(run.workflow)) {
    // These workflows write their own messages; only an unhappy ending is ours to show.
    if (run.status !== 'failed' && run.status !== 'expired' && run.status !== 'cancelled') return undefined;
    return textMessage(
      `❌ \`${run.workflow}\` ${run.status}: ${run.reason ? escapeDiscordInline(run.reason) : 'no reason recorded'} (run \`${run.id}\`)`,
    );
  }
  return renderRunMessage(run, { workflow, events, notifyRole });
}

/**
 * Keeps one Discord message per run up to date. The worker calls it after each committed state
 * change (at most once per version). Runs with no Discord binding are left alone.
 */
export function createDiscordReporter(deps: DiscordReporterDeps): Reporter {
  const now = deps.now ?? (() => new Date());
  return {
    name: 'discord',
    async report(run, ctx) {
      const found = await loadBinding(deps.store, run, deps.applicationId);
      if (!found) return;
      const body = bodyFor(run, ctx.workflow, ctx.events, deps.notifyRole);
      if (!body) return;
      const dryRuns: DiscordCall[] = [];
      const rest = deps.rest.withDryRunRecorder((call) => dryRuns.push(call));
      let outcome: Awaited<ReturnType<typeof deliver>>;
      try {
        outcome = await deliver(deps.store, rest, found.binding, body);
      } catch (err) {
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
      for (const call of dryRuns) {
        const event: NewEvent = { type: 'discord.dry-run', by: 'discord-reporter', detail: { ...call } };
        await deps.store.appendEvent(run.id, event);
      }
      if (JSON.stringify(outcome.binding) !== JSON.stringify(found.binding)) {
        const saved = await saveBinding(deps.store, run.id, outcome.binding, found.version, now().getTime());
        // Lost to a rebind (a newer /plan attached to this run): the next report goes there.
        if (!saved) logger.info('discord binding changed while reporting', { runId: run.id });
      }
      logger.debug('discord report', { runId: run.id, version: run.version, route: outcome.route });
    },
  };
}
