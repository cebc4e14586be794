import type { CfnResource } from 'aws-cdk-lib';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { FUNCTIONS, WORKER_TIMEOUT_SECONDS } from '../../infra/functions.ts';
import { MAX_RECEIVE_COUNT, type SwitchyardStack } from '../../infra/switchyard-stack.ts';
import { MetricName } from '../../lib/common/metric-names.ts';
import { INDEXES } from '../../lib/store/schema.ts';
import { synth } from './support.ts';

type Resources = Record<
  string,
  { Type: string; Properties: Record<string, unknown>; DeletionPolicy?: string }
>;

let template: Template;
let stack: SwitchyardStack;
let resources: Resources;

const logicalId = (construct: { node: { defaultChild?: unknown } }) =>
  stack.getLogicalId(construct.node.defaultChild as CfnResource);

const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);

beforeAll(() => {
  ({ template, stack } = synth());
  resources = template.toJSON().Resources as Resources;
});

describe('functions', () => {
  it('creates one function per handler, on Node.js 22 or later, ARM64, ESM handler `handler`', () => {
    const fns = ofType('AWS::Lambda::Function');
    expect(fns).toHaveLength(FUNCTIONS.length);
    for (const [, fn] of fns) {
      expect(fn.Properties.Architectures).toEqual(['arm64']);
      expect(Number(/^nodejs(\d+)\.x$/.exec(String(fn.Properties.Runtime))?.[1])).toBeGreaterThanOrEqual(22);
      expect(fn.Properties.Handler).toBe('index.handler');
    }
  });

  it.each(FUNCTIONS.map((spec) => [spec.name, spec] as const))('%s has its timeout and memory', (_, spec) => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Timeout: spec.timeoutSeconds,
      MemorySize: spec.memoryMb,
      Environment: { Variables: Match.objectLike({ POWERTOOLS_METRICS_FUNCTION_NAME: spec.name }) },
    });
  });

  it('gives every function its own log group with an explicit retention', () => {
    for (const spec of FUNCTIONS) {
      const fn = resources[logicalId(stack.functions[spec.name])];
      const ref = (fn!.Properties.LoggingConfig as { LogGroup: { Ref: string } }).LogGroup.Ref;
      expect(resources[ref]?.Type).toBe('AWS::Logs::LogGroup');
      expect(resources[ref]?.Properties.RetentionInDays).toBe(14);
    }
  });

  it('passes the plain configuration every handler reads', () => {
    for (const [, fn] of ofType('AWS::Lambda::Function')) {
      const env = (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
      expect(env).toMatchObject({
        STAGE: 'dev',
        TABLE_NAME: { Ref: logicalId(stack.table) },
        QUEUE_URL: { Ref: logicalId(stack.queue) },
        SWITCHYARD_CONFIG: '/var/task/switchyard.yml',
        POWERTOOLS_SERVICE_NAME: 'switchyard-dev',
        POWERTOOLS_METRICS_NAMESPACE: 'Switchyard',
        POWERTOOLS_LOG_LEVEL: 'INFO',
        NODE_OPTIONS: '--enable-source-maps',
        DISCORD_PUBLIC_KEY: 'a'.repeat(64),
        DISCORD_APPLICATION_ID: '123456789012345678',
      });
    }
  });

  it('tells the worker the API endpoint as its callback base URL', () => {
    const worker = resources[logicalId(stack.functions.worker)];
    const env = (worker!.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(env.API_BASE_URL).toEqual({ 'Fn::GetAtt': [logicalId(stack.api), 'ApiEndpoint'] });
  });

  it('feeds the worker from the queue with partial batch failures', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: logicalId(stack.functions.worker) },
      EventSourceArn: { 'Fn::GetAtt': [logicalId(stack.queue), 'Arn'] },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });

  it('lets steps due now invoke the worker directly: a failed or stale invocation goes to the queue, not retried by Lambda', () => {
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: logicalId(stack.functions.worker) },
      MaximumRetryAttempts: 0,
      MaximumEventAgeInSeconds: 900,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [logicalId(stack.queue), 'Arn'] } } },
    });
  });

  it('tells every function that sends work the name of the worker, and lets those (and only those) invoke it', () => {
    const workerArn = { 'Fn::GetAtt': [logicalId(stack.functions.worker), 'Arn'] };
    const policiesOf = (role: { node: { defaultChild?: unknown } }) =>
      Object.values(resources).filter(
        (r) =>
          r.Type === 'AWS::IAM::Policy' &&
          JSON.stringify(r.Properties.Roles) === JSON.stringify([{ Ref: logicalId(role) }]),
      );
    const invokes = (role: { node: { defaultChild?: unknown } }) =>
      policiesOf(role).some((p) =>
        (
          p.Properties.PolicyDocument as { Statement: { Action: unknown; Resource: unknown }[] }
        ).Statement.some(
          (st) =>
            st.Action === 'lambda:InvokeFunction' &&
            JSON.stringify(st.Resource) === JSON.stringify(workerArn),
        ),
      );
    for (const spec of FUNCTIONS) {
      const fn = stack.functions[spec.name];
      const env = (resources[logicalId(fn)]!.Properties.Environment as { Variables: Record<string, unknown> })
        .Variables;
      expect(invokes(fn.role!), spec.name).toBe(spec.sendsWork);
      // The worker cannot be given its own name: it reads AWS_LAMBDA_FUNCTION_NAME.
      expect(env.WORKER_FUNCTION_NAME, spec.name).toEqual(
        spec.sendsWork && spec.name !== 'worker' ? { Ref: logicalId(stack.functions.worker) } : undefined,
      );
    }
  });

  it('lets the worker loop through its own messages (recursive loop detection off), and no other function', () => {
    for (const spec of FUNCTIONS) {
      const fn = resources[logicalId(stack.functions[spec.name])]!;
      expect(fn.Properties.RecursiveLoop, spec.name).toBe(spec.name === 'worker' ? 'Allow' : undefined);
    }
  });

  it('runs the sweeper every minute', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
      State: 'ENABLED',
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [logicalId(stack.functions.sweeper), 'Arn'] } })],
    });
  });
});

