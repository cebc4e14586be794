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
 * Only the worker imports this file: the dynamic import below puts the nodes in a chunk of the
 * worker's and the sweeper's split bundles (./worker-nodes.ts), and nowhere else. The Discord workflows
 * (lib/discord/*-workflow.ts) carry their handlers in their graphs.
 */
const nodes = () => import('./worker-nodes.ts');
const BOUND: WorkflowDefinition<unknown>[] = [
  lazyNodes(issuePipeline, async () => (await nodes()).issuePipeline),
  lazyNodes(ciTriageWorkflow, async () => (await nodes()).ciTriage),
  lazyNodes(coverageWorkflow, async () => (await nodes()).coverage),
  lazyNodes(commentCommandWorkflow, async () => (await nodes()).commentCommand),
];

/** WORKFLOW_DEFINITIONS, in the same order, with every graph's nodes bound. */
export const WORKER_WORKFLOWS: readonly WorkflowDefinition<unknown>[] = WORKFLOW_DEFINITIONS.map(
  (d) => BOUND.find((b) => b.name === d.name) ?? (d as WorkflowDefinition<unknown>),
);
