import { createAgentDeliveryHook } from '../agents/hooks.ts';
import { createIssueEditHook } from '../agents/replan.ts';
import { configRefreshMs } from '../common/config-refresh.ts';
import { ConfigurationError } from '../common/errors.ts';
import { loadOnce } from '../common/load-once.ts';
import { instrumented } from '../common/observability.ts';
import { getSecretValue, parseWebhookSecrets } from '../common/secrets.ts';
import type { RunStore } from '../engine/ports.ts';
import { createCommentCommandHook } from '../github/comment-commands.ts';
import { type Delivery, type DeliveryOutcome, handleGitHubWebhook } from '../github/webhook.ts';
import type { LambdaHttpHandler } from '../http/apigw.ts';
import type { StepQueue } from '../queue/port.ts';
import { configPath, loadConfigSource, workflowTuning } from '../routing/config.ts';
import { createDeliveryHandler } from '../routing/deliveries.ts';
import { ConfigProvider } from '../routing/repo-config.ts';
import { WORKFLOW_DEFINITIONS } from '../workflows/index.ts';
import { queueFromEnv, storeFromEnv } from './core.ts';
import { type DepsOrLoader, endpointHandler } from './http-function.ts';
import { signalOnlyEngine } from './signals.ts';

/**
 * POST /github/webhook. The core (lib/github/webhook.ts) verifies and parses; the hub
 * (lib/routing/deliveries.ts) records a guard signal or starts a run idempotently on the delivery
 * id; the answer is 202 well inside GitHub's 10 s.
 */
export interface GitHubWebhookDeps {
  /** Current secret first, then older ones accepted during rotation. */
  secrets: () => Promise<readonly string[]>;
  onDelivery: (d: Delivery) => Promise<DeliveryOutcome>;
}

export function makeHandler(deps: DepsOrLoader<GitHubWebhookDeps>): LambdaHttpHandler {
  return endpointHandler(deps, (d) => (req) => handleGitHubWebhook(d, req));
}

/** Build the hub's delivery handler from a store, a queue and the config file. */
export async function createGitHubIngress(opts: {
  store: RunStore;
  queue: StepQueue;
  configFile?: string;
  /** For SWITCHYARD_CONFIG_REFRESH_SECONDS (default: process.env). */
  env?: NodeJS.ProcessEnv;
}): Promise<(d: Delivery) => Promise<DeliveryOutcome>> {
  const central = await loadConfigSource(opts.configFile ?? configPath());
  const tuning = Object.fromEntries(
    WORKFLOW_DEFINITIONS.map((w) => [w.name, workflowTuning(central.config, w.name)]),
  );
  // Ingress only starts runs; it never executes a step, so it needs no services.
  const engine = signalOnlyEngine({ store: opts.store, queue: opts.queue, tuning });
  const config = new ConfigProvider({ central, store: opts.store, refreshMs: configRefreshMs(opts.env) });
  // Agents claim their deliveries first: workflow_run of a dispatched agent resumes its run,
  // a red default branch starts CI triage, a coverage check starts a coverage report; an edited
  // issue re-plans a run waiting for approval (or is noted on a run already approved); a command
  // comment (/approve, /reject, ...) acts on its subject's run.
  const hooks = [
    createAgentDeliveryHook({ engine, config }),
    createIssueEditHook({ engine }),
    createCommentCommandHook({ engine, config }),
  ];
  return createDeliveryHandler({ engine, queue: opts.queue, config, store: opts.store, hooks });
}

async function secretsFromEnv(env: NodeJS.ProcessEnv): Promise<readonly string[]> {
  const secrets = parseWebhookSecrets(await getSecretValue('GITHUB_WEBHOOK_SECRET', env));
  // Our misconfiguration, not bad input: fail loudly (5xx, alarm) rather than refuse every delivery.
  if (secrets.length === 0)
    throw new ConfigurationError('missing GITHUB_WEBHOOK_SECRET (or GITHUB_WEBHOOK_SECRET_SECRET_ARN)');
  return secrets;
}

/**
 * Production dependencies: secrets read per delivery (cached by lib/common/secrets.ts, so a
 * rotation is picked up), the hub built on the first verified delivery. A bad config or an
 * unreachable table is retried on the next delivery rather than sticking for the container's life.
 */
export function defaultDeps(env: NodeJS.ProcessEnv = process.env): GitHubWebhookDeps {
  const ingress = loadOnce(() =>
    createGitHubIngress({ store: storeFromEnv(env), queue: queueFromEnv(env), env }),
  );
  return {
    secrets: () => secretsFromEnv(env),
    onDelivery: async (d) => (await ingress())(d),
  };
}

/** The deployed function. */
export function githubWebhookFunction(env: NodeJS.ProcessEnv = process.env) {
  return instrumented(makeHandler(defaultDeps(env)));
}