describe('api', () => {
  const routes = () =>
    Object.fromEntries(
      ofType('AWS::ApiGatewayV2::Route').map(([, r]) => [
        r.Properties.RouteKey,
        r.Properties.AuthorizationType,
      ]),
    );

  it('has exactly the contract routes', () => {
    expect(Object.keys(routes()).sort()).toEqual(
      [
        'GET /health',
        'GET /runs',
        'GET /runs/{id}',
        'POST /callbacks/{token}',
        'POST /callbacks/actions',
        'POST /discord/interactions',
        'POST /github/webhook',
        'GET /console',
        'GET /console/{proxy+}',
        'POST /console/{proxy+}',
      ].sort(),
    );
  });

  it('puts IAM authorization on the runs routes only', () => {
    expect(routes()).toEqual({
      'GET /health': 'NONE',
      'GET /runs': 'AWS_IAM',
      'GET /runs/{id}': 'AWS_IAM',
      'POST /callbacks/{token}': 'NONE',
      'POST /callbacks/actions': 'NONE',
      'POST /discord/interactions': 'NONE',
      'POST /github/webhook': 'NONE',
      // The console authenticates by its session cookie (browsers hold no IAM credentials).
      'GET /console': 'NONE',
      'GET /console/{proxy+}': 'NONE',
      'POST /console/{proxy+}': 'NONE',
    });
  });

  it('integrates Lambda with payload format 2.0', () => {
    for (const [, integration] of ofType('AWS::ApiGatewayV2::Integration')) {
      expect(integration.Properties).toMatchObject({
        IntegrationType: 'AWS_PROXY',
        PayloadFormatVersion: '2.0',
      });
    }
  });

  it('deploys a $default stage with throttling and access logs that omit the path', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingBurstLimit: 100, ThrottlingRateLimit: 50 },
      AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('routeKey') },
    });
    const [, stage] = ofType('AWS::ApiGatewayV2::Stage')[0]!;
    expect(JSON.stringify(stage.Properties.AccessLogSettings)).not.toContain('$context.path');
  });
});

