import { requireEnv } from '../lib/common/env.ts';
import { MetricName } from '../lib/common/metric-names.ts';
import { instrumented, metrics } from '../lib/common/observability.ts';
import {
  createDiscordHandler,
  type DiscordHandlerDeps,
  type LazyDiscordHandlerDeps,
} from '../lib/discord/handler.ts';
import type { HttpEvent, HttpResult } from '../lib/http/apigw.ts';

/**
 * POST /discord/interactions. Thin: adapt the API Gateway v2 event to the transport-independent
 * handler in lib/discord. Module load imports only the signature check (node:crypto) and the
 * endpoint, so a cold start and a PING load no AWS SDK. The first command imports the store, the
 * queue and the engine (lib/discord/runtime.ts) once; anything that touches GitHub runs in the
 * worker after a deferred answer.
 */
type Deps = DiscordHandlerDeps | LazyDiscordHandlerDeps;

export function makeHandler(deps: Deps | (() => Deps)): (event: HttpEvent) => Promise<HttpResult> {
  let core: ReturnType<typeof createDiscordHandler> | undefined;
  return async (event) => {
    core ??= createDiscordHandler(typeof deps === 'function' ? deps() : deps);
    const res = await core({
      method: event.requestContext?.http?.method ?? 'POST',
      headers: event.headers ?? {},
      body: event.body,
      isBase64Encoded: event.isBase64Encoded ?? false,
    });
    return { statusCode: res.status, headers: res.headers, body: res.body };
  };
}

/** Time to answer, as the AckLatency metric (alarmed well before Discord's 3 s). */
function withAckLatency(
  inner: (event: HttpEvent) => Promise<HttpResult>,
): (event: HttpEvent) => Promise<HttpResult> {
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
    services: async () => (await import('../lib/discord/runtime.ts')).servicesFromEnv(env),
  };
}

export const handler = instrumented(withAckLatency(makeHandler(() => defaultDeps())));
