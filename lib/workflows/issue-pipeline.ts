import type { NodeHandler, NodeResult, StepContext, WorkflowDefinition } from '../engine/workflow.ts';

/**
 * The issue pipeline: intake → route → plan → approval → execute → report.
 *
 * This file is only the graph: node names, edges, timeouts, retries. Each handler delegates to
 * `services.pipeline`, which the worker injects. Ingress (the Discord and GitHub functions) can
 * therefore start and signal runs with this definition without loading GitHub clients or agents,
 * which keeps their bundles and cold starts small.
 */
export const ISSUE_PIPELINE = 'issue-pipeline';

export type PipelineNode = 'intake' | 'route' | 'plan' | 'approval' | 'execute' | 'report';

export interface PipelineServices {
  pipeline: Record<PipelineNode, (ctx: StepContext<PipelineServices>) => Promise<NodeResult>>;
}

const delegate =
  (node: PipelineNode): NodeHandler<PipelineServices> =>
  (ctx) => {
    const impl = ctx.services.pipeline?.[node];
    if (!impl) throw new Error(`no implementation of ${ISSUE_PIPELINE}.${node} in this process`);
    return impl(ctx);
  };

export const issuePipeline: WorkflowDefinition<PipelineServices> = {
  name: ISSUE_PIPELINE,
  version: 1,
  description: 'Plan an issue, wait for a human to approve the plan, hand it to an agent, report back.',
  start: 'intake',
  // Nothing waits forever: a run still going after a week ends as expired, with a report.
  deadlineMs: 7 * 24 * 3600_000,
  nodes: {
    intake: { title: 'Intake', handler: delegate('intake'), timeoutMs: 20_000 },
    route: { title: 'Route', handler: delegate('route'), timeoutMs: 20_000 },
    plan: { title: 'Plan', handler: delegate('plan'), timeoutMs: 30_000 },
    approval: { title: 'Approval', handler: delegate('approval'), timeoutMs: 20_000, optionalGate: true },
    execute: {
      title: 'Execute',
      handler: delegate('execute'),
      timeoutMs: 30_000,
      retry: { maxAttempts: 3, initialDelayMs: 5_000, maxDelayMs: 120_000 },
    },
    report: { title: 'Report', handler: delegate('report'), timeoutMs: 20_000 },
  },
  edges: [
    { from: 'intake', to: 'route' },
    // Rejecting the plan, or letting the gate expire, ends the run (failed / expired) with a report.
    { from: 'route', to: 'plan' },
    { from: 'plan', to: 'approval' },
    { from: 'approval', to: 'execute', on: 'approved' },
    { from: 'execute', to: 'report' },
  ],
};
