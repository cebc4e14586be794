import { type WorkerApp, workerAppFromEnv } from '../lib/app/worker.ts';
import { MetricName } from '../lib/common/metric-names.ts';
import { instrumented, logger, metrics } from '../lib/common/observability.ts';
import type { SweepReport } from '../lib/engine/engine.ts';

/**
 * Scheduled every minute: moves on runs that a crash, a lost message or the clock left behind,
 * and frees agent slots held by runs that ended without their report.
 */
export function makeHandler(app: () => Promise<Pick<WorkerApp, 'engine' | 'agents'>>) {
  return async (): Promise<SweepReport & { slotsReleased: number; woken: number }> => {
    const { engine, agents } = await app();
    const report = await engine.sweep();
    const slots = await agents.hub.reconcile();
    metrics.addMetric(MetricName.RunsStuck, 'Count', report.stuck);
    logger.info('sweep', { ...report, ...slots });
    return { ...report, slotsReleased: slots.released, woken: slots.woken };
  };
}

export const handler = instrumented(makeHandler(workerAppFromEnv));
