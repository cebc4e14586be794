import { runsApiFunction } from '../lib/app/runs-api.ts';

/** GET /health, GET /runs, GET /runs/{id}: lib/app/runs-api.ts. */
export const handler = runsApiFunction();
