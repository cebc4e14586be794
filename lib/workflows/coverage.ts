import {
  delegateTo,
  type NodeResult,
  type StepContext,
  type WorkflowDefinition,
} from '../engine/workflow.ts';

/**
 * Coverage report: a coverage check finished on a pull request. Compare it with the base
 * branch's last coverage and post the change as one PR comment, edited in place. The graph only;
 * handlers delegate to `services.coverage` (lib/agents/coverage.ts).
 */
export const COVERAGE = 'coverage-report';

export type CoverageNode = 'compare' | 'comment';

export interface CoverageServices {
  coverage: Record<CoverageNode, (ctx: StepContext<CoverageServices>) => Promise<NodeResult>>;
}

const delegate = delegateTo<CoverageServices, 'coverage'>('coverage', COVERAGE);

export const coverageWorkflow: WorkflowDefinition<CoverageServices> = {
  name: COVERAGE,
  version: 1,
  description: "Post a pull request's change in test coverage as one comment, edited in place.",
  start: 'compare',
  deadlineMs: 24 * 3600_000,
  nodes: {
    compare: { title: 'Compare with base', handler: delegate('compare'), timeoutMs: 20_000 },
    comment: {
      title: 'Comment',
      handler: delegate('comment'),
      timeoutMs: 30_000,
      retry: { maxAttempts: 6, initialDelayMs: 2_000, maxDelayMs: 60_000 },
    },
  },
  edges: [{ from: 'compare', to: 'comment' }],
};
