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
 * Every workflow Switchyard knows, as graphs whose handlers delegate to services the worker
 * injects. Ingress, the CLI and the worker all build the same registry from this list, so a run
 * started anywhere can be signalled anywhere.
 */
export const WORKFLOW_DEFINITIONS: WorkflowDefinition<never>[] = [
  issuePipeline as WorkflowDefinition<never>,
  ciTriageWorkflow as WorkflowDefinition<never>,
  coverageWorkflow as WorkflowDefinition<never>,
  commentCommandWorkflow as WorkflowDefinition<never>,
  ...discordWorkflowDefinitions(),
];

export function buildRegistry<S>(tuning: Record<string, WorkflowTuning> = {}): WorkflowRegistry<S> {
  const registry = new WorkflowRegistry<S>(
    WORKFLOW_DEFINITIONS.map(
      (d) => new Workflow(d as unknown as WorkflowDefinition<S>, tuning[d.name] ?? {}),
    ),
  );
  // At config load (the worker builds its registry from config tuning): a node timeout that does
  // not fit the worker function is refused here, naming the node, not found when Lambda kills it.
  assertNodeTimeouts(registry.all() as Workflow<unknown>[]);
  return registry;
}
