import { callbacksFunction } from '../lib/app/callbacks.ts';

/** POST /callbacks/{token}: lib/app/callbacks.ts. */
export const handler = callbacksFunction();
