import { type RecoveryReport, recoverySweep } from '../lib/app/recovery.ts';
import { type WorkerApp, workerAppFromEnv } from '../lib/app/worker.ts';
import { MetricName } from '../lib/common/metric-names.ts';
import { instrumented, logger, metrics } from '../lib/common/observability.ts';
import type { SweepReport } from '../lib/engine/engine.ts';

/**
 * Scheduled every minute: moves on runs that a crash, a lost message or the clock left behind,
 * frees agent slots held by runs that ended without their report, and recovers events GitHub
 * never sends again (failed webhook deliveries, lost agent completions: lib/app/recovery.ts).
 */
export function makeHandler(
  app: () => Promise<Pick<WorkerApp, 'engine' | 'agents' | 'github' | 'config' | 'refreshConfig'>>,
) {
  return async (): Promise<
    SweepReport & { slotsReleased: number; woken: number; recovery: RecoveryReport }
  > => {
    const loaded = await app();
    // A pushed config version reaches what the sweep reports and reconciles, deliveries or not.
    await loaded.refreshConfig();
    const { engine, agents } = loaded;
    const report = await engine.sweep();
    const slots = await agents.hub.reconcile();
    const recovery = await recoverySweep(loaded);
    metrics.addMetric(MetricName.RunsStuck, 'Count', report.stuck);
    logger.info('sweep', { ...report, ...slots });
    return { ...report, slotsReleased: slots.released, woken: slots.woken, recovery };
  };
}

export const handler = instrumented(makeHandler(workerAppFromEnv));
