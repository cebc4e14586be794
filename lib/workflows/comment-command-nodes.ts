import { commentCommandNodes } from '../agents/comment-commands.ts';
import type { NodeResult, StepContext } from '../engine/workflow.ts';
import type { WorkflowServices } from './services.ts';

/** The comment-command node (the graph is ./comment-command.ts), over lib/agents/comment-commands.ts. */
type Ctx = StepContext<Pick<WorkflowServices, 'github' | 'engine'>>;

/** Confirm the author's permission, act on the subject's run, react 👍 or 😕. */
export function act(ctx: Ctx): Promise<NodeResult> {
  const { github, store } = ctx.services.github;
  return commentCommandNodes({ github, store, engine: ctx.services.engine }).act(ctx);
}
