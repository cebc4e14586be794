import { MetricName } from '../common/metric-names.ts';
import { instrumented, logger, metrics } from '../common/observability.ts';
import type { SweepReport } from '../engine/engine.ts';
import type { RecoveryReport } from './recovery.ts';
import type { WorkerApp } from './worker.ts';

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
    const [loaded, { recoverySweep }] = await Promise.all([app(), import('./recovery.ts')]);
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

/** As the worker's: the app is imported on the first run, the bundle being split (infra/functions.ts). */
export function sweeperFunction() {
  return instrumented(makeHandler(async () => (await import('./worker.ts')).workerAppFromEnv()));
}
