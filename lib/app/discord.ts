import { requireEnv } from '../common/env.ts';
import { MetricName } from '../common/metric-names.ts';
import { instrumented, metrics } from '../common/observability.ts';
import {
  createDiscordHandler,
  type DiscordHandlerDeps,
  type LazyDiscordHandlerDeps,
} from '../discord/handler.ts';
import type { LambdaHttpHandler } from '../http/apigw.ts';
import { type DepsOrLoader, endpointHandler } from './http-function.ts';

/**
 * POST /discord/interactions. This module is on the cold-start path: it imports only the
 * signature check (node:crypto) and the endpoint, so a cold start and a PING load no AWS SDK.
 * The first command imports the store, the queue and the engine (lib/discord/runtime.ts) once;
 * anything that touches GitHub runs in the worker after a deferred answer.
 */
type Deps = DiscordHandlerDeps | LazyDiscordHandlerDeps;

export function makeHandler(deps: DepsOrLoader<Deps>): LambdaHttpHandler {
  return endpointHandler(deps, createDiscordHandler);
}

/** Time to answer, as the AckLatency metric (alarmed well before Discord's 3 s). */
function withAckLatency(inner: LambdaHttpHandler): LambdaHttpHandler {
  return async (event) => {
    const started = performance.now();
    try {
      return await inner(event);
    } finally {
      metrics.addMetric(MetricName.AckLatency, 'Milliseconds', performance.now() - started);
    }
  };
}

/** Variables the services read on the first command, checked up front so a bad deploy fails by name. */
const SERVICE_ENV = ['TABLE_NAME', 'QUEUE_URL'] as const;

/**
 * Built on first use, so importing this module (tests, the local stack) needs no environment.
 * The services (AWS SDK clients, engine, policy) are imported on the first command, not here.
 */
export function defaultDeps(env: NodeJS.ProcessEnv = process.env): LazyDiscordHandlerDeps {
  const publicKey = requireEnv('DISCORD_PUBLIC_KEY', env);
  for (const name of SERVICE_ENV) requireEnv(name, env);
  return {
    publicKey,
    services: async () => (await import('../discord/runtime.ts')).servicesFromEnv(env),
  };
}

/** The deployed function. */
export function discordFunction(env: NodeJS.ProcessEnv = process.env) {
  return instrumented(withAckLatency(makeHandler(() => defaultDeps(env))));
}
