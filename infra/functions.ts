import type { SecretName } from '../lib/common/secrets.ts';
import { WORKER_FUNCTION_TIMEOUT_MS } from '../lib/engine/timeouts.ts';
import { leadingKeys as keys } from '../lib/store/schema.ts';
import { DISCORD_POLICY_PATH_ON_LAMBDA } from './bundling.ts';

/**
 * The Lambda functions, as data: the stack builds them from this table and the bench bundles the
 * same entries. Permissions are declared here, next to what each function does, so a reviewer
 * can check least privilege in one place. Pure data: no CDK import, so the bench stays light.
 */
export interface FunctionSpec {
  /** Short name: construct ids, alarm names, bench keys, Powertools `function_name` dimension. */
  name: string;
  /** Construct id. */
  id: string;
  /** Entry file, relative to the project root; exports `handler`. */
  entry: string;
  description: string;
  timeoutSeconds: number;
  memoryMb: number;
  /** DynamoDB access on the run table and its indexes. */
  table: 'read' | 'readWrite';
  /**
   * Partition keys this function may touch on the table itself (`dynamodb:LeadingKeys`, patterns
   * as in StringLike). Absent: the whole key space, where the function's own transactions span
   * every item kind (docs/design.md, "Table access per function").
   */
  tableKeys?: readonly string[];
  /**
   * The table actions this function's code uses (absent: every action of its `table` level). Read
   * from the store methods its composition calls (docs/design.md, "Table access per function").
   */
  tableActions?: readonly TableAction[];
  /**
   * May send step messages: to the work queue, and those due now as direct invocations of the
   * worker (lib/queue/invoke.ts; `WORKER_FUNCTION_NAME` and an invoke grant, infra/switchyard-stack.ts).
   */
  sendsWork: boolean;
  /**
   * Takes the step messages (the worker). Its steps send the next ones to itself, a loop by
   * design: Lambda's recursive loop detection, which stops a chain of invocations through SQS or
   * the Invoke API after about 16, is turned off for it (the engine bounds its own loops).
   */
  takesWork?: true;
  /** Secrets it may read; only these get a `<NAME>_SECRET_ARN` variable and a read grant. */
  secrets: readonly SecretName[];
  /** Variables only this function reads, on top of the ones every function gets. */
  env?: Readonly<Record<string, string>>;
  /** Steps after esbuild beyond copying the config (infra/bundling.ts, afterBundlingCommands). */
  bundle?: {
    /** Re-bundle with code splitting: what the entry imports dynamically is not loaded at cold start. */
    splitting?: boolean;
    /** Write the Discord policy as JSON next to the entry (DISCORD_POLICY_FILE). */
    discordPolicy?: boolean;
  };
}

/** Actions on the run table, by store method: see `TABLE_ACTIONS_BY_USE` below. */
export const TABLE_READ_ACTIONS = ['GetItem', 'BatchGetItem', 'Query'] as const;
/**
 * TransactWriteItems is authorized through these per-item actions; no BatchWriteItem (nothing
 * batch-writes) and no ConditionCheckItem (no transaction checks an item it does not write).
 */
export const TABLE_WRITE_ACTIONS = ['PutItem', 'UpdateItem', 'DeleteItem'] as const;
export type TableAction = (typeof TABLE_READ_ACTIONS)[number] | (typeof TABLE_WRITE_ACTIONS)[number];

/*
 * What the store's methods need (lib/store/dynamodb.ts): getRun, kvGet, getReportState: GetItem.
 * listEvents, kvList, appendEvent (finds the last audit event): Query. listRuns, listActive:
 * BatchGetItem (after an index Query). createRun (its key, lock, listing, chunks and run, each a
 * put), commit, update, rememberKey, kvPut, claimEffect: PutItem. commit ending a run (its subject
 * lock), kvDelete, appendEvent (an audit event written again after a commit passed it deletes its
 * first copy), a createRun refused by the lock (it gives its idempotency key back), a stale lock
 * freed: DeleteItem. retire, the report claim, recordEffect, kvTransact counters,
 * kvJoin/kvLeave (the work queue's running sets): UpdateItem. Only the worker and the sweeper run
 * steps, report and admit work, so the five internet-facing writers need no UpdateItem.
 */

