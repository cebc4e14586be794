import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join, resolve } from 'node:path';
import { LOCAL_DIR, LOCAL_STATE_FILE } from '../lib/app/local-env.ts';
import { type LocalRoutesDeps, localRoutes } from '../lib/app/local-routes.ts';
import { recoverySweep } from '../lib/app/recovery.ts';
import { createWorkerApp, type WorkerApp, type WorkerAppOptions } from '../lib/app/worker.ts';
import { logger } from '../lib/common/observability.ts';
import { StoreUnavailableError } from '../lib/engine/store-errors.ts';
import { httpListener } from '../lib/http/local-adapter.ts';
import { InMemoryQueue } from '../lib/queue/memory.ts';
import { dynamoClient } from '../lib/store/client.ts';
import { createTable, DynamoRunStore } from '../lib/store/dynamodb.ts';
import { type DynamoDbLocal, startDynamoDbLocal } from '../lib/store/dynamodb-local.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export interface LocalStackOptions {
  env?: NodeJS.ProcessEnv;
  /** Keep the embedded DynamoDB's data on disk (default) or in memory. */
  persist?: boolean;
  /** How often the sweeper runs (ms). */
  sweepIntervalMs?: number;
  /** Quiet mode for tests. */
  print?: (line: string) => void;
  /** The in-process queue (the fault bench passes one whose sends fail at random). */
  queue?: InMemoryQueue;
  /** Engine tuning and fault points (bench/faults.ts kills workers mid-step through them). */
  engine?: WorkerAppOptions['engine'];
}

export interface LocalStack {
  url: string;
  app: WorkerApp;
  store: DynamoRunStore;
  queue: InMemoryQueue;
  env: NodeJS.ProcessEnv;
  /** The Ed25519 private key (PKCS8 PEM) matching DISCORD_PUBLIC_KEY when the stack generated it. */
  discordPrivateKeyPem?: string;
  stop(): Promise<void>;
}

const SPKI_ED25519_PREFIX = '302a300506032b6570032100';

/**
 * The whole system on one machine: DynamoDB Local (or DYNAMODB_ENDPOINT), the table, the same
 * Lambda handlers behind an API Gateway HTTP API v2 adapter, the in-process queue and worker, and
 * the sweeper on a timer.
 */
