import { createAgentDeliveryHook } from '../lib/agents/hooks.ts';
import { createIssueEditHook } from '../lib/agents/replan.ts';
import { queueFromEnv, storeFromEnv } from '../lib/app/core.ts';
import { configRefreshMs } from '../lib/common/config-refresh.ts';
import { ConfigurationError } from '../lib/common/errors.ts';
import { instrumented } from '../lib/common/observability.ts';
import { getSecretValue, parseWebhookSecrets } from '../lib/common/secrets.ts';
import { Engine } from '../lib/engine/engine.ts';
import type { RunStore } from '../lib/engine/ports.ts';
import { createCommentCommandHook } from '../lib/github/comment-commands.ts';
import { type Delivery, type DeliveryOutcome, handleGitHubWebhook } from '../lib/github/webhook.ts';
import type { HttpEvent, HttpResult } from '../lib/http/apigw.ts';
import type { WorkQueue } from '../lib/queue/port.ts';
import { configPath, loadConfigSource, workflowTuning } from '../lib/routing/config.ts';
import { createDeliveryHandler } from '../lib/routing/ingress.ts';
import { ConfigProvider } from '../lib/routing/repo-config.ts';
import { buildRegistry, WORKFLOW_DEFINITIONS } from '../lib/workflows/index.ts';

/**
 * POST /github/webhook. Thin: the core (lib/github/webhook.ts) verifies and parses; the hub
 * (lib/routing/ingress.ts) records a guard signal or starts a run idempotently on the delivery
 * id; the answer is 202 well inside GitHub's 10 s. The local stack serves this same handler
 * through its API Gateway v2 event adapter.
 */
export interface GitHubWebhookDeps {
  /** Current secret first, then older ones accepted during rotation. */
  secrets: () => Promise<readonly string[]>;
  onDelivery: (d: Delivery) => Promise<DeliveryOutcome>;
}

export function makeHandler(deps: GitHubWebhookDeps): (event: HttpEvent) => Promise<HttpResult> {
  return async (event) => {
    const res = await handleGitHubWebhook(
      { secrets: deps.secrets, onDelivery: deps.onDelivery },
      {
        method: event.requestContext?.http?.method ?? 'POST',
        headers: event.headers ?? {},
        body: event.body,
        isBase64Encoded: event.isBase64Encoded,
      },
    );
    return { statusCode: res.statusCode, headers: res.headers, body: res.body };
  };
}

/** Build the hub's delivery handler from a store, a queue and the config file. */
export async function createGitHubIngress(opts: {
  store: RunStore;
  queue: WorkQueue;
  configFile?: string;
  /** For SWITCHYARD_CONFIG_REFRESH_SECONDS (default: process.env). */
  env?: NodeJS.ProcessEnv;
}): Promise<(d: Delivery) => Promise<DeliveryOutcome>> {
  const central = await loadConfigSource(opts.configFile ?? configPath());
  const tuning = Object.fromEntries(
    WORKFLOW_DEFINITIONS.map((w) => [w.name, workflowTuning(central.config, w.name)]),
  );
  // Ingress only starts runs; it never executes a step, so it needs no services.
  const engine = new Engine<unknown>({
    store: opts.store,
    queue: opts.queue,
    workflows: buildRegistry(tuning),
    services: {},
  });
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

async function secretsFromEnv(): Promise<readonly string[]> {
  const secrets = parseWebhookSecrets(await getSecretValue('GITHUB_WEBHOOK_SECRET'));
  // Our misconfiguration, not bad input: fail loudly (5xx, alarm) rather than refuse every delivery.
  if (secrets.length === 0)
    throw new ConfigurationError('missing GITHUB_WEBHOOK_SECRET (or GITHUB_WEBHOOK_SECRET_SECRET_ARN)');
  return secrets;
}

// Set up once per container: the store, queue, config and engine are reused across invocations.
let ingress: Promise<(d: Delivery) => Promise<DeliveryOutcome>> | undefined;
const defaultDeps: GitHubWebhookDeps = {
  secrets: secretsFromEnv,
  onDelivery: async (d) => {
    ingress ??= createGitHubIngress({ store: storeFromEnv(), queue: queueFromEnv() }).catch(
      (err: unknown) => {
        ingress = undefined; // a bad config or an unreachable table must not stick for the container's life
        throw err;
      },
    );
    return (await ingress)(d);
  },
};

export const handler = instrumented(makeHandler(defaultDeps));
