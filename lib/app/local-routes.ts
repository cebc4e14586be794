import { configRefreshMs } from '../common/config-refresh.ts';
import { parseWebhookSecrets } from '../common/secrets.ts';
import { policyFromConfig } from '../discord/policy.ts';
import { policyWithVersions } from '../discord/policy-versions.ts';
import type { Route } from '../http/local-adapter.ts';
import type { StepQueue } from '../queue/port.ts';
import type { DynamoRunStore } from '../store/dynamodb.ts';
import { makeHandler as actionsCallbackHandler, createActionsCallbackDeps } from './actions-callback.ts';
import { makeHandler as callbacksHandler, createCallbackDeps } from './callbacks.ts';
import { makeHandler as consoleHandler } from './console.ts';
import { VERSION } from './core.ts';
import { makeHandler as discordHandler } from './discord.ts';
import { createGitHubIngress, makeHandler as githubHandler } from './github-webhook.ts';
import { makeHandler as runsHandler } from './runs-api.ts';
import type { WorkerApp } from './worker.ts';

/** The console's routes; on AWS one `/console/{proxy+}` route covers them. */
export const CONSOLE_ROUTES = [
  '/console',
  '/console/live',
  '/console/auth',
  '/console/static/{file}',
  '/console/runs/{id}',
  '/console/runs/{id}/live',
  '/console/runs/{id}/actions',
] as const;

export interface LocalRoutesDeps {
  store: DynamoRunStore;
  queue: StepQueue;
  env: NodeJS.ProcessEnv;
  app: WorkerApp;
}

/**
 * The routes of ARCHITECTURE.md §1, served by the same handler factories the Lambda functions
 * use (lib/app/*), over the local store and the in-process queue. Ingress engines here share the worker's
 * engine (graphs and queue are the same; ingress never executes steps).
 */
export async function localRoutes(deps: LocalRoutesDeps): Promise<Route[]> {
  const { store, queue, env, app } = deps;
  const runs = runsHandler({ store, version: VERSION, workloads: app.agents.workloads });
  const onDelivery = await createGitHubIngress({
    store,
    queue,
    configFile: env.SWITCHYARD_CONFIG ?? 'config/switchyard.yml',
    env,
  });
  const secrets = parseWebhookSecrets(env.GITHUB_WEBHOOK_SECRET);
  const github = githubHandler({ secrets: async () => secrets, onDelivery });
  // As the Discord function does: the newest pushed config version's policy, the file's as fallback.
  // (Read before the worker handles anything, so `app.config` is still the bundled file.)
  const { policy: bundled } = policyFromConfig(app.config);
  const discord = discordHandler({
    publicKey: env.DISCORD_PUBLIC_KEY ?? '',
    engine: app.engine,
    store,
    policy: policyWithVersions(store, async () => bundled, { maxAgeMs: configRefreshMs(env) }),
    workloads: async () => {
      const { formatWorkloads } = await import('../agents/work-queue.ts');
      return formatWorkloads(await app.agents.workloads());
    },
  });
  const callbacks = callbacksHandler(createCallbackDeps({ store, queue, env, engine: app.engine }));
  // The console on loopback, without sign-in (lib/console/handler.ts checks source and Host).
  const console = consoleHandler({
    store,
    engine: app.engine,
    policy: async () => app.config,
    access: { mode: 'loopback' },
    workloads: async () => (await import('../agents/work-queue.ts')).workloads(store, app.config),
  });
  const actionsCallback = actionsCallbackHandler(
    createActionsCallbackDeps({ store, queue, env, engine: app.engine, github: async () => app.github }),
  );
  return [
    ...CONSOLE_ROUTES.map((path) => ({
      method: path.endsWith('/actions') ? 'POST' : 'GET',
      path,
      handler: console,
    })),
    { method: 'POST', path: '/discord/interactions', handler: discord },
    { method: 'POST', path: '/github/webhook', handler: github },
    // Before `/callbacks/{token}`: the fixed path wins (as on API Gateway).
    { method: 'POST', path: '/callbacks/actions', handler: actionsCallback },
    { method: 'POST', path: '/callbacks/{token}', handler: callbacks },
    { method: 'GET', path: '/health', handler: runs },
    { method: 'GET', path: '/runs', handler: runs },
    { method: 'GET', path: '/runs/{id}', handler: runs },
  ];
}
