import { createServer, type Server } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

/**
 * Secret rotation end to end: the real Powertools `getSecret` and AWS SDK client talk to a local
 * Secrets Manager stand-in (AWS JSON 1.1 `secretsmanager.GetSecretValue`) through the SDK's
 * `AWS_ENDPOINT_URL_SECRETS_MANAGER`; Discord and GitHub are their loopback stand-ins.
 */
class FakeSecretsManager {
  readonly values = new Map<string, string>();
  readonly reads: string[] = [];
  private server: Server | undefined;
  url = '';
  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const target = req.headers['x-amz-target'];
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { SecretId?: string };
        const id = body.SecretId ?? '';
        const value = this.values.get(id);
        res.setHeader('content-type', 'application/x-amz-json-1.1');
        if (target !== 'secretsmanager.GetSecretValue' || value === undefined) {
          res.statusCode = 400;
          res.end(
            JSON.stringify({ __type: 'ResourceNotFoundException', message: "Secrets Manager can't find it" }),
          );
          return;
        }
        this.reads.push(id);
        res.end(
          JSON.stringify({
            ARN: id,
            Name: id.split(':').pop(),
            SecretString: value,
            VersionId: `v${this.reads.length}`,
            VersionStages: ['AWSCURRENT'],
            CreatedDate: Date.now() / 1000,
          }),
        );
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const addr = this.server.address();
    this.url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    return this;
  }
  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
  readsOf(id: string): number {
    return this.reads.filter((r) => r === id).length;
  }
}

const sm = await new FakeSecretsManager().start();
// Read once, when the SDK client is first built (the first getSecret).
process.env.AWS_ENDPOINT_URL_SECRETS_MANAGER = sm.url;
process.env.AWS_REGION = 'eu-west-1';
process.env.AWS_ACCESS_KEY_ID = 'test';
process.env.AWS_SECRET_ACCESS_KEY = 'test';

const { getSecretValue, SECRET_MAX_AGE_SECONDS } = await import('../../lib/common/secrets.ts');
const { logger } = await import('../../lib/common/observability.ts');
const { DiscordRest } = await import('../../lib/discord/rest.ts');
const { githubClientFactoryFromEnv } = await import('../../lib/github/client.ts');
const { FakeDiscord } = await import('../support/fake-discord.ts');
const { FakeGitHub } = await import('../support/fake-github.ts');

const arn = (name: string) => `arn:aws:secretsmanager:eu-west-1:123456789012:secret:${name}`;
const PLACEHOLDER = 'Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z'; // what generateSecretString makes: 32 alphanumerics
const commenter = { name: 'commenter', permissions: ['read', 'comment'] as const };

afterAll(() => sm.stop());
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('secrets come back fresh after their max age', () => {
  it('reuses a value within the max age and reads the rotated one after it', async () => {
    const id = arn('age');
    sm.values.set(id, 'bot.token.one');
    const env = { DISCORD_BOT_TOKEN_SECRET_ARN: id };
    vi.useFakeTimers({ toFake: ['Date'] });
    await expect(getSecretValue('DISCORD_BOT_TOKEN', env)).resolves.toBe('bot.token.one');
    sm.values.set(id, 'bot.token.two');
    await expect(getSecretValue('DISCORD_BOT_TOKEN', env)).resolves.toBe('bot.token.one');
    expect(sm.readsOf(id)).toBe(1);
    vi.setSystemTime(Date.now() + (SECRET_MAX_AGE_SECONDS + 1) * 1000);
    await expect(getSecretValue('DISCORD_BOT_TOKEN', env)).resolves.toBe('bot.token.two');
    expect(sm.readsOf(id)).toBe(2);
  });
});

