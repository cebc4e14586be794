import { consoleFunction } from '../lib/app/console.ts';

/** GET /console, ANY /console/{proxy+}: lib/app/console.ts. */
export const handler = consoleFunction();
