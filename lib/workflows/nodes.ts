import type { WorkflowDefinition } from '../engine/workflow.ts';
import { ciTriageWorkflow } from './ci-triage.ts';
import { commentCommandWorkflow } from './comment-command.ts';
import { coverageWorkflow } from './coverage.ts';
import { lazyNodes } from './graph.ts';
import { WORKFLOW_DEFINITIONS } from './index.ts';
import { issuePipeline } from './issue-pipeline.ts';

/**
 * The worker's workflows: each graph bound to its nodes module, imported when one of its nodes
 * first runs (the worker's first message loads the engine, not every node's clients and agents).
 * Only the worker imports this file: the dynamic imports below put the nodes in chunks of the
 * worker's and the sweeper's split bundles, and nowhere else. The Discord workflows
 * (lib/discord/*-workflow.ts) carry their handlers in their graphs.
 */
const BOUND: WorkflowDefinition<unknown>[] = [
  lazyNodes(issuePipeline, () => import('./issue-pipeline-nodes.ts')),
  lazyNodes(ciTriageWorkflow, () => import('./ci-triage-nodes.ts')),
  lazyNodes(coverageWorkflow, () => import('./coverage-nodes.ts')),
  lazyNodes(commentCommandWorkflow, () => import('./comment-command-nodes.ts')),
];

/** WORKFLOW_DEFINITIONS, in the same order, with every graph's nodes bound. */
export const WORKER_WORKFLOWS: readonly WorkflowDefinition<unknown>[] = WORKFLOW_DEFINITIONS.map(
  (d) => BOUND.find((b) => b.name === d.name) ?? (d as WorkflowDefinition<unknown>),
);
