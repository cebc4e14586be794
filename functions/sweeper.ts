import { queueFromEnv, storeFromEnv } from '../lib/app/core.ts';
import { createWorkerApp } from '../lib/app/worker.ts';
import { MetricName } from '../lib/common/metric-names.ts';
import { instrumented, logger, metrics } from '../lib/common/observability.ts';
import type { Engine, SweepReport } from '../lib/engine/engine.ts';

/** Scheduled every minute: moves on runs that a crash, a lost message or the clock left behind. */
export function makeHandler(engine: () => Promise<Engine<unknown>>) {
  return async (): Promise<SweepReport> => {
    const report = await (await engine()).sweep();
    metrics.addMetric(MetricName.RunsStuck, 'Count', report.stuck);
    logger.info('sweep', { ...report });
    return report;
  };
}

let app: Promise<Engine<unknown>> | undefined;
const engine = () => {
  app ??= createWorkerApp({ store: storeFromEnv(), queue: queueFromEnv() }).then(
    (a) => a.engine as Engine<unknown>,
  );
  return app;
};

export const handler = instrumented(makeHandler(engine));
