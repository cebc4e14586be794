import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { renderAgentWorkflow, targetFor } from '../lib/agents/agent-workflow.ts';
import { configPath, loadConfigSource } from '../lib/routing/config.ts';

/**
 * npm run agent:workflow -- [--repo owner/name] [--executor name] [--write <checkout>] [--config file]
 *
 * Prints the reference agent workflow for the GitHub Actions executor that dispatches into the
 * repository, or writes it into a checkout at .github/workflows/<the executor's workflow file>.
 */
export async function main(
  argv: string[],
  out: (s: string) => void = (s) => process.stdout.write(s),
): Promise<number> {
  const flag = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const repo = flag('--repo');
  if (repo !== undefined && !/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/.test(repo)) {
    console.error(`--repo must be owner/name, not ${repo}`);
    return 2;
  }
  try {
    const { config } = await loadConfigSource(flag('--config') ?? configPath());
    const target = targetFor(config, repo, flag('--executor'));
    const text = await renderAgentWorkflow(target, repo);
    const checkout = flag('--write');
    if (!checkout) {
      out(text);
      return 0;
    }
    const dir = join(resolve(checkout), '.github', 'workflows');
    await mkdir(dir, { recursive: true });
    const file = join(dir, target.workflow);
    await writeFile(file, text);
    out(
      [
        `wrote ${file}`,
        'next: set the repository variables SWITCHYARD_AGENT_ROLE_ARN (stack output AgentRoleArn),',
        '      SWITCHYARD_URL (stack output ApiBaseUrl), SWITCHYARD_AWS_REGION and SWITCHYARD_AGENT_MODEL;',
        `      commit the file to ${target.ref}, then label an issue (docs/agents.md).`,
        '',
      ].join('\n'),
    );
    return 0;
  } catch (err) {
    console.error(`agent:workflow: ${(err as Error).message}`);
    return 1;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = await main(process.argv.slice(2));
