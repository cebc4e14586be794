import { beforeEach, describe, expect, it, vi } from 'vitest';

// Secrets Manager cannot run locally; the Powertools call is the edge we stand in for (as in
// test/common/secrets.test.ts).
const getSecret = vi.fn();
vi.mock('@aws-lambda-powertools/parameters/secrets', () => ({ getSecret }));

const { parseConfig } = await import('../../lib/routing/config.ts');
const { executorUrlProblem } = await import('../../lib/agents/executors/endpoint.ts');
const { getNamedSecret, SECRET_MAX_AGE_SECONDS } = await import('../../lib/common/secrets.ts');

/**
 * Issue #9, defect 13: an HTTP executor sends the task, a callback token and maybe a signing
 * secret, so only https:// is accepted, except to a loopback address; and `secretEnv` works on
 * AWS, where the secret is in Secrets Manager, not in a plain variable.
 */

const agentYaml = (url: string) =>
  `version: 1\nagents:\n  remote:\n    type: coder\n    executor: { type: http, url: "${url}" }\n`;

describe('HTTP executor endpoints', () => {
  it.each([
    'https://agent.example.com/tasks',
    'http://127.0.0.1:8080/tasks',
    'http://127.9.9.9/tasks',
    'http://localhost:3000/tasks',
    'http://[::1]:3000/tasks',
  ])('accepts %s', (url) => {
    expect(executorUrlProblem(url)).toBeUndefined();
    expect(() => parseConfig(agentYaml(url))).not.toThrow();
  });

  it.each([
    'http://agent.example.com/tasks',
    'http://10.0.0.5/tasks',
    'http://127.0.0.1.evil.example/tasks',
    'http://localhost.evil.example/tasks',
  ])('refuses %s at config load, naming the line', (url) => {
    expect(executorUrlProblem(url)).toMatch(/https/);
    expect(() => parseConfig(agentYaml(url), 'central.yml')).toThrow(/central\.yml:5:.*https:\/\//);
  });
});

describe('secretEnv on AWS', () => {
  beforeEach(() => getSecret.mockReset());

  it('reads the secret named by <NAME>_SECRET_ARN from Secrets Manager, with a bounded age', async () => {
    getSecret.mockResolvedValue('shared-signing-secret');
    const arn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:agent-x';
    await expect(
      getNamedSecret('AGENT_SIGNING_SECRET', { AGENT_SIGNING_SECRET_SECRET_ARN: arn }),
    ).resolves.toBe('shared-signing-secret');
    expect(getSecret).toHaveBeenCalledWith(arn, { maxAge: SECRET_MAX_AGE_SECONDS });
  });

  it('reads the plain variable locally', async () => {
    await expect(getNamedSecret('AGENT_SIGNING_SECRET', { AGENT_SIGNING_SECRET: 'local' })).resolves.toBe(
      'local',
    );
    expect(getSecret).not.toHaveBeenCalled();
  });
});
