import { getSecretValue } from '../common/secrets.ts';
import type { StartRunInput, StartRunResult } from '../engine/engine.ts';
import { type GitHubClientFactory, type Issue, splitRepo } from '../github/client.ts';
import type { SwitchyardConfig } from '../routing/config.ts';
import { setPrRouting } from '../routing/pr-toggle.ts';
import type { KvPort } from './binding.ts';
import { issueUrl } from './render.ts';
import { DiscordRest } from './rest.ts';
import type {
  DiscordWorkflowServices,
  PrRoutingInput,
  PrRoutingResult,
  ServiceCallContext,
} from './workflow-services.ts';

/**
 * Worker-side wiring of the Discord workflows. Lives apart from the ack path because it imports
 * the GitHub client (Octokit), which the interactions function must not load.
 */
export function discordRestFromEnv(env: NodeJS.ProcessEnv = process.env): DiscordRest {
  return new DiscordRest({
    ...(env.DISCORD_API_URL ? { baseUrl: env.DISCORD_API_URL } : {}),
    botToken: (opts) => getSecretValue('DISCORD_BOT_TOKEN', env, opts),
  });
}

/** Listing issues needs read access only; the plan acts as its own agent identity. */
const PLANNER_IDENTITY = { name: 'discord-plan', permissions: ['read'] as const };

export function createDiscordWorkerServices(opts: {
  rest: DiscordRest;
  store: KvPort;
  applicationId?: string | undefined;
  startRun: (input: StartRunInput) => Promise<StartRunResult>;
  github: GitHubClientFactory;
  /** The active config, for the PR routing toggle (lib/routing/pr-toggle.ts): read per call. */
  config: () => SwitchyardConfig;
  /** Replaces the routing module's toggle (only to observe it in tests). */
  setPrRouting?: (input: PrRoutingInput, ctx: ServiceCallContext) => Promise<PrRoutingResult>;
}): DiscordWorkflowServices['discord'] {
  return {
    rest: opts.rest,
    store: opts.store,
    ...(opts.applicationId ? { applicationId: opts.applicationId } : {}),
    startRun: opts.startRun,
    setPrRouting:
      opts.setPrRouting ??
      ((input, ctx) => setPrRouting({ github: opts.github, config: opts.config() }, input, ctx)),
    async listReadyIssues(repo, label, ctx) {
      const client = opts.github.forAgent(PLANNER_IDENTITY, ctx);
      const issues = await client.paginate<Issue>(
        'read',
        'GET /repos/{owner}/{repo}/issues',
        { ...splitRepo(repo), state: 'open', labels: label, sort: 'created', direction: 'asc' },
        100,
      );
      if (issues === undefined) return undefined;
      // The issues endpoint lists pull requests too; the plan is about issues.
      return issues
        .filter((i) => i.pull_request === undefined || i.pull_request === null)
        .map((i) => ({ number: i.number, title: i.title, url: i.html_url ?? issueUrl(repo, i.number) }));
    },
  };
}