describe('Discord: a 401 re-reads the bot token at once', () => {
  const discord = new FakeDiscord('bot.token.new');
  beforeAll(() => discord.start());
  afterAll(() => discord.stop());

  it('retries once with the rotated token and succeeds', async () => {
    const id = arn('discord-401');
    const env = { DISCORD_BOT_TOKEN_SECRET_ARN: id };
    sm.values.set(id, 'bot.token.old');
    const rest = new DiscordRest({
      baseUrl: discord.url,
      botToken: (opts) => getSecretValue('DISCORD_BOT_TOKEN', env, opts),
    });
    // Cache the old token, then rotate: Discord already refuses the old one.
    await expect(getSecretValue('DISCORD_BOT_TOKEN', env)).resolves.toBe('bot.token.old');
    sm.values.set(id, 'bot.token.new');
    const msg = await rest.createMessage('123456789012345678', { content: 'hello' });
    expect(msg.content).toBe('hello');
    const auths = discord.requests.map((r) => r.headers.authorization);
    expect(auths).toEqual(['Bot bot.token.old', 'Bot bot.token.new']);
    expect(sm.readsOf(id)).toBe(2);
  });

  it('a second 401 is an error, not a loop', async () => {
    discord.reset();
    const id = arn('discord-401-twice');
    sm.values.set(id, 'bot.token.wrong');
    const env = { DISCORD_BOT_TOKEN_SECRET_ARN: id };
    const rest = new DiscordRest({
      baseUrl: discord.url,
      botToken: (opts) => getSecretValue('DISCORD_BOT_TOKEN', env, opts),
    });
    await expect(rest.createMessage('123456789012345678', { content: 'x' })).rejects.toMatchObject({
      status: 401,
    });
    expect(discord.requests).toHaveLength(1);
  });

  it('a placeholder token is a dry-run with one warning', async () => {
    discord.reset();
    const id = arn('discord-placeholder');
    sm.values.set(id, PLACEHOLDER);
    const env = { DISCORD_BOT_TOKEN_SECRET_ARN: id };
    const warn = vi.spyOn(logger, 'warn');
    const rest = new DiscordRest({
      baseUrl: discord.url,
      botToken: (opts) => getSecretValue('DISCORD_BOT_TOKEN', env, opts),
    });
    await expect(rest.isDryRun()).resolves.toBe(true);
    const a = await rest.createMessage('123456789012345678', { content: 'one' });
    await rest.createMessage('123456789012345678', { content: 'two' });
    expect((a as { dry_run?: boolean }).dry_run).toBe(true);
    expect(discord.requests).toHaveLength(0);
    const placeholderWarnings = warn.mock.calls.filter(([m]) => String(m).includes('placeholder'));
    expect(placeholderWarnings).toHaveLength(1);
  });
});

describe('GitHub: credentials follow rotation', () => {
  const github = new FakeGitHub('ghp_new');
  beforeAll(async () => {
    await github.start();
    github.addIssue('acme/app', { number: 1 });
  });
  afterAll(() => github.stop());

  it('a 401 re-reads the credentials and retries once with the new token', async () => {
    const id = arn('github-401');
    sm.values.set(id, 'ghp_old');
    const env = { GITHUB_CREDENTIALS_SECRET_ARN: id, GITHUB_API_URL: github.url };
    const factory = await githubClientFactoryFromEnv(env, { throttle: false, retries: 0 });
    expect(factory.mode).toBe('token');
    sm.values.set(id, 'ghp_new');
    const before = github.requests.length;
    const issue = await factory
      .forAgent({ ...commenter, permissions: [...commenter.permissions] })
      .getIssue('acme/app', 1);
    expect(issue?.number).toBe(1);
    const auths = github.requests.slice(before).map((r) => r.headers.authorization);
    expect(auths).toEqual(['token ghp_old', 'token ghp_new']);
  });

  it('picks the rotated token up after the max age without a 401', async () => {
    const id = arn('github-age');
    sm.values.set(id, 'ghp_new');
    const env = { GITHUB_CREDENTIALS_SECRET_ARN: id, GITHUB_API_URL: github.url };
    vi.useFakeTimers({ toFake: ['Date'] });
    const factory = await githubClientFactoryFromEnv(env, { throttle: false, retries: 0 });
    const client = factory.forAgent({ ...commenter, permissions: [...commenter.permissions] });
    await client.getIssue('acme/app', 1);
    sm.values.set(id, PLACEHOLDER);
    await client.getIssue('acme/app', 1);
    expect(factory.mode).toBe('token');
    vi.setSystemTime(Date.now() + (SECRET_MAX_AGE_SECONDS + 1) * 1000);
    const before = github.requests.length;
    // Ops reset the secret to a placeholder: after the max age the client is a dry-run, not a 401.
    await expect(client.getIssue('acme/app', 1)).resolves.toBeUndefined();
    expect(factory.mode).toBe('dry-run');
    expect(github.requests.length).toBe(before);
  });

  it('a placeholder gives a dry-run factory and one warning', async () => {
    const id = arn('github-placeholder');
    sm.values.set(id, PLACEHOLDER);
    const warn = vi.spyOn(logger, 'warn');
    const env = { GITHUB_CREDENTIALS_SECRET_ARN: id, GITHUB_API_URL: github.url };
    const factory = await githubClientFactoryFromEnv(env, { throttle: false });
    expect(factory.mode).toBe('dry-run');
    await githubClientFactoryFromEnv(env, { throttle: false });
    expect(warn.mock.calls.filter(([m]) => String(m).includes('placeholder'))).toHaveLength(1);
  });
});
