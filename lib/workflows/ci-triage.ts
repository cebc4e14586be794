import type * as nodes from './ci-triage-nodes.ts';
import { graph } from './graph.ts';

/**
 * CI triage: a workflow run failed on a repository's default branch. Collect its failed jobs and
 * their first error lines, then post (or update) the summary on the branch's `ci-failure` issue.
 * A later green run of the same workflow resolves its section (and closes the issue when nothing
 * is failing any more). The graph only; the nodes are ./ci-triage-nodes.ts, over lib/agents/ci-triage.ts.
 */
export const CI_TRIAGE = 'ci-triage';

export const ciTriageWorkflow = graph<typeof nodes>({
  name: CI_TRIAGE,
  version: 1,
  description:
    'Summarise a failed default-branch CI run (failed jobs, first error lines) on a ci-failure issue.',
  start: 'collect',
  deadlineMs: 24 * 3600_000,
  nodes: {
    collect: {
      title: 'Collect failed jobs',
      timeoutMs: 60_000,
      // Only reads (jobs and logs): no lease until it has run a second (lib/engine/workflow.ts).
      lazyLease: true,
      retry: { maxAttempts: 4, initialDelayMs: 5_000, maxDelayMs: 60_000 },
    },
    post: {
      title: 'Post summary',
      timeoutMs: 30_000,
      retry: { maxAttempts: 6, initialDelayMs: 2_000, maxDelayMs: 60_000 },
    },
  },
  edges: [{ from: 'collect', to: 'post' }],
});
