import type { NewEvent, Run } from '../../engine/types.ts';
import type { RegisteredAgent } from '../../routing/agents.ts';
import { agentPayload } from '../allowlist.ts';

/** One task (or consultation) handed to an agent's executor. */
export interface DispatchRequest {
  run: Readonly<Run>;
  node: string;
  /** The work item id (`<runId>.<taskId>.<try>`). */
  item: string;
  agent: RegisteredAgent;
  /** What the agent is asked to do (the executor filters it through the agent's allowlist). */
  task: Record<string, unknown>;
  /** What the agent's answer must carry to resume the run (the gate's correlation id). */
  correlation: string;
  /** When the run stops waiting for the answer (the task then fails as timed out). */
  expiresAt: string;
  /** Audit events, committed with the step (dry-run calls, refusals). */
  emit: (event: NewEvent) => void;
}

export interface DispatchOutcome {
  executor: 'github-actions' | 'http';
  /** Nothing was sent (no credentials); the call is recorded as an event. */
  dryRun: boolean;
  /** Where the task went (repository, workflow and ref; or the URL), for the dispatch record and reports. */
  details: {
    repo?: string;
    workflow?: string;
    ref?: string;
    url?: string;
    status?: number;
    workflowRunId?: number;
    /** The workflow run's page (GitHub's `html_url`). */
    workflowRunUrl?: string;
    /** The workflow run's API URL (GitHub's `run_url`). */
    runUrl?: string;
    /** Whether GitHub returned the run's details (`return_run_details`). */
    runDetails?: 'returned' | 'absent' | 'refused' | 'dry-run';
  };
}

export interface Executor {
  readonly type: 'github-actions' | 'http';
  dispatch(req: DispatchRequest): Promise<DispatchOutcome>;
  /**
   * Where a dispatch for `run` goes, as far as config says before it is sent (the dispatch
   * record names it while GitHub's answer is awaited). Executors with nothing to name omit it.
   */
  destination?(agent: RegisteredAgent, run: Readonly<Run>): { repo?: string; workflow?: string };
}

/**
 * What an executor may send: the task filtered by the agent's allowlist. Names that were asked
 * for but look like credentials are refused, and the refusal is an event of the run.
 */
export function payloadFor(req: DispatchRequest, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const { payload, refused } = agentPayload(req.agent, req.task, env);
  if (refused.length > 0) {
    req.emit({
      type: 'agent.env.refused',
      node: req.node,
      by: 'hub',
      detail: {
        agent: req.agent.name,
        names: refused,
        reason: 'credential-looking names are never passed to agents',
      },
    });
  }
  return payload;
}
