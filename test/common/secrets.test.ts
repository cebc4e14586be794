import { beforeEach, describe, expect, it, vi } from 'vitest';

// Secrets Manager cannot run locally; the Powertools call is the edge we stand in for.
const getSecret = vi.fn();
vi.mock('@aws-lambda-powertools/parameters/secrets', () => ({ getSecret }));

const { getSecretValue, parseGitHubCredentials, parseWebhookSecrets, SECRET_MAX_AGE_SECONDS } = await import(
  '../../lib/common/secrets.ts'
);

beforeEach(() => {
  getSecret.mockReset();
});

describe('getSecretValue, local environment', () => {
  it('returns the plain variable when no ARN is set', async () => {
    await expect(getSecretValue('DISCORD_BOT_TOKEN', { DISCORD_BOT_TOKEN: 'bot-token' })).resolves.toBe(
      'bot-token',
    );
    expect(getSecret).not.toHaveBeenCalled();
  });

  it('returns undefined when neither the ARN nor the variable is set', async () => {
    await expect(getSecretValue('GITHUB_WEBHOOK_SECRET', {})).resolves.toBeUndefined();
  });

  it('treats an empty variable as unset', async () => {
    await expect(
      getSecretValue('GITHUB_WEBHOOK_SECRET', { GITHUB_WEBHOOK_SECRET: '' }),
    ).resolves.toBeUndefined();
  });

  it('accepts GITHUB_TOKEN as the GitHub credentials', async () => {
    await expect(getSecretValue('GITHUB_CREDENTIALS', { GITHUB_TOKEN: 'ghs_x' })).resolves.toBe('ghs_x');
  });

  it('prefers GITHUB_CREDENTIALS over GITHUB_TOKEN', async () => {
    await expect(
      getSecretValue('GITHUB_CREDENTIALS', { GITHUB_CREDENTIALS: '{"token":"a"}', GITHUB_TOKEN: 'b' }),
    ).resolves.toBe('{"token":"a"}');
  });
});

describe('getSecretValue, on AWS', () => {
  const arn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:switchyard-AbCdEf';

  it('fetches the secret named by <NAME>_SECRET_ARN, cached for 5 minutes', async () => {
    getSecret.mockResolvedValue('from-secrets-manager');
    await expect(
      getSecretValue('DISCORD_BOT_TOKEN', { DISCORD_BOT_TOKEN_SECRET_ARN: arn, DISCORD_BOT_TOKEN: 'plain' }),
    ).resolves.toBe('from-secrets-manager');
    expect(getSecret).toHaveBeenCalledWith(arn, { maxAge: SECRET_MAX_AGE_SECONDS });
    expect(SECRET_MAX_AGE_SECONDS).toBe(300);
  });

  it('decodes a binary secret as UTF-8', async () => {
    getSecret.mockResolvedValue(new TextEncoder().encode('binary-value'));
    await expect(getSecretValue('GITHUB_CREDENTIALS', { GITHUB_CREDENTIALS_SECRET_ARN: arn })).resolves.toBe(
      'binary-value',
    );
  });

  it('returns undefined for a missing or empty secret', async () => {
    getSecret.mockResolvedValue(undefined);
    await expect(
      getSecretValue('GITHUB_WEBHOOK_SECRET', { GITHUB_WEBHOOK_SECRET_SECRET_ARN: arn }),
    ).resolves.toBe(undefined);
  });
});

describe('parseWebhookSecrets', () => {
  it.each([
    ['one', ['one']],
    ['new, old', ['new', 'old']],
    ['["new","old"]', ['new', 'old']],
    [' [ "a" , "" ] ', ['a']],
    ['', []],
    [undefined, []],
  ])('reads %j', (value, expected) => {
    expect(parseWebhookSecrets(value)).toEqual(expected);
  });

  it('refuses a JSON value that is not a list of strings', () => {
    expect(() => parseWebhookSecrets('[1,2]')).toThrow(/array of strings/);
  });
});

describe('parseGitHubCredentials', () => {
  it('reads a bare token', () => {
    expect(parseGitHubCredentials(' ghp_abc \n')).toEqual({ kind: 'token', token: 'ghp_abc' });
  });

  it('reads a token in JSON', () => {
    expect(parseGitHubCredentials('{"token":"ghp_abc"}')).toEqual({ kind: 'token', token: 'ghp_abc' });
  });

  it('reads a GitHub App, turning escaped newlines of the key into real ones', () => {
    const json = JSON.stringify({ appId: 42, privateKey: 'line1\\nline2', installationId: 7 });
    expect(parseGitHubCredentials(json)).toEqual({
      kind: 'app',
      appId: '42',
      privateKey: 'line1\nline2',
      installationId: '7',
    });
  });

  it('returns undefined when nothing is configured', () => {
    expect(parseGitHubCredentials(undefined)).toBeUndefined();
    expect(parseGitHubCredentials('  ')).toBeUndefined();
  });

  it('refuses JSON with neither a token nor an app', () => {
    expect(() => parseGitHubCredentials('{"appId":1}')).toThrow(/appId/);
  });
});
