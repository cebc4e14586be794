/**
 * Custom metric names, shared by the code that emits them (Powertools Metrics, EMF) and by the
 * CDK stack that alarms on them and draws them, so a rename cannot silently break an alarm.
 */
export const METRICS_NAMESPACE = 'Switchyard';

/** Value of the `service` dimension in production (dev stages use `switchyard-<stage>`, see infra/config.ts). */
export const SERVICE_NAME = 'switchyard';

export const MetricName = {
  /** A run was created (count). */
  RunsStarted: 'RunsStarted',
  /** A run ended `succeeded` (count). */
  RunsSucceeded: 'RunsSucceeded',
  /** A run ended `failed` or `expired` (count). Alarmed. */
  RunsFailed: 'RunsFailed',
  /** Runs found by the sweeper past their deadline (count, emitted every sweep). Alarmed. */
  RunsStuck: 'RunsStuck',
  /** Wall time of one workflow step in the worker (milliseconds). */
  StepDuration: 'StepDuration',
  /** Time from receiving a Discord interaction to answering it (milliseconds; Discord allows 3 s). */
  AckLatency: 'AckLatency',
  /** A signed GitHub delivery lacked a field its event needs: answered 2xx, logged, no run (count). */
  DeliveriesMalformed: 'DeliveriesMalformed',
  /** A delivery whose routing waits for its repository's config: queued to route later (count). */
  DeliveriesDeferred: 'DeliveriesDeferred',
  /** Emitted by Powertools `captureColdStartMetric` (count, dimension `function_name`). */
  ColdStart: 'ColdStart',
  /** Failed GitHub deliveries the redelivery sweep asked GitHub to send again (count). */
  WebhooksRedelivered: 'WebhooksRedelivered',
  /** Agent tasks resumed from a workflow run found through the Actions API, not its webhook (count). */
  AgentRunsReconciled: 'AgentRunsReconciled',
} as const;

export type MetricName = (typeof MetricName)[keyof typeof MetricName];

/** Units the emitters use; the dashboard labels follow them. */
export const METRIC_UNITS = {
  RunsStarted: 'Count',
  RunsSucceeded: 'Count',
  RunsFailed: 'Count',
  RunsStuck: 'Count',
  StepDuration: 'Milliseconds',
  AckLatency: 'Milliseconds',
  DeliveriesMalformed: 'Count',
  DeliveriesDeferred: 'Count',
  ColdStart: 'Count',
  WebhooksRedelivered: 'Count',
  AgentRunsReconciled: 'Count',
} as const satisfies Record<MetricName, 'Count' | 'Milliseconds'>;
