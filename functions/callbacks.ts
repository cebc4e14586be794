import { type CallbackDeps, handleCallback } from '../lib/agents/callbacks.ts';
import { deliverResult, type HubEngine } from '../lib/agents/results.ts';
import { AgentWorkQueue } from '../lib/agents/work-queue.ts';
import { queueFromEnv, storeFromEnv } from '../lib/app/core.ts';
import { instrumented } from '../lib/common/observability.ts';
import { Engine } from '../lib/engine/engine.ts';
import type { RunStore } from '../lib/engine/ports.ts';
import type { HttpEvent, HttpResult } from '../lib/http/apigw.ts';
import type { WorkQueue } from '../lib/queue/port.ts';
import { buildRegistry } from '../lib/workflows/index.ts';

/**
 * POST /callbacks/{token}: an HTTP agent's signed answer. Thin: the core (lib/agents/callbacks.ts)
 * checks method, content type, size, token, signature, JSON and one-time use; the hub delivers
 * the result to the waiting run (one conditional write and one queue send). The local stack
 * serves this same handler through its API Gateway v2 adapter.
 */
export function makeHandler(
  deps: CallbackDeps | (() => CallbackDeps),
): (event: HttpEvent) => Promise<HttpResult> {
  let resolved: CallbackDeps | undefined = typeof deps === 'function' ? undefined : deps;
  return async (event) => {
    resolved ??= (deps as () => CallbackDeps)();
    const token = event.pathParameters?.token ?? /^\/callbacks\/([^/]+)$/.exec(event.rawPath ?? '')?.[1];
    const res = await handleCallback(resolved, {
      method: event.requestContext?.http?.method ?? 'POST',
      token: token === undefined ? undefined : decodeURIComponent(token),
      headers: event.headers ?? {},
      body: event.body,
      isBase64Encoded: event.isBase64Encoded,
    });
    return { statusCode: res.statusCode, headers: res.headers, body: res.body };
  };
}

/** The callback core's dependencies over a store and a queue: an engine that only signals runs. */
export function createCallbackDeps(opts: {
  store: RunStore;
  queue: WorkQueue;
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
  /** The engine that signals runs (default: one over every known workflow graph, with no services). */
  engine?: HubEngine;
}): CallbackDeps {
  // Signalling never executes a step, so the engine needs the graphs but no services.
  const engine =
    opts.engine ??
    new Engine<unknown>({
      store: opts.store,
      queue: opts.queue,
      workflows: buildRegistry(),
      services: {},
      ...(opts.now ? { now: opts.now } : {}),
    });
  const work = new AgentWorkQueue(opts.store, opts.now ? { now: opts.now } : {});
  return {
    store: opts.store,
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.now ? { now: opts.now } : {}),
    resume: (result) => deliverResult(engine, work, result, opts.now),
  };
}

/** Production dependencies from the environment (TABLE_NAME, QUEUE_URL); built on first use, so importing this module needs no environment. */
export function defaultDeps(env: NodeJS.ProcessEnv = process.env): CallbackDeps {
  const store = storeFromEnv(env);
  const queue = queueFromEnv(env);
  return createCallbackDeps({ store, queue, env });
}

// Set up once per container (on the first request).
export const handler = instrumented(makeHandler(() => defaultDeps()));