/** The worker's function timeout: one number shared with the engine's node-timeout check. */
export const WORKER_TIMEOUT_SECONDS = WORKER_FUNCTION_TIMEOUT_MS / 1000;

export const FUNCTIONS = [
  {
    name: 'discord',
    id: 'DiscordInteractions',
    entry: 'functions/discord-interactions.ts',
    description: 'POST /discord/interactions: verify, answer within 3 s, enqueue slow work',
    // Discord gives up after 3 s; a longer timeout would only hide a slow path.
    timeoutSeconds: 5,
    // More memory means more CPU, which shortens the cold start on the 3 s path.
    memoryMb: 1024,
    table: 'readWrite',
    // Starts runs (/plan: IDEM#, LOCK#, RUN#), signals them (buttons: a cancel releases the LOCK#),
    // lists them (/status), records refusals; KV: interaction tokens and run messages, the policy
    // version, pauses and their audit, refusals, console link grants, the work queue (/workloads).
    tableActions: ['GetItem', 'BatchGetItem', 'Query', 'PutItem', 'DeleteItem'],
    tableKeys: [
      keys.runs,
      keys.idempotency,
      keys.locks,
      keys.kv('discord-token'),
      keys.kv('discord'),
      keys.kv('config-version'),
      keys.kv('pause'),
      keys.kv('audit'),
      keys.kv('discord-refused'),
      keys.kv('console-link'),
      keys.kv('work'),
    ],
    sendsWork: true,
    // The first answer is the HTTP response; follow-ups with the bot token happen in the worker.
    // The console link key signs /status's "Open in browser" links (read only when /status asks).
    secrets: ['CONSOLE_LINK_KEY'],
    // The policy as JSON (no YAML parser in the bundle); the store, queue and engine (AWS SDK) in
    // chunks imported on the first command, so a cold start and a PING load neither.
    env: { DISCORD_POLICY_FILE: DISCORD_POLICY_PATH_ON_LAMBDA },
    bundle: { splitting: true, discordPolicy: true },
  },
  {
    name: 'github',
    id: 'GitHubWebhook',
    entry: 'functions/github-webhook.ts',
    description: 'POST /github/webhook: verify the HMAC, record the delivery, answer 202',
    timeoutSeconds: 10,
    memoryMb: 512,
    table: 'readWrite',
    // Starts runs (IDEM#, LOCK#, RUN#), signals them (comment commands, agent completions, edits),
    // finds a subject's runs; KV: the repo config cache and pushed versions, guards and delivery
    // records, holds, pauses and their audit, the work queue, CI-triage and coverage records, and
    // issue edits parked for a run that is planning.
    tableActions: ['GetItem', 'BatchGetItem', 'Query', 'PutItem', 'DeleteItem'],
    tableKeys: [
      keys.runs,
      keys.idempotency,
      keys.locks,
      keys.kv('config'),
      keys.kv('config-version'),
      keys.kv('guard'),
      keys.kv('github-delivery'),
      keys.kv('hold'),
      keys.kv('pause'),
      keys.kv('audit'),
      keys.kv('work'),
      keys.kv('ci-triage'),
      keys.kv('coverage'),
      keys.kv('issue-edit'),
    ],
    sendsWork: true,
    secrets: ['GITHUB_WEBHOOK_SECRET'],
  },
  {
    name: 'runs',
    id: 'RunsApi',
    entry: 'functions/runs-api.ts',
    description: 'GET /health, GET /runs, GET /runs/{id} (IAM-authorized)',
    timeoutSeconds: 10,
    memoryMb: 512,
    table: 'read',
    // Runs and their events, the health probe and the agents' work queue (GET /workloads): never
    // the Discord interaction tokens, idempotency records or locks.
    tableKeys: [keys.runs, keys.kv('health'), keys.kv('work')],
    sendsWork: false,
    secrets: [],
  },
  {
    name: 'callbacks',
    id: 'Callbacks',
    entry: 'functions/callbacks.ts',
    description: 'POST /callbacks/{token}: signed results from HTTP executors resume their run',
    timeoutSeconds: 10,
    memoryMb: 512,
    table: 'readWrite',
    // Spends the callback token, signals the run (a late result can end it: LOCK#), parks a result
    // that came mid-step in the work queue. Never starts runs (no IDEM#) and never lists them.
    tableActions: ['GetItem', 'Query', 'PutItem', 'DeleteItem'],
    tableKeys: [keys.runs, keys.locks, keys.kv('callback'), keys.kv('work')],
    sendsWork: true,
    secrets: [],
  },
  {
    name: 'console',
    id: 'Console',
    entry: 'functions/console.ts',
    description: 'GET /console, /console/{proxy+}: the run console (session from a signed Discord link)',
    timeoutSeconds: 10,
    memoryMb: 512,
    // Sessions and link redemption are KV writes; actions commit signals to the run.
    table: 'readWrite',
    // Lists and shows runs, signals them (a cancel releases the LOCK#, a retry takes it), reads the
    // work queue (workloads). Never starts runs (no IDEM#).
    tableActions: ['GetItem', 'BatchGetItem', 'Query', 'PutItem', 'DeleteItem'],
    tableKeys: [keys.runs, keys.locks, keys.kv('console-link'), keys.kv('console-session'), keys.kv('work')],
    // A signal enqueues the run's next step for the worker.
    sendsWork: true,
    secrets: ['CONSOLE_LINK_KEY'],
    // Rights come from the same policy document as the Discord function's.
    env: { DISCORD_POLICY_FILE: DISCORD_POLICY_PATH_ON_LAMBDA },
    bundle: { discordPolicy: true },
  },
  {
    name: 'actions',
    id: 'ActionsCallback',
    entry: 'functions/actions-callback.ts',
    description:
      "POST /callbacks/actions: agent workflow results, authenticated by the job's GitHub OIDC token",
    timeoutSeconds: 10,
    memoryMb: 512,
    table: 'readWrite',
    // Reads the dispatch record (its `finished` state makes a replay a 409), binds the workflow run
    // in the work queue, signals the run (which can end it: LOCK#). Never starts runs (no IDEM#)
    // and never lists them.
    tableActions: ['GetItem', 'Query', 'PutItem', 'DeleteItem'],
    tableKeys: [keys.runs, keys.locks, keys.kv('work')],
    sendsWork: true,
    // Read only on the fallback path: a run dispatched without a returned run id is bound by its
    // run-name, read from the Actions API.
    secrets: ['GITHUB_CREDENTIALS'],
  },
  {
    name: 'worker',
    id: 'Worker',
    entry: 'functions/worker.ts',
    description:
      'Runs one workflow step per message (invoked directly, or from SQS), reports to GitHub and Discord',
    timeoutSeconds: WORKER_TIMEOUT_SECONDS,
    memoryMb: 1024,
    table: 'readWrite',
    sendsWork: true,
    takesWork: true,
    secrets: ['DISCORD_BOT_TOKEN', 'GITHUB_CREDENTIALS'],
    // The app is imported on the first message, from
    // chunks: a cold start parses the handler only (bench: functions.worker.coldImportRatioToSingleBundle).
    bundle: { splitting: true },
  },
  {
    name: 'sweeper',
    id: 'Sweeper',
    entry: 'functions/sweeper.ts',
    description:
      'Every minute: expire gates, resume stalled steps, count stuck runs, recover lost GitHub events',
    timeoutSeconds: 60,
    memoryMb: 512,
    table: 'readWrite',
    // Resumes and reports go through the queue. GitHub credentials only for the recovery sweep:
    // listing and redelivering failed webhook deliveries, reading agents' Actions runs.
    sendsWork: true,
    secrets: ['GITHUB_CREDENTIALS'],
    // As the worker: the app loads on the first run, from chunks.
    bundle: { splitting: true },
  },
] as const satisfies readonly FunctionSpec[];

export type FunctionName = (typeof FUNCTIONS)[number]['name'];
