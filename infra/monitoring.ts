import { Duration } from 'aws-cdk-lib';
import type { HttpApi } from 'aws-cdk-lib/aws-apigatewayv2';
import {
  Alarm,
  AlarmStatusWidget,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  type IMetric,
  MathExpression,
  Metric,
  TextWidget,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { Operation, type Table } from 'aws-cdk-lib/aws-dynamodb';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type { Queue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { METRICS_NAMESPACE, MetricName } from '../lib/common/metric-names.ts';
import type { SwitchyardConfig } from './config.ts';
import { FUNCTIONS, type FunctionName } from './functions.ts';

/** Duration alarm: p99 above this share of the timeout means timeouts are close. */
export const DURATION_ALARM_RATIO = 0.8;

/** Discord drops an interaction not answered within 3 s; alarm well before that. */
export const ACK_LATENCY_ALARM_MS = 2500;

/** A message older than this means the worker is not keeping up (or not running). */
export const QUEUE_AGE_ALARM_SECONDS = 15 * 60;

/** Operations the code performs; their throttles are summed in one alarm. */
const TABLE_OPERATIONS = [
  Operation.GET_ITEM,
  Operation.BATCH_GET_ITEM,
  Operation.QUERY,
  Operation.PUT_ITEM,
  Operation.UPDATE_ITEM,
  Operation.DELETE_ITEM,
  Operation.BATCH_WRITE_ITEM,
  Operation.TRANSACT_WRITE_ITEMS,
  Operation.TRANSACT_GET_ITEMS,
];

/** The GitHub webhook route, as API Gateway names it (throttled per route in the stack). */
export const WEBHOOK_ROUTE = 'POST /github/webhook';
/** Refused webhook requests in 5 minutes worth a look: a flood, a wrong secret, or our throttle. */
const WEBHOOK_4XX_THRESHOLD = 25;

export interface MonitoringProps {
  config: SwitchyardConfig;
  functions: Record<FunctionName, NodejsFunction>;
  api: HttpApi;
  table: Table;
  queue: Queue;
  deadLetterQueue: Queue;
}

/** Every alarm goes to one SNS topic; one dashboard shows the same signals. */
export class Monitoring extends Construct {
  readonly topic: Topic;
  readonly alarms: Alarm[] = [];
  readonly dashboard: Dashboard;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const { config, functions, api, table, queue, deadLetterQueue } = props;
    const period = Duration.minutes(5);

    this.topic = new Topic(this, 'AlarmTopic', {
      displayName: `Switchyard ${config.stage} alarms`,
      enforceSSL: true,
    });
    if (config.alarmEmail !== undefined) this.topic.addSubscription(new EmailSubscription(config.alarmEmail));
    const notify = new SnsAction(this.topic);

    const alarm = (
      name: string,
      metric: IMetric,
      threshold: number,
      description: string,
      comparisonOperator = ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    ): Alarm => {
      const a = new Alarm(this, `${name}Alarm`, {
        alarmName: `switchyard-${config.stage}-${name}`,
        alarmDescription: description,
        metric,
        threshold,
        comparisonOperator,
        evaluationPeriods: 1,
        // No traffic is not a problem: an idle hub must stay green.
        treatMissingData: TreatMissingData.NOT_BREACHING,
      });
      a.addAlarmAction(notify);
      a.addOkAction(notify);
      this.alarms.push(a);
      return a;
    };

    const custom = (metricName: MetricName, statistic: string, dimensions: Record<string, string> = {}) =>
      new Metric({
        namespace: METRICS_NAMESPACE,
        metricName,
        dimensionsMap: { service: config.serviceName, ...dimensions },
        statistic,
        period,
      });

    // ---- Per function: errors, throttles, duration near the timeout.
    for (const spec of FUNCTIONS) {
      const fn = functions[spec.name];
      alarm(
        `${spec.name}-errors`,
        fn.metricErrors({ period, statistic: 'Sum' }),
        1,
        `${spec.name}: the function threw or timed out. Logs: its log group, filter level=ERROR.`,
      );
      alarm(
        `${spec.name}-throttles`,
        fn.metricThrottles({ period, statistic: 'Sum' }),
        1,
        `${spec.name}: invocations were throttled (account or function concurrency exhausted).`,
      );
      alarm(
        `${spec.name}-duration`,
        fn.metricDuration({ period, statistic: 'p99' }),
        spec.timeoutSeconds * 1000 * DURATION_ALARM_RATIO,
        `${spec.name}: p99 duration above ${DURATION_ALARM_RATIO * 100}% of its ${spec.timeoutSeconds} s timeout.`,
        ComparisonOperator.GREATER_THAN_THRESHOLD,
      );
    }

    // ---- Step messages due now invoke the worker directly (lib/queue/invoke.ts): one that fails,
    // or waits too long, goes to the work queue (the on-failure destination). What Lambda could
    // not hand on is dropped; the sweeper re-sends such steps, but a drop means something is wrong.
    const worker = functions.worker;
    const asyncMetric = (metricName: string, statistic: string) =>
      worker.metric(metricName, { period, statistic });
    alarm(
      'worker-async-dropped',
      asyncMetric('AsyncEventsDropped', 'Sum'),
      1,
      'Lambda dropped step messages invoked on the worker without running them or passing them to the work queue. The sweeper re-sends their steps; check the worker errors and the queue (docs/deploy.md).',
    );
    alarm(
      'worker-destination-failures',
      asyncMetric('DestinationDeliveryFailures', 'Sum'),
      1,
      'Lambda could not pass failed step invocations to the work queue (its on-failure destination): check the queue and the worker role.',
    );

    // ---- Queue, API, table.
    alarm(
      'dlq-not-empty',
      deadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(1),
        statistic: 'Maximum',
      }),
      0,
      'Work messages failed 5 times and were parked in the DLQ. Inspect, fix, then redrive (docs/deploy.md).',
      ComparisonOperator.GREATER_THAN_THRESHOLD,
    );
    alarm(
      'queue-backlog-age',
      queue.metricApproximateAgeOfOldestMessage({ period, statistic: 'Maximum' }),
      QUEUE_AGE_ALARM_SECONDS,
      'The oldest work message waits for more than 15 minutes: the worker is failing or not keeping up.',
    );
    alarm(
      'api-5xx',
      api.metricServerError({ period, statistic: 'Sum' }),
      1,
      'The API answered 5xx. Bad input never gets a 5xx, so this is our fault.',
    );
    alarm(
      'webhook-4xx',
      // HTTP APIs publish per-route metrics (dimensions ApiId, Stage, Route) with detailed
      // metrics on; 429 (our throttle) is counted in 4xx, as are 401 (bad signature) and 413.
      new Metric({
        namespace: 'AWS/ApiGateway',
        metricName: '4xx',
        dimensionsMap: { ApiId: api.apiId, Stage: '$default', Route: WEBHOOK_ROUTE },
        statistic: 'Sum',
        period,
      }),
      WEBHOOK_4XX_THRESHOLD,
      'Many GitHub webhook requests were refused (401 signature, 413 size, 429 throttled): a wrong secret after rotation, a flood, or a replay storm. See the API access logs.',
    );
    alarm(
      'table-throttles',
      table.metricThrottledRequestsForOperations({ operations: TABLE_OPERATIONS, period }),
      1,
      'DynamoDB throttled requests on the run table (hot partition or account limits).',
    );
    alarm(
      'table-system-errors',
      table.metricSystemErrorsForOperations({ operations: TABLE_OPERATIONS, period }),
      1,
      'DynamoDB returned 5xx system errors on the run table.',
    );

    // ---- Runs (custom metrics from the engine and the sweeper).
    alarm(
      'runs-failed',
      custom(MetricName.RunsFailed, 'Sum'),
      1,
      'A run ended failed or expired. It was reported on its issue and in Discord; see `npm run runs -- list`.',
    );
    alarm(
      'runs-stuck',
      custom(MetricName.RunsStuck, 'Maximum'),
      1,
      'The sweeper found runs past their deadline. It resumes them; if this persists, a step keeps failing.',
    );
    alarm(
      'discord-ack-latency',
      custom(MetricName.AckLatency, 'p99'),
      ACK_LATENCY_ALARM_MS,
      'Discord interactions are answered close to the 3 s limit; users will see "The application did not respond".',
      ComparisonOperator.GREATER_THAN_THRESHOLD,
    );

    // ---- Dashboard.
    const perFunction = (label: string, metric: (fn: NodejsFunction) => Metric) =>
      FUNCTIONS.map((spec) => metric(functions[spec.name]).with({ label: `${spec.name} ${label}`.trim() }));
    const width = 8;
    this.dashboard = new Dashboard(this, 'Dashboard', {
      dashboardName: `switchyard-${config.stage}`,
      defaultInterval: Duration.hours(6),
    });
    this.dashboard.addWidgets(
      new TextWidget({
        markdown: `# Switchyard ${config.stage}\nRuns, ingress latency, functions, queue, API and table. Alarms go to the SNS topic in the stack outputs.`,
        width: 24,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Runs',
        width,
        left: [
          custom(MetricName.RunsStarted, 'Sum').with({ label: 'started' }),
          custom(MetricName.RunsSucceeded, 'Sum').with({ label: 'succeeded' }),
          custom(MetricName.RunsFailed, 'Sum').with({ label: 'failed' }),
          custom(MetricName.RunsStuck, 'Maximum').with({ label: 'stuck (max)' }),
        ],
        // Deliveries that started no run (malformed, or routed later), and what the sweeper
        // recovered that GitHub never sent again.
        right: [
          custom(MetricName.DeliveriesMalformed, 'Sum').with({ label: 'malformed deliveries' }),
          custom(MetricName.DeliveriesDeferred, 'Sum').with({ label: 'deferred deliveries' }),
          custom(MetricName.WebhooksRedelivered, 'Sum').with({ label: 'webhooks redelivered' }),
          custom(MetricName.AgentRunsReconciled, 'Sum').with({ label: 'agent runs reconciled' }),
        ],
      }),
      new GraphWidget({
        title: 'Discord ack latency and step duration (ms)',
        width,
        left: [
          custom(MetricName.AckLatency, 'p50').with({ label: 'ack p50' }),
          custom(MetricName.AckLatency, 'p99').with({ label: 'ack p99' }),
        ],
        right: [
          custom(MetricName.StepDuration, 'p50').with({ label: 'step p50' }),
          custom(MetricName.StepDuration, 'p99').with({ label: 'step p99' }),
        ],
        leftAnnotations: [{ value: 3000, label: 'Discord limit' }],
      }),
      new GraphWidget({
        title: 'Cold starts',
        width,
        left: FUNCTIONS.map((spec) =>
          custom(MetricName.ColdStart, 'Sum', { function_name: spec.name }).with({ label: spec.name }),
        ),
      }),
    );
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Invocations',
        width,
        left: perFunction('', (fn) => fn.metricInvocations({ period, statistic: 'Sum' })),
      }),
      new GraphWidget({
        title: 'Errors and throttles',
        width,
        left: perFunction('errors', (fn) => fn.metricErrors({ period, statistic: 'Sum' })),
        right: perFunction('throttles', (fn) => fn.metricThrottles({ period, statistic: 'Sum' })),
      }),
      new GraphWidget({
        title: 'Duration p99 (ms)',
        width,
        left: perFunction('p99', (fn) => fn.metricDuration({ period, statistic: 'p99' })),
      }),
    );
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'API requests and errors',
        width,
        left: [
          api.metricCount({ period, statistic: 'Sum' }).with({ label: 'requests' }),
          api.metricClientError({ period, statistic: 'Sum' }).with({ label: '4xx' }),
          api.metricServerError({ period, statistic: 'Sum' }).with({ label: '5xx' }),
        ],
        right: [
          api.metricLatency({ period, statistic: 'p99' }).with({ label: 'latency p99' }),
          api.metricIntegrationLatency({ period, statistic: 'p99' }).with({ label: 'integration p99' }),
        ],
      }),
      new GraphWidget({
        title: 'Step messages: work queue, DLQ, direct invocations',
        width,
        left: [
          queue
            .metricApproximateNumberOfMessagesVisible({ period, statistic: 'Maximum' })
            .with({ label: 'queued' }),
          deadLetterQueue
            .metricApproximateNumberOfMessagesVisible({ period, statistic: 'Maximum' })
            .with({ label: 'DLQ' }),
        ],
        right: [
          queue
            .metricApproximateAgeOfOldestMessage({ period, statistic: 'Maximum' })
            .with({ label: 'oldest (s)' }),
          asyncMetric('AsyncEventAge', 'Maximum').with({ label: 'invoked, oldest (ms)' }),
          asyncMetric('AsyncEventsDropped', 'Sum').with({ label: 'invoked, dropped' }),
        ],
      }),
      new GraphWidget({
        title: 'Run table',
        width,
        left: [
          new MathExpression({
            expression: 'throttles',
            usingMetrics: {
              throttles: table.metricThrottledRequestsForOperations({ operations: TABLE_OPERATIONS, period }),
            },
            label: 'throttled requests',
            period,
          }),
          table.metricUserErrors({ period, statistic: 'Sum' }).with({ label: 'user errors (account-wide)' }),
        ],
        right: [
          table.metricConsumedReadCapacityUnits({ period, statistic: 'Sum' }).with({ label: 'RCU' }),
          table.metricConsumedWriteCapacityUnits({ period, statistic: 'Sum' }).with({ label: 'WCU' }),
        ],
      }),
    );
    this.dashboard.addWidgets(
      new AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24, height: 6 }),
    );
  }
}