describe('queue', () => {
  it('sends a message to the DLQ after 5 receives', () => {
    template.hasResourceProperties('AWS::SQS::Queue', {
      RedrivePolicy: {
        deadLetterTargetArn: { 'Fn::GetAtt': [logicalId(stack.deadLetterQueue), 'Arn'] },
        maxReceiveCount: MAX_RECEIVE_COUNT,
      },
    });
  });

  it('keeps a message invisible for at least 6 worker timeouts', () => {
    const queue = resources[logicalId(stack.queue)];
    expect(queue?.Properties.VisibilityTimeout).toBeGreaterThanOrEqual(6 * WORKER_TIMEOUT_SECONDS);
  });

  it('encrypts both queues with SQS-managed keys and refuses plain HTTP', () => {
    for (const queue of [stack.queue, stack.deadLetterQueue]) {
      expect(resources[logicalId(queue)]?.Properties.SqsManagedSseEnabled).toBe(true);
      template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        Queues: [{ Ref: logicalId(queue) }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Deny',
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            }),
          ]),
        },
      });
    }
  });
});

describe('table', () => {
  it('matches lib/store/schema.ts: pk/sk strings, on demand, PITR, TTL on `ttl`', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
    });
  });

  it('has the four KEYS_ONLY GSIs of the schema, all keys strings', () => {
    const table = resources[logicalId(stack.table)]!;
    const gsis = table.Properties.GlobalSecondaryIndexes as {
      IndexName: string;
      KeySchema: { AttributeName: string; KeyType: string }[];
      Projection: { ProjectionType: string };
    }[];
    expect(gsis.map((g) => g.IndexName).sort()).toEqual(
      Object.values(INDEXES)
        .map((i) => i.name)
        .sort(),
    );
    for (const index of Object.values(INDEXES)) {
      expect(gsis.find((g) => g.IndexName === index.name)).toEqual({
        IndexName: index.name,
        KeySchema: [
          { AttributeName: index.partitionKey, KeyType: 'HASH' },
          { AttributeName: index.sortKey, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'KEYS_ONLY' },
      });
    }
    const types = table.Properties.AttributeDefinitions as { AttributeType: string }[];
    expect(types.every((a) => a.AttributeType === 'S')).toBe(true);
  });

  it('is destroyed with a dev stack and has no deletion protection', () => {
    const table = resources[logicalId(stack.table)]!;
    expect(table.DeletionPolicy).toBe('Delete');
    expect(table.Properties.DeletionProtectionEnabled).toBe(false);
  });
});

