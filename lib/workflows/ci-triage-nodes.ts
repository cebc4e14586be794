import { createCiTriageServices } from '../agents/ci-triage.ts';
import type { NodeResult, StepContext } from '../engine/workflow.ts';
import type { WorkflowServices } from './services.ts';

/** The CI-triage nodes (the graph is ./ci-triage.ts), over lib/agents/ci-triage.ts. */
type Ctx = StepContext<Pick<WorkflowServices, 'github'>>;

/** Read the failed run's jobs and the first error lines of each. */
export function collect(ctx: Ctx): Promise<NodeResult> {
  return createCiTriageServices(ctx.services.github).collect(ctx);
}

/** Post (or update) the branch's `ci-failure` issue; a green run resolves its section. */
export function post(ctx: Ctx): Promise<NodeResult> {
  return createCiTriageServices(ctx.services.github).post(ctx);
}
