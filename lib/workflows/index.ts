import { discordWorkflowDefinitions } from '../discord/workflows.ts';
import { assertNodeTimeouts } from '../engine/timeouts.ts';
import {
  Workflow,
  type WorkflowDefinition,
  WorkflowRegistry,
  type WorkflowTuning,
} from '../engine/workflow.ts';
import { ciTriageWorkflow } from './ci-triage.ts';
import { commentCommandWorkflow } from './comment-command.ts';
import { coverageWorkflow } from './coverage.ts';
import { issuePipeline } from './issue-pipeline.ts';

/**
 * Every workflow Switchyard knows, as graphs. Ingress, the CLI and the worker all build the same
 * registry from this list, so a run started anywhere can be signalled anywhere; only the worker
 * binds the graphs to their nodes modules (lib/workflows/nodes.ts), so only it can run a node.
 */
export const WORKFLOW_DEFINITIONS: WorkflowDefinition<never>[] = [
  issuePipeline as WorkflowDefinition<never>,
  ciTriageWorkflow as WorkflowDefinition<never>,
  coverageWorkflow as WorkflowDefinition<never>,
  commentCommandWorkflow as WorkflowDefinition<never>,
  ...discordWorkflowDefinitions(),
];

export function buildRegistry<S>(
  tuning: Record<string, WorkflowTuning> = {},
  definitions: readonly WorkflowDefinition<never>[] = WORKFLOW_DEFINITIONS,
): WorkflowRegistry<S> {
  const registry = new WorkflowRegistry<S>(
    definitions.map((d) => new Workflow(d as unknown as WorkflowDefinition<S>, tuning[d.name] ?? {})),
  );
  // At config load (the worker builds its registry from config tuning): a node timeout that does
  // not fit the worker function is refused here, naming the node, not found when Lambda kills it.
  assertNodeTimeouts(registry.all() as Workflow<unknown>[]);
  return registry;
}
