import { logger } from '../common/observability.ts';
import type { StartRunInput, StartRunResult } from '../engine/engine.ts';
import type { RunStore } from '../engine/ports.ts';
import type { Delivery, DeliveryOutcome } from '../github/webhook.ts';
import type { SwitchyardConfig } from '../routing/config.ts';
import type { DeliveryHook } from '../routing/deliveries.ts';
import { startCiTriage } from './ci-triage.ts';
import { startCoverage } from './coverage.ts';
import { nudgePrChecks } from './pr-checks.ts';
import type { HubEngine } from './results.ts';
import { agentWorkflows, isAgentWorkflowRun, resumeFromWorkflowRun } from './workflow-run.ts';

/**
 * The agents' part of GitHub ingress, as one `DeliveryHook` (lib/routing/deliveries.ts runs hooks
 * before routing). Each claim is cheap (a few KV reads and writes, at most one run start or one
 * signal), so it fits in the webhook request:
 *
 * - `workflow_run` of a dispatched agent workflow (its title carries a run id): link or resume
 *   the run (workflow-run.ts). Never counted by the CI guard: an agent's failure is not the
 *   branch's.
 * - `workflow_run` completed on the default branch: trip (or clear) the CI guard and start CI
 *   triage when there is something to say (ci-triage.ts). Otherwise the ingress records the
 *   guard signal as usual.
 * - `check_run` completed with a coverage figure: a baseline, or a coverage report run on the PR.
 */
export interface AgentHookDeps {
  engine: HubEngine & {
    readonly store: RunStore;
    startRun(input: StartRunInput): Promise<StartRunResult>;
  };
  config: { central: SwitchyardConfig };
  now?: () => Date;
}

export function createAgentDeliveryHook(deps: AgentHookDeps): DeliveryHook {
  const store = deps.engine.store;
  return async (d: Delivery): Promise<DeliveryOutcome | undefined> => {
    // CI finished on an agent's task branch (switchyard/<run>/<task>): the run re-reads its PR's checks.
    if (
      (d.name === 'check_suite' || d.name === 'workflow_run') &&
      !isAgentWorkflowRun(d.payload as Record<string, unknown>)
    ) {
      const nudged = await nudgePrChecks(deps.engine, d, deps.now);
      if (nudged) {
        logger.info('pr checks', { delivery: d.id, ...nudged });
        return { statusCode: 202, body: { status: 'pr-checks', ...nudged } };
      }
    }
    if (d.name === 'workflow_run') {
      if (isAgentWorkflowRun(d.payload as Record<string, unknown>, agentWorkflows(deps.config.central))) {
        const res = await resumeFromWorkflowRun(deps.engine, d.payload as Record<string, unknown>, {
          ...(deps.now ? { now: deps.now } : {}),
        });
        logger.info('agent workflow run', { delivery: d.id, ...res });
        return { statusCode: 202, body: { status: 'agent', ...res } };
      }
      const started = await startCiTriage(
        { engine: deps.engine, store, config: deps.config, ...(deps.now ? { now: deps.now } : {}) },
        d.event,
      );
      if (started) {
        logger.info('ci triage started', { delivery: d.id, ...started });
        return {
          statusCode: 202,
          body: { status: 'ci-triage', run: started.runId, mode: started.mode, guard: started.guard },
        };
      }
      return undefined;
    }
    if (d.name === 'check_run') {
      const res = await startCoverage(
        { engine: deps.engine, store, config: deps.config, ...(deps.now ? { now: deps.now } : {}) },
        { id: d.id, payload: d.payload },
      );
      if (res) {
        logger.info('coverage', { delivery: d.id, ...res });
        return { statusCode: 202, body: { ...res } };
      }
    }
    return undefined;
  };
}
