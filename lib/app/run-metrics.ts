import { MetricName } from '../common/metric-names.ts';
import { metrics } from '../common/observability.ts';
import type { RunStore } from '../engine/ports.ts';
import type { NewEvent } from '../engine/types.ts';

export interface MetricSink {
  count(name: string, value: number): void;
  milliseconds(name: string, value: number): void;
}

export const powertoolsSink: MetricSink = {
  count: (name, value) => metrics.addMetric(name, 'Count', value),
  milliseconds: (name, value) => metrics.addMetric(name, 'Milliseconds', value),
};

/** Metrics that follow from history events, so they are counted once per committed fact. */
export function recordEventMetrics(events: NewEvent[], sink: MetricSink): void {
  for (const e of events) {
    if (e.type === 'run.created') sink.count(MetricName.RunsStarted, 1);
    else if (e.type === 'run.succeeded') sink.count(MetricName.RunsSucceeded, 1);
    else if (e.type === 'run.failed' || e.type === 'run.expired') sink.count(MetricName.RunsFailed, 1);
    else if (
      (e.type === 'step.succeeded' || e.type === 'step.failed') &&
      typeof e.detail.durationMs === 'number'
    ) {
      sink.milliseconds(MetricName.StepDuration, e.detail.durationMs);
    }
  }
}

/**
 * Wrap a store so every successful createRun/commit emits the run metrics of its events. Only
 * writes that landed count: a lost conditional write throws before the metrics are recorded.
 */
export function withRunMetrics<T extends RunStore>(store: T, sink: MetricSink = powertoolsSink): T {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop === 'createRun') {
        return async (input: Parameters<RunStore['createRun']>[0]) => {
          const res = await target.createRun(input);
          if (res.outcome === 'created') recordEventMetrics(input.events, sink);
          return res;
        };
      }
      if (prop === 'commit') {
        return async (input: Parameters<RunStore['commit']>[0]) => {
          const saved = await target.commit(input);
          recordEventMetrics(input.events, sink);
          return saved;
        };
      }
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
