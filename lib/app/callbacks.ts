import { type CallbackDeps, handleCallback } from '../agents/callbacks.ts';
import type { HubEngine } from '../agents/results.ts';
import { instrumented } from '../common/observability.ts';
import type { RunStore } from '../engine/ports.ts';
import type { LambdaHttpHandler } from '../http/apigw.ts';
import type { StepQueue } from '../queue/port.ts';
import { queueFromEnv, storeFromEnv } from './core.ts';
import { type DepsOrLoader, endpointHandler } from './http-function.ts';
import { resultResumer } from './signals.ts';

/**
 * POST /callbacks/{token}: an HTTP agent's signed answer. The core (lib/agents/callbacks.ts)
 * checks method, content type, size, token, signature, JSON and one-time use; the hub delivers
 * the result to the waiting run (one conditional write and one queue send).
 */
export function makeHandler(deps: DepsOrLoader<CallbackDeps>): LambdaHttpHandler {
  return endpointHandler(deps, (d) => (req) => handleCallback(d, req));
}

/** The callback core's dependencies over a store and a queue: an engine that only signals runs. */
export function createCallbackDeps(opts: {
  store: RunStore;
  queue: StepQueue;
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
  /** The engine that signals runs (default: one over every known workflow graph, with no services). */
  engine?: HubEngine;
}): CallbackDeps {
  return {
    store: opts.store,
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.now ? { now: opts.now } : {}),
    resume: resultResumer(opts),
  };
}

/** Production dependencies from the environment (TABLE_NAME, QUEUE_URL). */
export function defaultDeps(env: NodeJS.ProcessEnv = process.env): CallbackDeps {
  return createCallbackDeps({ store: storeFromEnv(env), queue: queueFromEnv(env), env });
}

/** The deployed function: built on the first request, so importing it needs no environment. */
export function callbacksFunction(env: NodeJS.ProcessEnv = process.env) {
  return instrumented(makeHandler(() => defaultDeps(env)));
}
