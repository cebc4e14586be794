import { makeRunsApi, type RunsApiDeps } from '../lib/api/runs.ts';
import { storeFromEnv, VERSION } from '../lib/app/core.ts';
import { instrumented } from '../lib/common/observability.ts';
import type { HttpEvent, HttpResult } from '../lib/http/apigw.ts';

/** GET /health, GET /runs, GET /runs/{id} (the /runs routes are IAM-authorized by API Gateway). */
export function makeHandler(
  deps: RunsApiDeps | (() => RunsApiDeps),
): (event: HttpEvent) => Promise<HttpResult> {
  let api: ((event: HttpEvent) => Promise<HttpResult>) | undefined;
  return async (event) => {
    api ??= makeRunsApi(typeof deps === 'function' ? deps() : deps);
    return api(event);
  };
}

/**
 * Built on first use: importing the module needs no environment; a missing TABLE_NAME fails the
 * first request with its name. Workloads are read by the agents module, loaded only when asked.
 */
export const handler = instrumented(
  makeHandler(() => ({
    store: storeFromEnv(),
    version: VERSION,
    workloads: async () => {
      const { workloads } = await import('../lib/agents/work-queue.ts');
      return workloads(storeFromEnv());
    },
  })),
);
