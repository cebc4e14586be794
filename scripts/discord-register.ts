import { parseArgs } from 'node:util';
import { getSecretValue } from '../lib/common/secrets.ts';
import { COMMANDS } from '../lib/discord/commands.ts';
import { DiscordRest } from '../lib/discord/rest.ts';

/**
 * `npm run discord:register -- [--guild ID] [--dry-run]`
 *
 * Registers the slash commands with one bulk overwrite (PUT), so running it twice changes
 * nothing and a removed command disappears. Guild commands appear at once; global ones can take
 * up to an hour to propagate, which is why a guild is the usual choice while developing.
 * Uses DISCORD_APPLICATION_ID, DISCORD_BOT_TOKEN (or its Secrets Manager ARN) and DISCORD_API_URL.
 */
export interface RegisterOptions {
  applicationId: string;
  guildId?: string | undefined;
  dryRun: boolean;
  rest?: DiscordRest;
  env?: NodeJS.ProcessEnv;
  print?: (line: string) => void;
}

const SNOWFLAKE = /^\d{15,21}$/;

export async function registerCommands(opts: RegisterOptions): Promise<string[]> {
  const print = opts.print ?? ((line: string) => console.log(line));
  if (!SNOWFLAKE.test(opts.applicationId))
    throw new Error('DISCORD_APPLICATION_ID must be the numeric application id');
  if (opts.guildId !== undefined && !SNOWFLAKE.test(opts.guildId))
    throw new Error('--guild must be a numeric guild id');
  const path = opts.guildId
    ? `/applications/${opts.applicationId}/guilds/${opts.guildId}/commands`
    : `/applications/${opts.applicationId}/commands`;
  if (opts.dryRun) {
    print(`PUT ${path}`);
    print(JSON.stringify(COMMANDS, null, 2));
    return COMMANDS.map((c) => c.name);
  }
  const env = opts.env ?? process.env;
  let rest = opts.rest;
  if (!rest) {
    const token = await getSecretValue('DISCORD_BOT_TOKEN', env);
    if (!token) throw new Error('DISCORD_BOT_TOKEN is not set (use --dry-run to print the commands instead)');
    rest = new DiscordRest({
      ...(env.DISCORD_API_URL ? { baseUrl: env.DISCORD_API_URL } : {}),
      botToken: token,
      dryRun: false,
    });
  }
  const registered = await rest.putCommands(opts.applicationId, COMMANDS, opts.guildId);
  const names = registered.map((c) => c.name);
  print(
    `Registered ${names.length} commands ${opts.guildId ? `to guild ${opts.guildId}` : 'globally (may take up to an hour to appear)'}: ${names.map((n) => `/${n}`).join(', ')}`,
  );
  return names;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      guild: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log('usage: npm run discord:register -- [--guild ID] [--dry-run]');
    return;
  }
  const applicationId = process.env.DISCORD_APPLICATION_ID ?? (values['dry-run'] ? '000000000000000000' : '');
  if (!applicationId) throw new Error('DISCORD_APPLICATION_ID is not set');
  await registerCommands({ applicationId, guildId: values.guild, dryRun: values['dry-run'] ?? false });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    console.error((err as Error).message);
    process.exit(1);
  });
}
