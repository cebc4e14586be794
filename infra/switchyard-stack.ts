import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Annotations,
  CfnOutput,
  Duration,
  RemovalPolicy,
  Stack,
  type StackProps,
  Validations,
} from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import {
  type CfnStage,
  HttpApi,
  HttpMethod,
  type HttpRoute,
  HttpStage,
  LogGroupLogDestination,
  PayloadFormatVersion,
} from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import { AttributeType, BillingMode, ProjectionType, Table } from 'aws-cdk-lib/aws-dynamodb';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { Policy, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, RecursiveLoop, Runtime } from 'aws-cdk-lib/aws-lambda';
import { SqsDestination } from 'aws-cdk-lib/aws-lambda-destinations';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import { NodejsFunction, OutputFormat, SourceMapMode } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { METRICS_NAMESPACE } from '../lib/common/metric-names.ts';
import type { SecretName } from '../lib/common/secrets.ts';
import { assertNodeTimeouts } from '../lib/engine/timeouts.ts';
import type { Workflow } from '../lib/engine/workflow.ts';
import { INDEXES, TABLE_KEYS } from '../lib/store/schema.ts';
import { buildRegistry } from '../lib/workflows/index.ts';
import { AgentRole } from './agent-role.ts';
import { grantPlannerModel } from './bedrock.ts';
import {
  afterBundlingCommands,
  BUNDLE_AWS_SDK,
  BUNDLE_DEFINE,
  BUNDLE_TARGET,
  CONFIG_PATH_ON_LAMBDA,
  CONFIG_SOURCE,
  ESM_REQUIRE_SHIM,
  MAIN_FIELDS,
} from './bundling.ts';
import type { SwitchyardConfig } from './config.ts';
import { createExecutorSecrets } from './executor-secrets.ts';
import {
  FUNCTIONS,
  type FunctionName,
  type FunctionSpec,
  TABLE_READ_ACTIONS,
  TABLE_WRITE_ACTIONS,
  type TableAction,
  WORKER_TIMEOUT_SECONDS,
} from './functions.ts';
import { Monitoring, WEBHOOK_ROUTE } from './monitoring.ts';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Runtime for every function: the newest Node.js Lambda offers (cdk-nag L1 asks for the latest). */
export const LAMBDA_RUNTIME = Runtime.NODEJS_24_X;

/** SQS redelivers a message this many times before it goes to the DLQ (and raises an alarm). */
export const MAX_RECEIVE_COUNT = 5;

/** AWS guidance: visibility timeout at least 6x the consumer's timeout, so retries never overlap. */
export const QUEUE_VISIBILITY_SECONDS = WORKER_TIMEOUT_SECONDS * 6;

export interface SwitchyardStackProps extends StackProps {
  config: SwitchyardConfig;
  /**
   * Directory holding `functions/`, `config/` and `package-lock.json`; defaults to the repository.
   * Tests that skip bundling may point it elsewhere.
   */
  projectRoot?: string;
}

/** Requests per second (steady, burst) per public route; the stage default (50/100) caps the sum. */
export const ROUTE_THROTTLES: Record<string, { rateLimit: number; burstLimit: number }> = {
  [WEBHOOK_ROUTE]: { rateLimit: 30, burstLimit: 60 },
  'POST /discord/interactions': { rateLimit: 20, burstLimit: 40 },
  'POST /callbacks/{token}': { rateLimit: 10, burstLimit: 20 },
  'GET /health': { rateLimit: 5, burstLimit: 10 },
};

export class SwitchyardStack extends Stack {
  readonly table: Table;
  readonly queue: Queue;
  readonly deadLetterQueue: Queue;
  readonly api: HttpApi;
  readonly functions: Record<FunctionName, NodejsFunction>;
  readonly secrets: Record<SecretName, Secret>;
  readonly monitoring: Monitoring;
  /** With `-c agentRepos=...`: the role agent workflows assume over GitHub OIDC. */
  readonly agentRole: AgentRole | undefined;

