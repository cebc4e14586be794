import { graph } from './graph.ts';
import type * as nodes from './issue-pipeline-nodes.ts';

/**
 * The issue pipeline: intake → route → plan → approval → execute → report.
 *
 * This file is only the graph: node names, edges, timeouts, retries. Each node is a handler of
 * ./issue-pipeline-nodes.ts (go-to-definition on a node's key opens it), which only the worker
 * imports, when a node first runs (lib/workflows/nodes.ts). Ingress (the Discord and GitHub
 * functions) can therefore start and signal runs with this graph without loading GitHub clients
 * or agents, which keeps their bundles and cold starts small.
 */
export const ISSUE_PIPELINE = 'issue-pipeline';

/** Continue to planning only when routing decided `run` (mirrors lib/routing/route.ts, kept light here). */
export function routedToRun(data: Record<string, unknown>): boolean {
  return (data.routing as { outcome?: unknown } | undefined)?.outcome === 'run';
}

export type PipelineNode = keyof typeof nodes;

export const issuePipeline = graph<typeof nodes>({
  name: ISSUE_PIPELINE,
  version: 1,
  description: 'Plan an issue, wait for a human to approve the plan, hand it to an agent, report back.',
  start: 'intake',
  // Everything after intake reads and writes an issue or a PR: a run without one cannot start.
  requires: ['repo', 'issue'],
  // Nothing waits forever: a run still going after a week ends as expired, with a report.
  deadlineMs: 7 * 24 * 3600_000,
  // `lazyLease`: the node only reads (and caches what it read) before its first effect, so its step
  // writes no lease until then (lib/engine/workflow.ts). Not plan (a model call) nor execute (the
  // work queue's records and signals to other runs).
  nodes: {
    intake: { title: 'Intake', timeoutMs: 20_000, lazyLease: true },
    route: { title: 'Route', timeoutMs: 20_000, lazyLease: true },
    // A model planner may take a minute (and still has to fall back in time).
    plan: { title: 'Plan', timeoutMs: 90_000 },
    approval: {
      title: 'Approval',
      timeoutMs: 20_000,
      lazyLease: true,
      // Config may switch the gate off, but a policy that requires approval switches it back on.
      optionalGate: true,
      gateRequired: (data) =>
        (data.routing as { requireApproval?: unknown } | undefined)?.requireApproval === true,
    },
    execute: {
      title: 'Execute',
      timeoutMs: 30_000,
      retry: { maxAttempts: 3, initialDelayMs: 5_000, maxDelayMs: 120_000 },
    },
    report: { title: 'Report', timeoutMs: 20_000, lazyLease: true },
  },
  edges: [
    { from: 'intake', to: 'route' },
    // Only a `run` decision continues; an ignored or triaged event ends the run at route.
    { from: 'route', to: 'plan', when: routedToRun },
    // Parked at the `ci` gate: green CI resumes it (`next`), a re-check comes back on `expired`.
    { from: 'route', to: 'route', on: 'next' },
    { from: 'route', to: 'route', on: 'expired' },
    // Rejecting the plan, or letting the gate expire, ends the run (failed / expired) with a report.
    { from: 'plan', to: 'approval' },
    { from: 'approval', to: 'execute', on: 'approved' },
    // Agent answers, freed slots and retries re-enter execute (`next`); an approved escalation
    // tries again; an expired agent or queue gate comes back to fail the task with a report.
    { from: 'execute', to: 'execute', on: 'next' },
    { from: 'execute', to: 'execute', on: 'approved' },
    { from: 'execute', to: 'execute', on: 'expired' },
    { from: 'execute', to: 'report' },
  ],
});
