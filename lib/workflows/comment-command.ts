import type * as nodes from './comment-command-nodes.ts';
import { graph } from './graph.ts';

/**
 * A command in a GitHub comment (`/approve`, `/reject`, `/cancel`, `/retry`, `/hold`, `/unhold`):
 * confirm the author's permission, act on the subject's run, answer with a reaction. The graph
 * only; the node is ./comment-command-nodes.ts, over lib/agents/comment-commands.ts.
 */
export const COMMENT_COMMAND = 'github-comment-command';

export const commentCommandWorkflow = graph<typeof nodes>({
  name: COMMENT_COMMAND,
  version: 1,
  description: 'Act on a /approve, /reject, /cancel, /retry, /hold or /unhold comment, and react 👍 or 😕.',
  start: 'act',
  deadlineMs: 3600_000,
  nodes: {
    act: {
      title: 'Act on the comment',
      timeoutMs: 30_000,
      retry: { maxAttempts: 4, initialDelayMs: 2_000, maxDelayMs: 30_000 },
    },
  },
  edges: [],
});
