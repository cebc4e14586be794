import { readFile } from 'node:fs/promises';
import { storeFromEnv } from '../lib/app/core.ts';
import { resolveStoreEnv } from '../lib/app/local-env.ts';
import { configRefreshMs } from '../lib/common/config-refresh.ts';
import { configPath } from '../lib/routing/config.ts';
import { activeConfig, pushConfig } from '../lib/routing/config-versions.ts';
import { ConfigError, formatIssue } from '../lib/routing/errors.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/**
 * npm run config:push -- [file] [--by NAME]: validate and store as the next version (every
 * function picks it up within 60 s). npm run config:pull: print the active version's YAML.
 * Invalid files are refused as `file:line: reason`, exit code 1.
 */
export async function main(
  argv: string[],
  out = console.log,
  err = console.error,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const args = [...argv];
  const pull = args[0] === 'pull';
  if (pull || args[0] === 'push') args.shift();
  const byFlag = args.indexOf('--by');
  let by = `cli:${env.USER ?? 'operator'}`;
  if (byFlag >= 0) {
    by = args[byFlag + 1] ?? by;
    args.splice(byFlag, 2);
  }
  const store = storeFromEnv(resolveStoreEnv(env));
  if (pull) {
    const active = await activeConfig(store);
    if (!active) {
      out(`# no pushed version: the bundled file (${configPath(env)}) applies`);
      return 0;
    }
    out(`# version ${active.version} (pushed by ${active.by} at ${active.at} from ${active.file})`);
    out(active.text.trimEnd());
    return 0;
  }
  const file = args[0] ?? configPath(env);
  try {
    const stored = await pushConfig(store, await readFile(file, 'utf8'), { file, by });
    const every = configRefreshMs(env) / 1000;
    out(`pushed ${file} as version ${stored.version}; every function uses it within ${every} s`);
    return 0;
  } catch (e) {
    if (e instanceof ConfigError) {
      for (const issue of e.issues) err(formatIssue(issue));
      return 1;
    }
    err(`${file}:0: ${(e as Error).message}`);
    return 1;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2));
}
