import type { Reporter } from '../engine/engine.ts';
import type { NodeResult, StepContext } from '../engine/workflow.ts';
import { createCiTriageServices } from './ci-triage.ts';
import { createCoverageServices } from './coverage.ts';
import { createExecuteNode } from './execute.ts';
import { AgentHub, type HubDeps } from './hub.ts';
import { type Workloads, workloads } from './work-queue.ts';
import { createWorkReporter } from './work-reporter.ts';

/**
 * Everything the worker needs from the agents module, built once from the hub's dependencies:
 *
 *   const agents = createAgentServices({ store, config, github, discord, env, engine: () => engine });
 *   services.pipeline.execute = agents.execute;     // the issue pipeline's execute node
 *   services.ciTriage = agents.ciTriage;            // lib/workflows/ci-triage.ts
 *   services.coverage = agents.coverage;            // lib/workflows/coverage.ts
 *   engine.addReporter(agents.reporter);            // slots, promotions, workflow-run cancels
 *   runsApi.workloads = agents.workloads;           // GET /runs: queue depth and agent workloads
 *   sweeper: await agents.hub.reconcile();          // optional safety net
 */
export interface AgentServices {
  hub: AgentHub;
  execute: (ctx: StepContext<unknown>) => Promise<NodeResult>;
  ciTriage: ReturnType<typeof createCiTriageServices>;
  coverage: ReturnType<typeof createCoverageServices>;
  reporter: Reporter;
  workloads: () => Promise<Workloads>;
}

export function createAgentServices(deps: HubDeps): AgentServices {
  const hub = new AgentHub(deps);
  const common = {
    github: deps.github,
    store: deps.store,
    config: deps.config,
    ...(deps.now ? { now: deps.now } : {}),
  };
  return {
    hub,
    execute: createExecuteNode(hub),
    ciTriage: createCiTriageServices(common),
    coverage: createCoverageServices(common),
    reporter: createWorkReporter(hub),
    workloads: () => workloads(deps.store, deps.config.central),
  };
}
