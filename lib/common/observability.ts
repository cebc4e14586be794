import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
import { METRICS_NAMESPACE, type MetricName, SERVICE_NAME } from './metric-names.ts';

/**
 * One Powertools Logger and Metrics per process. Structured JSON logs, correlated by run id
 * (`logger.appendKeys({ runId })`), with credentials redacted before they are written.
 */
const SECRET_KEYS = /token|secret|password|authorization|private_?key|signature/i;

export function redact(value: unknown, depth = 0): unknown {
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_KEYS.test(k) ? '[redacted]' : redact(v, depth + 1);
  }
  return out;
}

export const logger = new Logger({
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME,
  logLevel: (process.env.POWERTOOLS_LOG_LEVEL ??
    process.env.LOG_LEVEL ??
    (process.env.VITEST ? 'SILENT' : 'INFO')) as 'INFO',
  jsonReplacerFn: (key: string, value: unknown) => (key && SECRET_KEYS.test(key) ? '[redacted]' : value),
});

export const metrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? METRICS_NAMESPACE,
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME,
});

/** Counts facts that are not runs (refused deliveries, deferred routing): Powertools here, a recorder in tests. */
export interface Counter {
  count(name: MetricName, value?: number): void;
}

export const metricsCounter: Counter = {
  count: (name, value = 1) => metrics.addMetric(name, 'Count', value),
};

/**
 * Wrap a Lambda handler so every entry point gets the same observability: the Lambda context on
 * each log line, a `ColdStart` metric on the first invocation, and buffered metrics flushed after
 * each invocation, also when it throws (otherwise the metrics of a failing run would be lost).
 */
export function instrumented<E, R>(
  handler: (event: E, context: Context) => Promise<R>,
): (event: E, context: Context) => Promise<R> {
  return async (event, context) => {
    logger.addContext(context);
    metrics.captureColdStartMetric(context.functionName);
    try {
      return await handler(event, context);
    } finally {
      // Publishing an empty buffer only logs a Powertools warning on every call.
      if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
    }
  };
}
