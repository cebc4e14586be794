import type { Workflow, WorkflowDefinition, WorkflowTuning } from '../engine/workflow.ts';
import { Workflow as WorkflowClass, WorkflowRegistry } from '../engine/workflow.ts';
import { issuePipeline } from './issue-pipeline.ts';

/**
 * Every workflow Switchyard knows, as graphs (handlers delegate to services the worker injects),
 * tuned by config. Ingress, the CLI and the worker all build the same registry from this list.
 */
export const WORKFLOW_DEFINITIONS: WorkflowDefinition<never>[] = [issuePipeline as WorkflowDefinition<never>];

export function buildRegistry<S>(
  tuning: Record<string, WorkflowTuning> = {},
  extra: WorkflowDefinition<never>[] = [],
): WorkflowRegistry<S> {
  const all = [...WORKFLOW_DEFINITIONS, ...extra];
  return new WorkflowRegistry<S>(
    all.map(
      (d) => new WorkflowClass(d as unknown as WorkflowDefinition<S>, tuning[d.name] ?? {}) as Workflow<S>,
    ),
  );
}
