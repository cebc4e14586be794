import type { NewEvent } from '../engine/types.ts';
import type { GitHubClientFactory } from '../github/client.ts';
import { AgentRegistry } from './agents.ts';
import type { SwitchyardConfig } from './config.ts';
import { prRoutingState } from './rules.ts';

/**
 * The per-PR routing toggle (DevOnboarder's `codex:route`, wired for real): a configured label
 * (`routing.prRouteLabel`, default `switchyard:route`) turns routing on or off for one pull
 * request. With `routing.prRequiresLabel` (the default) no rule fires on a PR without it.
 * Changes go through the permission-checked client of the `pr-toggle` identity, and leave a
 * comment saying who flipped it.
 */

export interface PrToggleDeps {
  github: GitHubClientFactory;
  config: SwitchyardConfig;
}

export interface PrToggleInput {
  repo: string;
  pr: number;
  enabled: boolean;
  /** Who asked (e.g. `discord:<user id>`). */
  by: string;
}

export interface PrToggleContext {
  runId?: string;
  node?: string;
  sink?: (event: NewEvent) => void;
}

export interface PrToggleResult {
  /** False when the PR already was in the requested state (nothing was written). */
  changed: boolean;
  enabled: boolean;
  label: string;
  dryRun: boolean;
  summary: string;
}

export async function setPrRouting(
  deps: PrToggleDeps,
  input: PrToggleInput,
  ctx: PrToggleContext = {},
): Promise<PrToggleResult> {
  const label = deps.config.routing.prRouteLabel;
  const client = deps.github.forAgent(new AgentRegistry(deps.config).identity('pr-toggle'), {
    ...(ctx.runId ? { runId: ctx.runId } : {}),
    ...(ctx.node ? { node: ctx.node } : {}),
    ...(ctx.sink ? { sink: ctx.sink } : {}),
  });
  const issue = await client.getIssue(input.repo, input.pr);
  const labels = (issue?.labels ?? []).flatMap((l) => (typeof l === 'string' ? [l] : l.name ? [l.name] : []));
  const current = issue ? prRoutingState(deps.config, labels) === 'on' : undefined;
  const base = { enabled: input.enabled, label, dryRun: client.dryRun };
  if (current === input.enabled) {
    return {
      ...base,
      changed: false,
      summary: `label ${label} already ${input.enabled ? 'present' : 'absent'}`,
    };
  }
  if (input.enabled) await client.addLabels(input.repo, input.pr, [label]);
  else await client.removeLabel(input.repo, input.pr, label);
  await client.createComment(
    input.repo,
    input.pr,
    `Switchyard routing is now **${input.enabled ? 'on' : 'off'}** for this pull request ` +
      `(label \`${label}\` ${input.enabled ? 'added' : 'removed'} by ${input.by}).`,
  );
  return {
    ...base,
    changed: true,
    summary: `label ${label} ${input.enabled ? 'added' : 'removed'}${client.dryRun ? ' (dry-run)' : ''}`,
  };
}
