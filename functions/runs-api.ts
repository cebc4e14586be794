import { makeRunsApi, type RunsApiDeps } from '../lib/api/runs.ts';
import { storeFromEnv, VERSION } from '../lib/app/core.ts';
import { instrumented } from '../lib/common/observability.ts';
import type { HttpEvent, HttpResult } from '../lib/http/apigw.ts';

/** GET /health, GET /runs, GET /runs/{id} (the /runs routes are IAM-authorized by API Gateway). */
export function makeHandler(deps: RunsApiDeps): (event: HttpEvent) => Promise<HttpResult> {
  return makeRunsApi(deps);
}

const api = makeHandler({ store: storeFromEnv(), version: VERSION });
export const handler = instrumented(async (event: HttpEvent) => api(event));