export async function startLocalStack(opts: LocalStackOptions = {}): Promise<LocalStack> {
  const print = opts.print ?? ((line: string) => console.log(line));
  const env: NodeJS.ProcessEnv = { ...(opts.env ?? process.env) };
  env.TABLE_NAME ||= 'switchyard-local';
  env.SWITCHYARD_CONFIG ||= 'config/switchyard.yml';
  env.SWITCHYARD_LOCAL = '1';

  let db: DynamoDbLocal | undefined;
  if (!env.DYNAMODB_ENDPOINT) {
    const persist = opts.persist ?? true;
    const path = resolve(LOCAL_DIR, 'dynamodb');
    if (persist) mkdirSync(path, { recursive: true });
    db = await startDynamoDbLocal(persist ? { path } : {});
    env.DYNAMODB_ENDPOINT = db.endpoint;
  }
  const client = dynamoClient(env.DYNAMODB_ENDPOINT);
  const created = await createTable(client, env.TABLE_NAME);
  const store = new DynamoRunStore(client, { tableName: env.TABLE_NAME });

  // Credentials a developer does not have yet are generated and printed, so requests can be signed.
  let discordPrivateKeyPem: string | undefined;
  if (!env.DISCORD_PUBLIC_KEY) {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const spki = publicKey.export({ type: 'spki', format: 'der' }).toString('hex');
    env.DISCORD_PUBLIC_KEY = spki.slice(SPKI_ED25519_PREFIX.length);
    discordPrivateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  }
  if (!env.GITHUB_WEBHOOK_SECRET) env.GITHUB_WEBHOOK_SECRET = randomBytes(20).toString('hex');

  const queue = opts.queue ?? new InMemoryQueue({ redeliveryMs: 2_000 });
  // The operator CLI commits signals without a queue of its own; a short grace lets the sweeper
  // pick its steps up within a couple of seconds.
  let url = '';
  const app = await createWorkerApp({
    store,
    queue,
    env,
    publicUrl: () => url || undefined,
    engine: { enqueueGraceMs: 2_000, ...opts.engine },
  });
  queue.consume(async (message, delivery) => {
    await app.handle(message, undefined, delivery);
  });

  const deps: LocalRoutesDeps = { store, queue, env, app };
  const server: Server = createServer(
    httpListener(await localRoutes(deps), (err) => logger.error('handler failed', { error: err as Error })),
  );
  const host = env.HOST || '127.0.0.1';
  const port = Number(env.PORT || 3000);
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolveListen());
  });
  const address = server.address();
  url = `http://${host}:${typeof address === 'object' && address ? address.port : port}`;

  const sweepEvery = opts.sweepIntervalMs ?? Number(env.SWEEP_INTERVAL_MS || 5_000);
  let sweeping = false;
  const sweeper = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    app
      .refreshConfig()
      .then(() => Promise.all([app.engine.sweep(), app.agents.hub.reconcile(), recoverySweep(app)]))
      .then(([r]) => {
        if (r.reenqueued + r.expired + r.reported > 0) logger.info('sweep', { ...r });
      })
      .catch((err: unknown) => logger.error('sweep failed', { error: err as Error }))
      .finally(() => {
        sweeping = false;
      });
  }, sweepEvery);

  mkdirSync(LOCAL_DIR, { recursive: true });
  writeFileSync(
    LOCAL_STATE_FILE,
    JSON.stringify(
      { pid: process.pid, endpoint: env.DYNAMODB_ENDPOINT, tableName: env.TABLE_NAME, url },
      null,
      2,
    ),
  );
  if (discordPrivateKeyPem)
    writeFileSync(join(LOCAL_DIR, 'discord-test-key.pem'), discordPrivateKeyPem, { mode: 0o600 });

  print(`Switchyard is up at ${url}`);
  print(`  console       ${url}/console  (loopback only, no sign-in)`);
  print(
    `  DynamoDB      ${db ? `embedded DynamoDB Local at ${env.DYNAMODB_ENDPOINT}` : env.DYNAMODB_ENDPOINT}, table ${env.TABLE_NAME} (${created})`,
  );
  print(`  config        ${env.SWITCHYARD_CONFIG}`);
  print(
    `  routes        POST /discord/interactions  POST /github/webhook  GET /health  GET /runs  GET /runs/{id}  POST /callbacks/{token}  POST /callbacks/actions  GET /console`,
  );
  print(
    `  Discord key   ${env.DISCORD_PUBLIC_KEY}${discordPrivateKeyPem ? ` (generated; private key in ${join(LOCAL_DIR, 'discord-test-key.pem')})` : ''}`,
  );
  print(
    `  GitHub secret ${opts.env?.GITHUB_WEBHOOK_SECRET || process.env.GITHUB_WEBHOOK_SECRET ? '(from GITHUB_WEBHOOK_SECRET)' : `${env.GITHUB_WEBHOOK_SECRET} (generated)`}`,
  );
  print(
    `  GitHub API    ${env.GITHUB_TOKEN || env.GITHUB_APP_ID ? 'live' : 'dry-run (no GITHUB_TOKEN): calls are recorded as run events'}`,
  );
  print(`  Discord API   ${env.DISCORD_BOT_TOKEN ? 'live' : 'dry-run (no DISCORD_BOT_TOKEN)'}`);
  print('  operator CLI  npm run runs -- list | show ID | approve ID | cancel ID | retry ID');

  let stopped = false;
  return {
    url,
    app,
    store,
    queue,
    env,
    ...(discordPrivateKeyPem ? { discordPrivateKeyPem } : {}),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      clearInterval(sweeper);
      await new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections?.();
      // Let in-flight steps commit; anything still queued is picked up by the sweeper next start.
      await Promise.race([queue.idle(), new Promise((r) => setTimeout(r, 5_000))]);
      queue.stop();
      await db?.stop();
    },
  };
}

async function main(): Promise<void> {
  let stack: LocalStack;
  try {
    stack = await startLocalStack();
  } catch (err) {
    if (err instanceof StoreUnavailableError) {
      console.error(`Cannot start: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }
  // Tell the operator CLI where this stack's table is (tests start stacks without this file).
  writeFileSync(
    LOCAL_STATE_FILE,
    JSON.stringify(
      {
        pid: process.pid,
        endpoint: stack.env.DYNAMODB_ENDPOINT,
        tableName: stack.env.TABLE_NAME,
        url: stack.url,
      },
      null,
      2,
    ),
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping (waiting for in-flight steps)…`);
    stack.stop().then(
      () => {
        rmSync(LOCAL_STATE_FILE, { force: true });
        process.exit(0);
      },
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
