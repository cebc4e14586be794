import { describe, expect, it } from 'vitest';
import { agentEnv, agentPayload, isSecretName, scrub, secretValues } from '../../lib/agents/allowlist.ts';

const ENV: NodeJS.ProcessEnv = {
  SWITCHYARD_AGENT_MODEL: 'model-x',
  GITHUB_TOKEN: 'ghp_0123456789abcdefghij',
  AWS_SECRET_ACCESS_KEY: 'aws/secret/ABCDEFGHIJKLMNOP',
  DISCORD_BOT_TOKEN: 'discord.bot.token.value',
  NODE_ENV: 'production',
  PATH: '/usr/bin',
};

describe('agent env allowlists', () => {
  it.each([
    ['GITHUB_TOKEN', true],
    ['AWS_SECRET_ACCESS_KEY', true],
    ['privateKey', true],
    ['apiKey', true],
    ['DB_PASSWORD', true],
    ['authorization', true],
    ['SWITCHYARD_AGENT_MODEL', false],
    ['author', false],
    ['monkey', false],
    ['title', false],
  ])('%s looks like a credential: %s', (name, secret) => {
    expect(isSecretName(name)).toBe(secret);
  });

  it('passes only allowlisted variables that are set', () => {
    expect(agentEnv({ envAllowlist: ['SWITCHYARD_AGENT_MODEL', 'UNSET_VAR'] }, ENV)).toEqual({
      env: { SWITCHYARD_AGENT_MODEL: 'model-x' },
      refused: [],
    });
  });

  it('refuses credential-looking names even when they are allowlisted', () => {
    const res = agentEnv(
      { envAllowlist: ['SWITCHYARD_AGENT_MODEL', 'GITHUB_TOKEN', 'DISCORD_BOT_TOKEN'] },
      ENV,
    );
    expect(res.env).toEqual({ SWITCHYARD_AGENT_MODEL: 'model-x' });
    expect(res.refused).toEqual(['GITHUB_TOKEN', 'DISCORD_BOT_TOKEN']);
  });

  it('cuts our secrets out of strings and drops credential-looking keys at any depth', () => {
    const out = scrub(
      { title: `use ${ENV.GITHUB_TOKEN} please`, nested: [{ token: 'x', note: ENV.DISCORD_BOT_TOKEN }] },
      secretValues(ENV),
    );
    expect(out).toEqual({ title: 'use [redacted] please', nested: [{ note: '[redacted]' }] });
  });

  it('never lets a secret key or an environment secret value into a payload', () => {
    const { payload, refused } = agentPayload(
      { name: 'coder', envAllowlist: ['SWITCHYARD_AGENT_MODEL', 'GITHUB_TOKEN', 'AWS_SECRET_ACCESS_KEY'] },
      {
        task: { title: `Rotate ${ENV.AWS_SECRET_ACCESS_KEY}`, files: ['a.ts'] },
        apiKey: 'abc',
        extra: { password: 'hunter22', body: `token is ${ENV.GITHUB_TOKEN}` },
      },
      ENV,
    );
    const text = JSON.stringify(payload);
    for (const value of [ENV.GITHUB_TOKEN, ENV.AWS_SECRET_ACCESS_KEY, ENV.DISCORD_BOT_TOKEN, 'hunter22'])
      expect(text).not.toContain(value);
    for (const key of ['GITHUB_TOKEN', 'AWS_SECRET_ACCESS_KEY', 'apiKey', 'password'])
      expect(text).not.toContain(key);
    expect(payload.env).toEqual({ SWITCHYARD_AGENT_MODEL: 'model-x' });
    expect(refused).toEqual(['GITHUB_TOKEN', 'AWS_SECRET_ACCESS_KEY']);
  });
});
