import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { policyFromConfig } from '../lib/discord/policy.ts';
import { loadConfig, type SwitchyardConfig } from '../lib/routing/config.ts';
import { ConfigError, formatIssue } from '../lib/routing/errors.ts';

/**
 * The config as JSON, validated by the same loader as everything else (lib/routing/config.ts),
 * for functions that should not carry a YAML parser or the config schema.
 *
 *   tsx scripts/config-to-json.ts [--discord-policy] <config.yml> [out.json]
 *
 * --discord-policy writes only what the Discord function reads (lib/discord/policy.ts): the
 * `routing.triggerLabel` and `discord` parts, in the config's own shape, so the function reads
 * it through the same `policyFromConfig` as the YAML. The stack's afterBundling hook writes it
 * into the Discord asset (DISCORD_POLICY_FILE). A config that does not validate, or a policy entry
 * the function would ignore, fails the build with `file:line: reason` and exit code 1.
 */
export interface DiscordPolicyDocument {
  routing: { triggerLabel: string };
  discord: SwitchyardConfig['discord'];
}

export function discordPolicyDocument(config: SwitchyardConfig): DiscordPolicyDocument {
  const document = { routing: { triggerLabel: config.routing.triggerLabel }, discord: config.discord };
  const { problems } = policyFromConfig(document);
  if (problems.length > 0) throw new Error(`discord policy: ${problems.join('; ')}`);
  return document;
}

export async function configToJson(file: string, options: { discordPolicy?: boolean } = {}): Promise<string> {
  const config = await loadConfig(file);
  return `${JSON.stringify(options.discordPolicy ? discordPolicyDocument(config) : config, null, 2)}\n`;
}

async function main(argv: string[]): Promise<number> {
  const args = [...argv];
  const flag = args.indexOf('--discord-policy');
  if (flag >= 0) args.splice(flag, 1);
  const [file, out] = args;
  if (!file) {
    console.error('usage: tsx scripts/config-to-json.ts [--discord-policy] <config.yml> [out.json]');
    return 2;
  }
  try {
    const json = await configToJson(file, { discordPolicy: flag >= 0 });
    if (out) writeFileSync(out, json);
    else process.stdout.write(json);
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) for (const issue of err.issues) console.error(formatIssue(issue));
    else console.error(`${file}:0: ${(err as Error).message}`);
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