  constructor(scope: Construct, id: string, props: SwitchyardStackProps) {
    super(scope, id, props);
    // At synth: every workflow node's timeout plus lease grace must fit the worker's timeout.
    assertNodeTimeouts(buildRegistry().all() as Workflow<unknown>[], WORKER_TIMEOUT_SECONDS * 1000);
    const { config } = props;
    const projectRoot = props.projectRoot ?? REPO_ROOT;
    const prod = config.stage === 'prod';
    // Prod data and audit history outlive the stack; dev stacks clean up after themselves.
    const removalPolicy = prod ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

    // ---- Run table: the shape comes from lib/store/schema.ts, shared with the local stack.
    this.table = new Table(this, 'RunTable', {
      partitionKey: { name: TABLE_KEYS.partitionKey, type: AttributeType.STRING },
      sortKey: { name: TABLE_KEYS.sortKey, type: AttributeType.STRING },
      timeToLiveAttribute: TABLE_KEYS.ttl,
      billingMode: BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: prod,
      removalPolicy,
    });
    for (const index of Object.values(INDEXES)) {
      this.table.addGlobalSecondaryIndex({
        indexName: index.name,
        partitionKey: { name: index.partitionKey, type: AttributeType.STRING },
        sortKey: { name: index.sortKey, type: AttributeType.STRING },
        projectionType: ProjectionType.KEYS_ONLY,
      });
    }

    // ---- Work queue with a DLQ.
    this.deadLetterQueue = new Queue(this, 'WorkDeadLetterQueue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.queue = new Queue(this, 'WorkQueue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(QUEUE_VISIBILITY_SECONDS),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: MAX_RECEIVE_COUNT },
    });

    // ---- Secrets: created empty-handed (a random placeholder, never a value in the template);
    // operators put the real values, see docs/deploy.md.
    const secret = (secretId: string, description: string): Secret => {
      const s = new Secret(this, secretId, {
        description: `Switchyard ${config.stage}: ${description}. Set with put-secret-value (docs/deploy.md).`,
        // Alphanumeric, so the placeholder can never parse as a JSON list or a comma list.
        generateSecretString: { excludePunctuation: true, passwordLength: 32 },
        removalPolicy,
      });
      Validations.of(s).acknowledge({
        id: 'AwsSolutions-SMG4',
        reason:
          'Issued by Discord or GitHub, which Secrets Manager cannot rotate with a rotation Lambda; ' +
          'rotation is a documented manual step (docs/deploy.md) and functions pick new values up within 5 minutes.',
      });
      return s;
    };
    this.secrets = {
      DISCORD_BOT_TOKEN: secret('DiscordBotToken', 'Discord bot token (plain text)'),
      GITHUB_WEBHOOK_SECRET: secret(
        'GitHubWebhookSecret',
        'GitHub webhook secret(s): plain text, a comma-separated list or a JSON array, newest first',
      ),
      GITHUB_CREDENTIALS: secret(
        'GitHubCredentials',
        'GitHub credentials: a token, or JSON {"appId","privateKey","installationId"}',
      ),
      CONSOLE_LINK_KEY: secret(
        'ConsoleLinkKey',
        'HMAC key(s) of the console links /status sends: random text of 16+ characters, comma-separated newest first',
      ),
    };

    // ---- API. Created before the functions so the worker can be told the callback base URL.
    const accessLogs = new LogGroup(this, 'ApiAccessLogs', {
      retention: config.logRetentionDays,
      removalPolicy,
    });
    this.api = new HttpApi(this, 'Api', {
      apiName: `switchyard-${config.stage}`,
      description: 'Switchyard: Discord interactions, GitHub webhooks, runs API, executor callbacks',
      // Our own stage, because the default one cannot take access-log settings.
      createDefaultStage: false,
    });
    const stage = new HttpStage(this, 'DefaultStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      // Stops a flood (or a replay storm) before it reaches Lambda and the table.
      throttle: { rateLimit: 50, burstLimit: 100 },
      accessLogSettings: {
        destination: new LogGroupLogDestination(accessLogs),
        // No $context.path: the callback route carries its token in the path.
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            requestTime: '$context.requestTime',
            ip: '$context.identity.sourceIp',
            routeKey: '$context.routeKey',
            status: '$context.status',
            responseLength: '$context.responseLength',
            responseLatency: '$context.responseLatency',
            integrationLatency: '$context.integrationLatency',
            integrationError: '$context.integrationErrorMessage',
            userArn: '$context.identity.userArn',
          }),
        ),
      },
    });

    // ---- Functions.
    const plainEnv: Record<string, string> = {
      STAGE: config.stage,
      TABLE_NAME: this.table.tableName,
      QUEUE_URL: this.queue.queueUrl,
      SWITCHYARD_CONFIG: CONFIG_PATH_ON_LAMBDA,
      POWERTOOLS_SERVICE_NAME: config.serviceName,
      POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
      POWERTOOLS_LOG_LEVEL: config.logLevel,
      NODE_OPTIONS: '--enable-source-maps',
      ...(config.discordPublicKey !== undefined ? { DISCORD_PUBLIC_KEY: config.discordPublicKey } : {}),
      ...(config.discordApplicationId !== undefined
        ? { DISCORD_APPLICATION_ID: config.discordApplicationId }
        : {}),
    };
    if (config.discordPublicKey === undefined) {
      Annotations.of(this).addWarningV2(
        'switchyard:discordPublicKey',
        'No -c discordPublicKey: the Discord endpoint will refuse every interaction until it is set.',
      );
    }

    const functions: Partial<Record<FunctionName, NodejsFunction>> = {};
    for (const spec of FUNCTIONS) {
      // The worker builds callback URLs on it; the Discord function builds console links on it.
      const extraEnv: Record<string, string> =
        spec.name === 'worker' || spec.name === 'discord' ? { API_BASE_URL: this.api.apiEndpoint } : {};
      functions[spec.name] = this.createFunction(spec, {
        projectRoot,
        env: { ...plainEnv, ...extraEnv },
        logRetentionDays: config.logRetentionDays,
        removalPolicy,
      });
    }
    this.functions = functions as Record<FunctionName, NodejsFunction>;

    // The planner model named in the bundled config, and nothing else on Bedrock.
    grantPlannerModel(this.functions.worker, join(projectRoot, CONFIG_SOURCE));
    // The signing secrets HTTP executors name (`secretEnv`): created, granted and wired here.
    createExecutorSecrets(this, {
      configFile: join(projectRoot, CONFIG_SOURCE),
      stage: config.stage,
      removalPolicy,
      readers: [this.functions.worker, this.functions.callbacks],
    });

    // ---- Event sources.
    this.functions.worker.addEventSource(
      new SqsEventSource(this.queue, {
        batchSize: 5,
        // Only the failed messages of a batch come back, not the whole batch.
        reportBatchItemFailures: true,
        // Caps concurrent workers so GitHub and Discord rate limits are not hit by our own fan-out.
        maxConcurrency: 10,
      }),
    );
    this.invokeWorkerDirectly();
    new Rule(this, 'SweeperSchedule', {
      description: 'Runs the Switchyard sweeper every minute',
      schedule: Schedule.rate(Duration.minutes(1)),
      // A missed sweep is simply done by the next one, a minute later.
      targets: [
        new LambdaFunction(this.functions.sweeper, { retryAttempts: 0, maxEventAge: Duration.minutes(1) }),
      ],
    });

    // ---- Routes.
    const integration = (name: FunctionName) =>
      new HttpLambdaIntegration(`${name}Integration`, this.functions[name], {
        payloadFormatVersion: PayloadFormatVersion.VERSION_2_0,
      });
    const runs = integration('runs');
    const consoleIntegration = integration('console');
    const iam = new HttpIamAuthorizer();
    const publicRoutes: { routes: HttpRoute[]; why: string }[] = [
      {
        routes: this.api.addRoutes({
          path: '/discord/interactions',
          methods: [HttpMethod.POST],
          integration: integration('discord'),
        }),
        why: 'Called by Discord; every request is authenticated in the handler by its Ed25519 signature (401 otherwise).',
      },
      {
        routes: this.api.addRoutes({
          path: '/github/webhook',
          methods: [HttpMethod.POST],
          integration: integration('github'),
        }),
        why: 'Called by GitHub; every delivery is authenticated in the handler by its X-Hub-Signature-256 HMAC (401 otherwise).',
      },
      {
        routes: this.api.addRoutes({ path: '/health', methods: [HttpMethod.GET], integration: runs }),
        why: 'Health check for uptime probes and the smoke test; returns no data.',
      },
      {
        routes: this.api.addRoutes({
          path: '/callbacks/{token}',
          methods: [HttpMethod.POST],
          integration: integration('callbacks'),
        }),
        why: 'Called by external HTTP executors that hold no AWS credentials; the handler authenticates each call by the unguessable per-step token in the path.',
      },
      {
        routes: this.api.addRoutes({
          path: '/console',
          methods: [HttpMethod.GET],
          integration: consoleIntegration,
        }),
        why: 'The run console in a browser (no IAM credentials there): the handler answers 401 with no data without a session cookie, which only a signed, expiring, single-use Discord link can create.',
      },
      {
        routes: this.api.addRoutes({
          path: '/console/{proxy+}',
          methods: [HttpMethod.GET, HttpMethod.POST],
          integration: consoleIntegration,
        }),
        why: 'The console pages, their script and stylesheet, link exchange and actions: every route but the static files and the link exchange needs a session (401 otherwise); actions also need the session CSRF token.',
      },
      {
        routes: this.api.addRoutes({
          path: '/callbacks/actions',
          methods: [HttpMethod.POST],
          integration: integration('actions'),
        }),
        why: "Called by agent workflows on GitHub Actions; the handler authenticates each call by the job's GitHub OIDC token (RS256, issuer JWKS, audience, repository and run_id bound to the work item).",
      },
    ];
    for (const { routes, why } of publicRoutes) {
      for (const route of routes)
        Validations.of(route).acknowledge({ id: 'AwsSolutions-APIG4', reason: why });
    }
    this.api.addRoutes({ path: '/runs', methods: [HttpMethod.GET], integration: runs, authorizer: iam });
    this.api.addRoutes({ path: '/runs/{id}', methods: [HttpMethod.GET], integration: runs, authorizer: iam });

    // Per-route throttles under the stage default, so a flood on one public route (a replay storm
    // of webhooks, a misbehaving executor) cannot use up the others' share; detailed metrics on
    // the webhook route give it its own 4xx metric (429s included) for the alarm below.
    (stage.node.defaultChild as CfnStage).routeSettings = Object.fromEntries(
      Object.entries(ROUTE_THROTTLES).map(([route, t]) => [
        route,
        {
          // RouteSettings is raw JSON to CDK: CloudFormation's own (capitalised) names.
          ThrottlingRateLimit: t.rateLimit,
          ThrottlingBurstLimit: t.burstLimit,
          ...(route === WEBHOOK_ROUTE ? { DetailedMetricsEnabled: true } : {}),
        },
      ]),
    );

    // ---- Alarms and dashboard.
    this.monitoring = new Monitoring(this, 'Monitoring', {
      config,
      functions: this.functions,
      api: this.api,
      table: this.table,
      queue: this.queue,
      deadLetterQueue: this.deadLetterQueue,
    });

    // ---- The role agent workflows assume over GitHub OIDC (only with -c agentRepos=...).
    if (config.agentRepos?.length)
      this.agentRole = new AgentRole(this, 'Agents', {
        repos: config.agentRepos,
        models: config.agentModels,
        ...(config.githubOidcProviderArn ? { providerArn: config.githubOidcProviderArn } : {}),
      });

    // ---- Outputs.
    const base = this.api.apiEndpoint;
    const output = (id: string, value: string, description: string) =>
      new CfnOutput(this, id, { value, description });
    output('ApiBaseUrl', base, 'API base URL (smoke test: npm run smoke -- --url <this>)');
    output(
      'DiscordInteractionsUrl',
      `${base}/discord/interactions`,
      'Discord portal: Interactions Endpoint URL',
    );
    output('GitHubWebhookUrl', `${base}/github/webhook`, 'GitHub webhook Payload URL');
    output('TableName', this.table.tableName, 'Run table (TABLE_NAME for npm run runs)');
    output('QueueUrl', this.queue.queueUrl, 'Work queue');
    output('DeadLetterQueueUrl', this.deadLetterQueue.queueUrl, 'Work dead-letter queue');
    output(
      'AlarmTopicArn',
      this.monitoring.topic.topicArn,
      'Alarm notifications (subscribe more endpoints here)',
    );
    output(
      'DiscordBotTokenSecretArn',
      this.secrets.DISCORD_BOT_TOKEN.secretArn,
      'put-secret-value: bot token',
    );
    output(
      'GitHubWebhookSecretArn',
      this.secrets.GITHUB_WEBHOOK_SECRET.secretArn,
      'put-secret-value: webhook secret(s)',
    );
    output(
      'GitHubCredentialsSecretArn',
      this.secrets.GITHUB_CREDENTIALS.secretArn,
      'put-secret-value: GitHub token or App JSON',
    );
    output('ConsoleUrl', `${base}/console`, 'Run console (open it from Discord /status)');
    output(
      'ConsoleLinkKeySecretArn',
      this.secrets.CONSOLE_LINK_KEY.secretArn,
      'put-secret-value: console link HMAC key (16+ random characters)',
    );
    output(
      'RunsApiInvokeArn',
      this.formatArn({
        service: 'execute-api',
        resource: this.api.apiId,
        resourceName: '$default/GET/runs*',
      }),
      'Grant execute-api:Invoke on this to whoever may read runs over HTTP',
    );
  }

  /**
   * Step messages due now invoke the worker asynchronously instead of going through SQS
   * (lib/queue/invoke.ts): every function that sends work is told the worker's name and may
   * invoke it. An invocation that fails, or waits in Lambda's queue longer than `maxEventAge`, is
   * not retried by Lambda but sent to the work queue (the on-failure destination), where SQS
   * redelivers it and dead-letters it after its receives, as any message.
   */
  private invokeWorkerDirectly(): void {
    const worker = this.functions.worker;
    worker.configureAsyncInvoke({
      retryAttempts: 0,
      maxEventAge: Duration.minutes(15),
      onFailure: new SqsDestination(this.queue),
    });
    const invoke = new PolicyStatement({
      actions: ['lambda:InvokeFunction'],
      resources: [worker.functionArn],
    });
    for (const spec of FUNCTIONS) {
      if (!spec.sendsWork) continue;
      const fn = this.functions[spec.name];
      if (fn !== worker) {
        fn.addEnvironment('WORKER_FUNCTION_NAME', worker.functionName);
        fn.addToRolePolicy(invoke);
      } else if (fn.role) {
        // Not in its role's default policy: the function depends on that, and this names the function.
        // The worker finds its own name in AWS_LAMBDA_FUNCTION_NAME (lib/app/worker-function.ts).
        new Policy(this, 'WorkerInvokesItself', { roles: [fn.role], statements: [invoke] });
      }
    }
  }

  private createFunction(
    spec: FunctionSpec,
    opts: {
      projectRoot: string;
      env: Record<string, string>;
      logRetentionDays: RetentionDays;
      removalPolicy: RemovalPolicy;
    },
  ): NodejsFunction {
    const entry = join(opts.projectRoot, spec.entry);
    if (!existsSync(entry))
      throw new Error(`function entry ${spec.entry} not found under ${opts.projectRoot}`);

    const logGroup = new LogGroup(this, `${spec.id}Logs`, {
      retention: opts.logRetentionDays,
      removalPolicy: opts.removalPolicy,
    });
    // Our own role instead of the default one, which carries the AWSLambdaBasicExecutionRole managed
    // policy (logs on every log group of the account): this one may write to its own log group only.
    const role = new Role(this, `${spec.id}Role`, {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: `Switchyard ${spec.name} function`,
    });
    logGroup.grantWrite(role);

    const secretEnv: Record<string, string> = {};
    for (const name of spec.secrets) {
      const secret = this.secrets[name];
      secret.grantRead(role);
      secretEnv[`${name}_SECRET_ARN`] = secret.secretArn;
    }

    const fn = new NodejsFunction(this, spec.id, {
      entry,
      handler: 'handler',
      description: spec.description,
      runtime: LAMBDA_RUNTIME,
      architecture: Architecture.ARM_64,
      memorySize: spec.memoryMb,
      timeout: Duration.seconds(spec.timeoutSeconds),
      role,
      logGroup,
      ...('takesWork' in spec ? { recursiveLoop: RecursiveLoop.ALLOW } : {}),
      environment: {
        ...opts.env,
        ...spec.env,
        ...secretEnv,
        // Fixed name for the ColdStart metric's function_name dimension, so the dashboard can find it.
        POWERTOOLS_METRICS_FUNCTION_NAME: spec.name,
      },
      projectRoot: opts.projectRoot,
      depsLockFilePath: join(opts.projectRoot, 'package-lock.json'),
      bundling: {
        forceDockerBundling: false,
        format: OutputFormat.ESM,
        target: BUNDLE_TARGET,
        mainFields: MAIN_FIELDS,
        banner: ESM_REQUIRE_SHIM,
        define: BUNDLE_DEFINE,
        minify: true,
        sourceMap: true,
        sourceMapMode: SourceMapMode.DEFAULT,
        sourcesContent: false,
        bundleAwsSDK: BUNDLE_AWS_SDK,
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          afterBundling: (inputDir: string, outputDir: string) =>
            afterBundlingCommands(spec, inputDir, outputDir),
        },
      },
    });

    this.grantTable(
      role,
      spec.table,
      'tableKeys' in spec ? spec.tableKeys : undefined,
      'tableActions' in spec ? spec.tableActions : undefined,
    );
    if (spec.sendsWork) this.queue.grantSendMessages(role);
    return fn;
  }

  /**
   * Table access written out by hand rather than `grantReadWriteData`: no Scan (no request path
   * may scan), no stream actions, and each index named, so the policy holds no wildcard.
   */
  private grantTable(
    role: Role,
    access: FunctionSpec['table'],
    leadingKeys?: readonly string[],
    only?: readonly TableAction[],
  ): void {
    const indexArns = Object.values(INDEXES).map((index) => `${this.table.tableArn}/index/${index.name}`);
    // Only these partitions of the table (the indexes are KEYS_ONLY: a query there shows keys).
    const onKeys = leadingKeys
      ? { conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [...leadingKeys] } } }
      : {};
    const allowed = (actions: readonly TableAction[]) =>
      actions.filter((a) => only === undefined || only.includes(a)).map((a) => `dynamodb:${a}`);
    role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: allowed(TABLE_READ_ACTIONS),
        resources: [this.table.tableArn],
        ...onKeys,
      }),
    );
    role.addToPrincipalPolicy(new PolicyStatement({ actions: ['dynamodb:Query'], resources: indexArns }));
    const writes = allowed(TABLE_WRITE_ACTIONS);
    if (access === 'readWrite' && writes.length > 0) {
      role.addToPrincipalPolicy(
        new PolicyStatement({ actions: writes, resources: [this.table.tableArn], ...onKeys }),
      );
    }
  }
}
