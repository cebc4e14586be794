import type { WorkflowDefinition } from '../engine/workflow.ts';
import { deliver, loadBinding, saveBinding } from './binding.ts';
import { textMessage } from './render.ts';
import { ROUTE_PR_WORKFLOW } from './workflow-names.ts';
import type { DiscordWorkflowServices } from './workflow-services.ts';

export interface RoutePrInput {
  repo: string;
  pr: number;
  enabled: boolean;
}

/**
 * `/route pr`: switch agent routing on or off for one pull request. The toggle writes to GitHub
 * (label and comment), so it runs here in the worker; the interaction was answered with a deferral
 * and this node edits that answer with the outcome.
 */
export function routePrWorkflow<S extends DiscordWorkflowServices>(): WorkflowDefinition<S> {
  return {
    name: ROUTE_PR_WORKFLOW,
    version: 1,
    description: 'Turn agent routing on or off for a pull request, from Discord',
    start: 'toggle',
    deadlineMs: 15 * 60_000,
    nodes: {
      toggle: {
        title: 'Toggle PR routing',
        timeoutMs: 30_000,
        async handler(ctx) {
          const svc = ctx.services.discord;
          const { repo, pr, enabled } = ctx.run.data as unknown as RoutePrInput;
          const by = `discord:${ctx.run.trigger.actor ?? 'unknown'}`;
          const result = await svc.setPrRouting(
            { repo, pr, enabled, by },
            { runId: ctx.run.id, node: ctx.node, sink: ctx.emit },
          );
          const rest = svc.rest.withDryRunRecorder((call) =>
            ctx.emit({ type: 'discord.dry-run', node: ctx.node, by: ROUTE_PR_WORKFLOW, detail: { ...call } }),
          );
          const text =
            `🔀 Agent routing for ${repo}#${pr} is ${enabled ? 'on' : 'off'}` +
            (result.changed ? '' : ' (it already was)') +
            (result.summary ? `: ${result.summary}` : '');
          await ctx.effect(
            'answer',
            async () => {
              const found = await loadBinding(svc.store, ctx.run, svc.applicationId);
              if (!found) return null;
              const out = await deliver(svc.store, rest, found.binding, textMessage(text));
              await saveBinding(svc.store, ctx.run.id, out.binding, found.version, ctx.now.getTime());
              return out.route;
            },
            { scope: 'run' },
          );
          return { output: { routing: { enabled, changed: result.changed } } };
        },
      },
    },
    edges: [],
  };
}
