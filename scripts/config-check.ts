import { readFile } from 'node:fs/promises';
import {
  configPath,
  loadConfigSource,
  overlayConfig,
  REPO_CONFIG_KEYS,
  readSource,
} from '../lib/routing/config.ts';
import { ConfigError, formatIssue } from '../lib/routing/errors.ts';

/**
 * npm run config:check [file] [--repo] [--central file]
 *
 * Validates a Switchyard config and prints each problem as `file:line: reason`; exit code 1 on
 * any. A repository overlay (`.github/switchyard.yml`, or any file with --repo) is checked as it
 * would be applied: on top of the central config (SWITCHYARD_CONFIG, or --central).
 */
async function main(argv: string[]): Promise<number> {
  const args = [...argv];
  const repoFlag = args.indexOf('--repo');
  const isRepoFlag = repoFlag >= 0;
  if (isRepoFlag) args.splice(repoFlag, 1);
  const centralFlag = args.indexOf('--central');
  let central = configPath();
  if (centralFlag >= 0) {
    central = args[centralFlag + 1] ?? central;
    args.splice(centralFlag, 2);
  }
  const file = args[0] ?? central;
  const asRepo = isRepoFlag || /(^|[\\/])\.github[\\/]switchyard\.ya?ml$/.test(file);
  try {
    if (asRepo) {
      const base = await loadConfigSource(central);
      overlayConfig(base.source, readSource(await readFile(file, 'utf8'), file));
      console.log(
        `ok: ${file} (repository overlay on ${central}; keys allowed: ${REPO_CONFIG_KEYS.join(', ')})`,
      );
    } else {
      const { config } = await loadConfigSource(file);
      const rules = config.routing.rules.length;
      console.log(
        `ok: ${file} (${rules} rule${rules === 1 ? '' : 's'}, ${Object.keys(config.agents).length} agents)`,
      );
    }
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const issue of err.issues) console.error(formatIssue(issue));
      return 1;
    }
    console.error(`${file}:0: ${(err as Error).message}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
