import { readFile } from 'node:fs/promises';
import { instrumented } from '../lib/common/observability.ts';
import { getSecretValue } from '../lib/common/secrets.ts';
import { parseLinkKeys } from '../lib/console/access.ts';
import { type ConsoleDeps, makeConsole } from '../lib/console/handler.ts';
import type { HttpEvent, HttpResult } from '../lib/http/apigw.ts';

/**
 * GET /console, ANY /console/{proxy+}: the run console (lib/console/handler.ts). On AWS no run
 * data leaves without a session, made from a signed Discord link (CONSOLE_LINK_KEY: a secret read
 * at runtime and cached like the others, so a rotated key is picked up without a redeploy).
 */
export function makeHandler(
  deps: ConsoleDeps | (() => ConsoleDeps | Promise<ConsoleDeps>),
): (event: HttpEvent) => Promise<HttpResult> {
  let api: Promise<(event: HttpEvent) => Promise<HttpResult>> | undefined;
  return async (event) => {
    api ??= Promise.resolve(typeof deps === 'function' ? deps() : deps)
      .then(makeConsole)
      .catch((err: unknown) => {
        api = undefined;
        throw err;
      });
    return (await api)(event);
  };
}

/**
 * The deployed composition: the store, an engine with the graphs only (signals commit to the
 * table and enqueue the next step on SQS; the worker runs it), and the Discord policy document the
 * Discord function reads (DISCORD_POLICY_FILE). An unreadable policy grants nothing (fail closed).
 */
export async function defaultDeps(env: NodeJS.ProcessEnv = process.env): Promise<ConsoleDeps> {
  const [
    { storeFromEnv, queueFromEnv },
    { Engine },
    { buildRegistry },
    { documentWithVersions },
    { configRefreshMs },
  ] = await Promise.all([
    import('../lib/app/core.ts'),
    import('../lib/engine/engine.ts'),
    import('../lib/workflows/index.ts'),
    import('../lib/discord/policy-versions.ts'),
    import('../lib/common/config-refresh.ts'),
  ]);
  const store = storeFromEnv(env);
  const engine = new Engine<unknown>({
    store,
    queue: queueFromEnv(env),
    workflows: buildRegistry(),
    services: {},
  });
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
    workloads: async () => (await import('../lib/agents/work-queue.ts')).workloads(store),
  };
}

export const handler = instrumented(makeHandler(() => defaultDeps()));
