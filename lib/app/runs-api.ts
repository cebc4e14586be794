import { makeRunsApi, type RunsApiDeps } from '../api/runs.ts';
import { instrumented } from '../common/observability.ts';
import type { LambdaHttpHandler } from '../http/apigw.ts';
import { storeFromEnv, VERSION } from './core.ts';
import { type DepsOrLoader, endpointHandler } from './http-function.ts';

/** GET /health, GET /runs, GET /runs/{id} (the /runs routes are IAM-authorized by API Gateway). */
export function makeHandler(deps: DepsOrLoader<RunsApiDeps>): LambdaHttpHandler {
  return endpointHandler(deps, makeRunsApi);
}

/** Workloads are read by the agents module, loaded only when asked. */
export function defaultDeps(env: NodeJS.ProcessEnv = process.env): RunsApiDeps {
  const store = storeFromEnv(env);
  return {
    store,
    version: VERSION,
    workloads: async () => (await import('../agents/work-queue.ts')).workloads(store),
  };
}

/** The deployed function: a missing TABLE_NAME fails the first request with its name. */
export function runsApiFunction(env: NodeJS.ProcessEnv = process.env) {
  return instrumented(makeHandler(() => defaultDeps(env)));
}
