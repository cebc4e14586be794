import { createCoverageServices } from '../agents/coverage.ts';
import type { NodeResult, StepContext } from '../engine/workflow.ts';
import type { WorkflowServices } from './services.ts';

/** The coverage-report nodes (the graph is ./coverage.ts), over lib/agents/coverage.ts. */
type Ctx = StepContext<Pick<WorkflowServices, 'github'>>;

/** Compare the check's coverage with the base branch's last one. */
export function compare(ctx: Ctx): Promise<NodeResult> {
  return createCoverageServices(ctx.services.github).compare(ctx);
}

/** Post the change as one PR comment, edited in place. */
export function comment(ctx: Ctx): Promise<NodeResult> {
  return createCoverageServices(ctx.services.github).comment(ctx);
}
