import { workerFunction } from '../lib/app/worker-function.ts';

/** SQS worker: lib/app/worker-function.ts. */
export const handler = workerFunction();