describe('least privilege', () => {
  const statements = () =>
    ofType('AWS::IAM::Policy').flatMap(
      ([, p]) =>
        (p.Properties.PolicyDocument as { Statement: { Action: string | string[]; Resource: unknown }[] })
          .Statement,
    );

  it('uses no wildcard action and no wildcard resource', () => {
    for (const statement of statements()) {
      for (const action of [statement.Action].flat()) expect(action).not.toContain('*');
      expect(JSON.stringify(statement.Resource)).not.toMatch(/"\*"|\/\*"/);
    }
  });

  it('never grants Scan or any managed policy', () => {
    expect(JSON.stringify(statements())).not.toContain('dynamodb:Scan');
    for (const [, role] of ofType('AWS::IAM::Role'))
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
  });

  it('gives the runs API read access only', () => {
    const role = stack.functions.runs.role!;
    const policy = Object.values(resources).find(
      (r) =>
        r.Type === 'AWS::IAM::Policy' &&
        JSON.stringify(r.Properties.Roles) === JSON.stringify([{ Ref: logicalId(role) }]),
    );
    const actions = JSON.stringify(policy?.Properties.PolicyDocument);
    expect(actions).toContain('dynamodb:Query');
    expect(actions).not.toMatch(
      /PutItem|UpdateItem|DeleteItem|BatchWriteItem|sqs:SendMessage|secretsmanager/,
    );
  });
});

describe('alarms and dashboard', () => {
  const alarms = (): Record<string, Record<string, unknown>> =>
    Object.fromEntries(
      ofType('AWS::CloudWatch::Alarm').map(([, a]) => [a.Properties.AlarmName, a.Properties]),
    );

  it('raises errors, throttles and duration alarms for every function', () => {
    const names = Object.keys(alarms());
    for (const spec of FUNCTIONS) {
      for (const kind of ['errors', 'throttles', 'duration']) {
        expect(names).toContain(`switchyard-dev-${spec.name}-${kind}`);
      }
    }
  });

  it.each(FUNCTIONS.map((spec) => [spec.name, spec] as const))(
    'alarms when %s p99 duration passes 80% of its timeout',
    (name, spec) => {
      expect(alarms()[`switchyard-dev-${name}-duration`]).toMatchObject({
        MetricName: 'Duration',
        ExtendedStatistic: 'p99',
        Threshold: spec.timeoutSeconds * 1000 * 0.8,
        ComparisonOperator: 'GreaterThanThreshold',
      });
    },
  );

  it('alarms on a non-empty DLQ, API 5xx and DynamoDB throttles', () => {
    const all = alarms();
    expect(all['switchyard-dev-dlq-not-empty']).toMatchObject({
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [
        { Name: 'QueueName', Value: { 'Fn::GetAtt': [logicalId(stack.deadLetterQueue), 'QueueName'] } },
      ],
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
    });
    expect(all['switchyard-dev-api-5xx']).toMatchObject({ MetricName: '5xx', Namespace: 'AWS/ApiGateway' });
    expect(JSON.stringify(all['switchyard-dev-table-throttles'])).toContain('ThrottledRequests');
  });

  it('alarms when Lambda drops step messages invoked on the worker, or cannot pass them to the queue', () => {
    const all = alarms();
    for (const [name, metric] of [
      ['worker-async-dropped', 'AsyncEventsDropped'],
      ['worker-destination-failures', 'DestinationDeliveryFailures'],
    ]) {
      expect(all[`switchyard-dev-${name}`]).toMatchObject({
        Namespace: 'AWS/Lambda',
        MetricName: metric,
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: logicalId(stack.functions.worker) } }],
        Statistic: 'Sum',
        Threshold: 1,
      });
    }
  });

  it('alarms on failed and stuck runs from the custom metrics', () => {
    const all = alarms();
    for (const [name, metric] of [
      ['runs-failed', MetricName.RunsFailed],
      ['runs-stuck', MetricName.RunsStuck],
    ]) {
      expect(all[`switchyard-dev-${name}`]).toMatchObject({
        Namespace: 'Switchyard',
        MetricName: metric,
        Dimensions: [{ Name: 'service', Value: 'switchyard-dev' }],
      });
    }
  });

  it('sends every alarm, and its recovery, to the SNS topic', () => {
    const topic = { Ref: logicalId(stack.monitoring.topic) };
    for (const alarm of Object.values(alarms())) {
      expect(alarm.AlarmActions).toEqual([topic]);
      expect(alarm.OKActions).toEqual([topic]);
      expect(alarm.TreatMissingData).toBe('notBreaching');
    }
  });

  it('subscribes the alarm email and refuses plain HTTP on the topic', () => {
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  it('draws every custom metric and the AWS signals on one dashboard', () => {
    const [, dashboard] = ofType('AWS::CloudWatch::Dashboard')[0]!;
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    for (const name of Object.values(MetricName)) expect(body).toContain(name);
    for (const signal of ['AWS/Lambda', 'AWS/ApiGateway', 'AWS/SQS', 'AWS/DynamoDB', 'ThrottledRequests']) {
      expect(body).toContain(signal);
    }
    expect(body).toContain('alarm');
  });
});

describe('outputs', () => {
  it.each([
    ['DiscordInteractionsUrl', '/discord/interactions'],
    ['GitHubWebhookUrl', '/github/webhook'],
  ])('%s is the API endpoint plus %s', (output, path) => {
    template.hasOutput(output, {
      Value: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [logicalId(stack.api), 'ApiEndpoint'] }, path]] },
    });
  });

  it('exposes the table name, queue URL and DLQ URL', () => {
    template.hasOutput('TableName', { Value: { Ref: logicalId(stack.table) } });
    template.hasOutput('QueueUrl', { Value: { Ref: logicalId(stack.queue) } });
    template.hasOutput('DeadLetterQueueUrl', { Value: { Ref: logicalId(stack.deadLetterQueue) } });
  });
});
