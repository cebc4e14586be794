import type { Reporter } from '../engine/engine.ts';
import { AgentHub, type HubDeps } from './hub.ts';
import { type Workloads, workloads } from './work-queue.ts';
import { createWorkReporter } from './work-reporter.ts';

/**
 * Everything the worker needs from the agents module, built once from the hub's dependencies:
 *
 *   const agents = createAgentServices({ store, config, github, discord, env, engine: () => engine });
 *   services.hub = agents.hub;                      // the issue pipeline's execute node
 *   engine.addReporter(agents.reporter);            // slots, promotions, workflow-run cancels
 *   runsApi.workloads = agents.workloads;           // GET /runs: queue depth and agent workloads
 *   sweeper: await agents.hub.reconcile();          // optional safety net
 */
export interface AgentServices {
  hub: AgentHub;
  reporter: Reporter;
  workloads: () => Promise<Workloads>;
}

export function createAgentServices(deps: HubDeps): AgentServices {
  const hub = new AgentHub(deps);
  return {
    hub,
    reporter: createWorkReporter(hub),
    workloads: () => workloads(deps.store, deps.config.central),
  };
}
