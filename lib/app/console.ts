import { readFile } from 'node:fs/promises';
import { instrumented } from '../common/observability.ts';
import { getSecretValue } from '../common/secrets.ts';
import { parseLinkKeys } from '../console/access.ts';
import { type ConsoleDeps, makeConsole } from '../console/handler.ts';
import type { LambdaHttpHandler } from '../http/apigw.ts';
import { type DepsOrLoader, endpointHandler } from './http-function.ts';

/**
 * GET /console, ANY /console/{proxy+}: the run console (lib/console/handler.ts). On AWS no run
 * data leaves without a session, made from a signed Discord link (CONSOLE_LINK_KEY: a secret read
 * at runtime and cached like the others, so a rotated key is picked up without a redeploy).
 */
export function makeHandler(deps: DepsOrLoader<ConsoleDeps>): LambdaHttpHandler {
  return endpointHandler(deps, makeConsole);
}

/**
 * The deployed composition: the store, a signal-only engine (signals commit to the table and
 * enqueue the next step on SQS; the worker runs it), and the Discord policy document the Discord
 * function reads (DISCORD_POLICY_FILE). An unreadable policy grants nothing (fail closed).
 */
export async function defaultDeps(env: NodeJS.ProcessEnv = process.env): Promise<ConsoleDeps> {
  const [
    { storeFromEnv, queueFromEnv },
    { signalOnlyEngine },
    { documentWithVersions },
    { configRefreshMs },
  ] = await Promise.all([
    import('./core.ts'),
    import('./signals.ts'),
    import('../discord/policy-versions.ts'),
    import('../common/config-refresh.ts'),
  ]);
  const store = storeFromEnv(env);
  const engine = signalOnlyEngine({ store, queue: queueFromEnv(env) });
  const policyFile = env.DISCORD_POLICY_FILE;
  let policy: Promise<unknown> | undefined;
  const bundled = () => {
    policy ??= policyFile
      ? readFile(policyFile, 'utf8')
          .then((t) => JSON.parse(t) as unknown)
          .catch(() => {
            policy = undefined;
            return {};
          })
      : Promise.resolve({});
    return policy;
  };
  return {
    store,
    engine,
    // The newest `config:push` version's document, the bundled file's when nothing was pushed.
    policy: documentWithVersions(store, bundled, { maxAgeMs: configRefreshMs(env) }),
    access: {
      mode: 'session',
      linkKeys: async () => parseLinkKeys(await getSecretValue('CONSOLE_LINK_KEY', env)),
    },
    workloads: async () => (await import('../agents/work-queue.ts')).workloads(store),
  };
}

/** The deployed function: the composition is imported on the first request. */
export function consoleFunction(env: NodeJS.ProcessEnv = process.env) {
  return instrumented(makeHandler(() => defaultDeps(env)));
}
