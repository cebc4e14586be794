import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../lib/discord/commands.ts';
import { DiscordRest } from '../../lib/discord/rest.ts';
import { registerCommands } from '../../scripts/discord-register.ts';
import { FakeDiscord } from '../support/fake-discord.ts';
import { APP_ID, GUILD_ID } from './support.ts';

type Opt = { name: string; description: string; type: number; required?: boolean; options?: Opt[] };

/** Every option list, including those of subcommands. */
function optionLists(): Array<[string, Opt[]]> {
  const out: Array<[string, Opt[]]> = [];
  const walk = (path: string, options: Opt[] | undefined) => {
    if (!options) return;
    out.push([path, options]);
    for (const o of options) if (o.type === 1) walk(`${path} ${o.name}`, o.options);
  };
  for (const c of COMMANDS) walk(`/${c.name}`, c.options as Opt[] | undefined);
  return out;
}

describe('command definitions', () => {
  it('are the nine commands the README documents', () => {
    expect(COMMANDS.map((c) => c.name)).toEqual([
      'plan',
      'status',
      'approve',
      'cancel',
      'reject',
      'retry',
      'route',
      'pause',
      'resume',
    ]);
  });

  it.each(COMMANDS.map((c) => [c.name, c] as const))('/%s has a valid name and description', (_n, c) => {
    expect(c.name).toMatch(/^[-_\p{L}\p{N}]{1,32}$/u);
    expect(c.name).toBe(c.name.toLowerCase());
    expect(c.description.length).toBeGreaterThan(0);
    expect(c.description.length).toBeLessThanOrEqual(100);
  });

  it.each(optionLists())(
    '%s lists required options before optional ones (Discord refuses otherwise)',
    (_path, options) => {
      const firstOptional = options.findIndex((o) => o.type !== 1 && !o.required);
      const lastRequired = options.map((o) => Boolean(o.required)).lastIndexOf(true);
      if (firstOptional !== -1) expect(lastRequired).toBeLessThan(firstOptional);
      for (const o of options) {
        expect(o.name).toMatch(/^[a-z0-9_-]{1,32}$/);
        expect(o.description.length).toBeLessThanOrEqual(100);
      }
    },
  );

  it('fits in Discord’s 8000-character limit per command', () => {
    for (const c of COMMANDS) expect(JSON.stringify(c).length).toBeLessThan(8000);
  });
});

describe('npm run discord:register', () => {
  const discord = new FakeDiscord('register-bot-token');
  let rest: DiscordRest;
  const lines: string[] = [];
  const print = (l: string) => lines.push(l);

  beforeAll(async () => {
    await discord.start();
    rest = new DiscordRest({ baseUrl: discord.url, botToken: discord.botToken });
  });
  afterAll(() => discord.stop());
  beforeEach(() => {
    discord.reset();
    lines.length = 0;
  });

  it('overwrites the guild commands in one PUT with the bot token', async () => {
    const names = await registerCommands({
      applicationId: APP_ID,
      guildId: GUILD_ID,
      dryRun: false,
      rest,
      print,
    });
    expect(names).toEqual([
      'plan',
      'status',
      'approve',
      'cancel',
      'reject',
      'retry',
      'route',
      'pause',
      'resume',
    ]);
    expect(discord.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      `PUT /applications/${APP_ID}/guilds/${GUILD_ID}/commands`,
    ]);
    expect(discord.requests[0]?.headers.authorization).toBe('Bot register-bot-token');
    expect(discord.requests[0]?.body).toEqual(COMMANDS);
  });

  it('registers globally without --guild', async () => {
    await registerCommands({ applicationId: APP_ID, dryRun: false, rest, print });
    expect(discord.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      `PUT /applications/${APP_ID}/commands`,
    ]);
  });

  it('is idempotent: a second run sends the same body', async () => {
    await registerCommands({ applicationId: APP_ID, guildId: GUILD_ID, dryRun: false, rest, print });
    await registerCommands({ applicationId: APP_ID, guildId: GUILD_ID, dryRun: false, rest, print });
    expect(discord.requests).toHaveLength(2);
    expect(discord.requests[0]?.rawBody).toBe(discord.requests[1]?.rawBody);
  });

  it('prints the JSON and sends nothing with --dry-run', async () => {
    await registerCommands({ applicationId: APP_ID, guildId: GUILD_ID, dryRun: true, rest, print });
    expect(discord.requests).toHaveLength(0);
    expect(lines[0]).toBe(`PUT /applications/${APP_ID}/guilds/${GUILD_ID}/commands`);
    expect(JSON.parse(lines[1]!)).toEqual(COMMANDS);
  });

  it('runs as a script: --dry-run needs no credentials', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'scripts/discord-register.ts', '--guild', GUILD_ID, '--dry-run'],
      { env: { PATH: process.env.PATH, DISCORD_APPLICATION_ID: APP_ID }, cwd: process.cwd() },
    );
    expect(stdout).toContain(`PUT /applications/${APP_ID}/guilds/${GUILD_ID}/commands`);
    expect(stdout).toContain('"name": "approve"');
  });

  it('refuses to register without a bot token', async () => {
    await expect(
      registerCommands({ applicationId: APP_ID, guildId: GUILD_ID, dryRun: false, env: {}, print }),
    ).rejects.toThrow(/DISCORD_BOT_TOKEN/);
  });
});
