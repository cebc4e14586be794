import type { AgentHub } from '../agents/hub.ts';
import type { Signal } from '../engine/engine.ts';
import type { NewEvent, Run } from '../engine/types.ts';
import type { GitHubServices } from '../routing/services.ts';

/**
 * What the worker injects into every step (`ctx.services`), built once per container in
 * lib/app/worker.ts. The nodes modules next to each graph (`*-nodes.ts`) read what they need from
 * it; their own code is imported when a node first runs (lib/workflows/graph.ts, `lazyNodes`).
 */
export interface WorkflowServices {
  /** GitHub clients (permission-checked, dry-run aware), the store, config and the planner. */
  github: GitHubServices;
  /** The agents hub: the execute node hands tasks to agents through it. */
  hub: AgentHub;
  /** The engine (built after its services, hence a function): comment commands signal other runs. */
  engine: () => {
    signal(runId: string, signal: Signal): Promise<Run>;
    recordEvent(runId: string, event: NewEvent): Promise<void>;
  };
}
