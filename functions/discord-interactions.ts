import { queueFromEnv, storeFromEnv } from '../lib/app/core.ts';
import { requireEnv } from '../lib/common/env.ts';
import { MetricName } from '../lib/common/metric-names.ts';
import { instrumented, logger, metrics } from '../lib/common/observability.ts';
import { createDiscordHandler, type DiscordHandlerDeps, policyFromYamlFile } from '../lib/discord/handler.ts';
import { discordWorkflowDefinitions } from '../lib/discord/workflows.ts';
import { Engine } from '../lib/engine/engine.ts';
import type { HttpEvent, HttpResult } from '../lib/http/apigw.ts';
import { buildRegistry } from '../lib/workflows/index.ts';

/**
 * POST /discord/interactions. Thin: adapt the API Gateway v2 event to the transport-independent
 * handler in lib/discord. Only the DynamoDB store and the SQS client are loaded here; anything
 * that touches GitHub runs in the worker after a deferred answer.
 */
export function makeHandler(
  deps: DiscordHandlerDeps | (() => DiscordHandlerDeps),
): (event: HttpEvent) => Promise<HttpResult> {
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

/** Built on first use, so importing this module (tests, the local stack) needs no environment. */
export function defaultDeps(env: NodeJS.ProcessEnv = process.env): DiscordHandlerDeps {
  const store = storeFromEnv(env);
  const engine = new Engine({
    store,
    queue: queueFromEnv(env),
    // Graphs only: starting and signalling runs needs node names, not the worker's services.
    workflows: buildRegistry({}, discordWorkflowDefinitions()),
    services: {},
  });
  logger.debug('discord handler ready');
  return {
    publicKey: requireEnv('DISCORD_PUBLIC_KEY', env),
    engine,
    store,
    policy: policyFromYamlFile(env.SWITCHYARD_CONFIG || 'config/switchyard.yml'),
  };
}

export const handler = instrumented(withAckLatency(makeHandler(() => defaultDeps())));
