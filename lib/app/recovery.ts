import { type ReconcileReport, reconcileAgentRuns } from '../agents/reconcile.ts';
import { MetricName } from '../common/metric-names.ts';
import { logger, metrics } from '../common/observability.ts';
import { type RedeliveryReport, sweepRedeliveries } from '../github/redelivery.ts';
import type { WorkerApp } from './worker.ts';

/**
 * The sweeper's recovery of events GitHub never sends again (config `recovery`): the redelivery
 * sweep of failed webhook deliveries (lib/github/redelivery.ts) and the reconcile of agent
 * completions through the Actions API (lib/agents/reconcile.ts). Both run on every sweep (each
 * limits itself: one delivery listing per `everyMinutes`, one lookup per task per
 * `everyMinutes`); a failure of one is logged and never fails the engine's own sweep.
 */
export interface RecoveryReport {
  redelivery: RedeliveryReport | { error: string };
  reconcile: ReconcileReport | { error: string };
}

export async function recoverySweep(
  app: Pick<WorkerApp, 'engine' | 'github' | 'config'>,
  now?: () => Date,
): Promise<RecoveryReport> {
  const cfg = app.config.recovery;
  const failed = (what: string) => (err: unknown) => {
    logger.error(`${what} failed`, { error: err as Error });
    return { error: (err as Error).message };
  };
  const [redelivery, reconcile] = await Promise.all([
    sweepRedeliveries({
      github: app.github,
      store: app.engine.store,
      config: cfg.redelivery,
      ...(now ? { now } : {}),
    }).catch(failed('redelivery sweep')),
    reconcileAgentRuns({
      engine: app.engine,
      github: app.github,
      config: cfg.reconcile,
      ...(now ? { now } : {}),
    }).catch(failed('agent run reconcile')),
  ]);
  if ('redelivered' in redelivery && redelivery.redelivered > 0) {
    metrics.addMetric(MetricName.WebhooksRedelivered, 'Count', redelivery.redelivered);
    logger.info('redelivery sweep', { ...redelivery });
  }
  if ('resumed' in reconcile && reconcile.resumed > 0) {
    metrics.addMetric(MetricName.AgentRunsReconciled, 'Count', reconcile.resumed);
    logger.info('agent run reconcile', { ...reconcile });
  }
  return { redelivery, reconcile };
}
