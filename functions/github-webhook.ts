import { githubWebhookFunction } from '../lib/app/github-webhook.ts';

/** POST /github/webhook: lib/app/github-webhook.ts. */
export const handler = githubWebhookFunction();
