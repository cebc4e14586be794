import {
  delegateTo,
  type NodeResult,
  type StepContext,
  type WorkflowDefinition,
} from '../engine/workflow.ts';

/**
 * A command in a GitHub comment (`/approve`, `/reject`, `/cancel`, `/retry`, `/hold`, `/unhold`):
 * confirm the author's permission, act on the subject's run, answer with a reaction. The graph
 * only; the handler is lib/agents/comment-commands.ts (`services.commentCommand`).
 */
export const COMMENT_COMMAND = 'github-comment-command';

export interface CommentCommandServices {
  commentCommand: Record<'act', (ctx: StepContext<CommentCommandServices>) => Promise<NodeResult>>;
}

const delegate = delegateTo<CommentCommandServices, 'commentCommand'>('commentCommand', COMMENT_COMMAND);

export const commentCommandWorkflow: WorkflowDefinition<CommentCommandServices> = {
  name: COMMENT_COMMAND,
  version: 1,
  description: 'Act on a /approve, /reject, /cancel, /retry, /hold or /unhold comment, and react 👍 or 😕.',
  start: 'act',
  deadlineMs: 3600_000,
  nodes: {
    act: {
      title: 'Act on the comment',
      handler: delegate('act'),
      timeoutMs: 30_000,
      retry: { maxAttempts: 4, initialDelayMs: 2_000, maxDelayMs: 30_000 },
    },
  },
  edges: [],
};
