import { actionsCallbackFunction } from '../lib/app/actions-callback.ts';

/** POST /callbacks/actions: lib/app/actions-callback.ts. */
export const handler = actionsCallbackFunction();
