import type * as nodes from './coverage-nodes.ts';
import { graph } from './graph.ts';

/**
 * Coverage report: a coverage check finished on a pull request. Compare it with the base
 * branch's last coverage and post the change as one PR comment, edited in place. The graph only;
 * the nodes are ./coverage-nodes.ts, over lib/agents/coverage.ts.
 */
export const COVERAGE = 'coverage-report';

export const coverageWorkflow = graph<typeof nodes>({
  name: COVERAGE,
  version: 1,
  description: "Post a pull request's change in test coverage as one comment, edited in place.",
  start: 'compare',
  deadlineMs: 24 * 3600_000,
  nodes: {
    // Only reads: no lease written unless it runs a second (lib/engine/workflow.ts `lazyLease`).
    compare: { title: 'Compare with base', timeoutMs: 20_000, lazyLease: true },
    comment: {
      title: 'Comment',
      timeoutMs: 30_000,
      retry: { maxAttempts: 6, initialDelayMs: 2_000, maxDelayMs: 60_000 },
    },
  },
  edges: [{ from: 'compare', to: 'comment' }],
});
