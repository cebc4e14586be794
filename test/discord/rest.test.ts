import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DiscordApiError, DiscordNotFoundError, DiscordRateLimitError } from '../../lib/discord/errors.ts';
import { type DiscordCall, DiscordRest, redactPath } from '../../lib/discord/rest.ts';
import { FakeDiscord } from '../support/fake-discord.ts';
import { APP_ID, CHANNEL_ID, interactionToken } from './support.ts';

describe('DiscordRest against a fake Discord', () => {
  const discord = new FakeDiscord('rest-bot-token');
  const slept: number[] = [];
  let rest: DiscordRest;

  beforeAll(async () => {
    await discord.start();
  });
  afterAll(() => discord.stop());
  beforeEach(() => {
    discord.reset();
    slept.length = 0;
    rest = new DiscordRest({
      baseUrl: discord.url,
      botToken: discord.botToken,
      sleep: async (ms) => {
        slept.push(ms);
      },
    });
  });

  it('edits @original with the token in the path and no Authorization header', async () => {
    const token = interactionToken();
    discord.interactionChannels.set(token, CHANNEL_ID);
    const msg = await rest.editOriginal(APP_ID, token, { content: 'hello' });
    expect(msg.channel_id).toBe(CHANNEL_ID);
    expect(discord.requests[0]?.path).toBe(`/webhooks/${APP_ID}/${token}/messages/@original`);
    expect(discord.requests[0]?.headers.authorization).toBeUndefined();
  });

  it('sends the bot token to channel endpoints', async () => {
    await rest.createMessage(CHANNEL_ID, { content: 'hi' });
    expect(discord.requests[0]?.headers.authorization).toBe('Bot rest-bot-token');
  });

  it('waits out a short 429 using retry_after, then succeeds', async () => {
    discord.script('POST', /\/channels\/\d+\/messages$/, {
      status: 429,
      body: { message: 'You are being rate limited.', retry_after: 0.25, global: false },
      headers: { 'retry-after': '1' },
      times: 2,
    });
    const msg = await rest.createMessage(CHANNEL_ID, { content: 'hi' });
    expect(msg.id).toMatch(/^\d+$/);
    expect(slept).toEqual([250, 250]);
    expect(discord.requests).toHaveLength(3);
  });

  it('throws a retryable rate-limit error rather than sleeping through a long 429', async () => {
    discord.script('POST', /messages$/, { status: 429, body: { retry_after: 60, global: true } });
    const err = await rest.createMessage(CHANNEL_ID, { content: 'hi' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DiscordRateLimitError);
    expect((err as DiscordRateLimitError).retryable).toBe(true);
    expect((err as DiscordRateLimitError).retryAfterMs).toBe(60_000);
    expect(slept).toEqual([]);
  });

  it('turns an expired token into DiscordNotFoundError without the token in the message', async () => {
    const token = interactionToken();
    discord.expiredTokens.add(token);
    const err = await rest.editOriginal(APP_ID, token, { content: 'late' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DiscordNotFoundError);
    expect((err as DiscordNotFoundError).code).toBe(10015);
    expect((err as Error).message).not.toContain(token);
    expect((err as DiscordNotFoundError).path).toBe(`/webhooks/${APP_ID}/[token]/messages/@original`);
  });

  it.each([
    [500, true],
    [503, true],
    [400, false],
    [403, false],
  ])('marks a %i as retryable=%s', async (status, retryable) => {
    discord.script('PATCH', /./, { status, body: { message: 'nope', code: 50001 } });
    const err = (await rest
      .editMessage(CHANNEL_ID, '1', { content: 'x' })
      .catch((e: unknown) => e)) as DiscordApiError;
    expect(err).toBeInstanceOf(DiscordApiError);
    expect(err.retryable).toBe(retryable);
    expect(err.status).toBe(status);
  });

  it('reports an unreachable API as a retryable failure', async () => {
    const dead = new DiscordRest({ baseUrl: 'http://127.0.0.1:9/api/v10', botToken: 'x', timeoutMs: 2_000 });
    const err = (await dead
      .createMessage(CHANNEL_ID, { content: 'x' })
      .catch((e: unknown) => e)) as DiscordApiError;
    expect(err.status).toBe(0);
    expect(err.retryable).toBe(true);
  });
});

describe('dry-run', () => {
  it('records calls without sending them, with the token redacted', async () => {
    const calls: DiscordCall[] = [];
    const rest = new DiscordRest({ baseUrl: 'http://127.0.0.1:9', onDryRun: (c) => calls.push(c) });
    const token = interactionToken();
    expect(await rest.isDryRun()).toBe(true);
    const msg = await rest.editOriginal(APP_ID, token, { content: 'would edit' });
    expect(msg.id).toMatch(/^dry-run-/);
    expect(calls).toEqual([
      {
        method: 'PATCH',
        path: `/webhooks/${APP_ID}/[token]/messages/@original`,
        body: { content: 'would edit' },
      },
    ]);
    expect(JSON.stringify(calls)).not.toContain(token);
  });

  it.each([
    ['/webhooks/1/abc.def-ghi/messages/@original', '/webhooks/1/[token]/messages/@original'],
    ['/webhooks/1/abc?wait=true', '/webhooks/1/[token]?wait=true'],
    ['/interactions/9/tok/callback', '/interactions/9/[token]/callback'],
    ['/channels/1/messages', '/channels/1/messages'],
  ])('redacts %s', (path, shown) => {
    expect(redactPath(path)).toBe(shown);
  });
});
