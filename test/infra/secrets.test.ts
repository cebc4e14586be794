import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { FUNCTIONS } from '../../infra/functions.ts';
import type { SwitchyardStack } from '../../infra/switchyard-stack.ts';
import { synth } from './support.ts';

type Resource = { Type: string; Properties: Record<string, unknown> };

let template: Template;
let stack: SwitchyardStack;
let resources: Record<string, Resource>;
let environments: [string, Record<string, unknown>][];

/** Values that look like real credentials, whatever variable holds them. */
const CREDENTIAL_PATTERNS = [
  /gh[pousr]_[A-Za-z0-9]{20,}/, // GitHub tokens
  /github_pat_[A-Za-z0-9_]{20,}/,
  /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
  /[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}/, // Discord bot token
  /\b(AKIA|ASIA)[A-Z0-9]{16}\b/, // AWS access key id
];

/** Names that would mean a secret travels as a plain variable. */
const SECRET_NAME = /TOKEN|SECRET|PASSWORD|PRIVATE_KEY|CREDENTIAL/;

beforeAll(() => {
  ({ template, stack } = synth());
  resources = template.toJSON().Resources as Record<string, Resource>;
  environments = Object.entries(resources)
    .filter(([, r]) => r.Type === 'AWS::Lambda::Function')
    .map(([id, r]) => [id, (r.Properties.Environment as { Variables: Record<string, unknown> }).Variables]);
});

describe('no secret value in the template', () => {
  it('holds no secret-named variable except *_SECRET_ARN references to stack secrets', () => {
    const secretIds = new Set(
      Object.entries(resources)
        .filter(([, r]) => r.Type === 'AWS::SecretsManager::Secret')
        .map(([id]) => id),
    );
    for (const [fn, env] of environments) {
      for (const [name, value] of Object.entries(env)) {
        if (!SECRET_NAME.test(name)) continue;
        expect(name, `${fn}.${name}`).toMatch(/_SECRET_ARN$/);
        const ref = (value as { Ref?: string }).Ref;
        expect(ref !== undefined && secretIds.has(ref), `${fn}.${name} must reference a stack secret`).toBe(
          true,
        );
      }
    }
  });

  it.each([
    'DISCORD_BOT_TOKEN',
    'GITHUB_TOKEN',
    'GITHUB_WEBHOOK_SECRET',
    'GITHUB_CREDENTIALS',
    'CONSOLE_LINK_KEY',
  ])('never sets %s as a plain variable', (name) => {
    for (const [, env] of environments) expect(env).not.toHaveProperty(name);
  });

  it('holds no literal that looks like a credential anywhere in the template', () => {
    const text = JSON.stringify(template.toJSON());
    for (const pattern of CREDENTIAL_PATTERNS) expect(text).not.toMatch(pattern);
  });

  it('creates the secrets with a generated placeholder, never a SecretString', () => {
    const secrets = Object.values(resources).filter((r) => r.Type === 'AWS::SecretsManager::Secret');
    expect(secrets).toHaveLength(4);
    for (const secret of secrets) {
      expect(secret.Properties.SecretString).toBeUndefined();
      expect(secret.Properties.GenerateSecretString).toMatchObject({ ExcludePunctuation: true });
    }
  });
});

describe('secret access', () => {
  const readers = (secretId: string) =>
    Object.values(resources)
      .filter(
        (r) =>
          r.Type === 'AWS::IAM::Policy' &&
          JSON.stringify(r.Properties.PolicyDocument).includes(`"secretsmanager:GetSecretValue"`) &&
          (r.Properties.PolicyDocument as { Statement: { Resource: unknown }[] }).Statement.some(
            (s) => JSON.stringify(s.Resource) === JSON.stringify({ Ref: secretId }),
          ),
      )
      .flatMap((r) => (r.Properties.Roles as { Ref: string }[]).map((role) => role.Ref))
      .sort();

  it.each([
    ['DISCORD_BOT_TOKEN', ['worker']],
    ['GITHUB_WEBHOOK_SECRET', ['github']],
    // The sweeper's recovery sweep redelivers failed webhooks and reads agents' Actions runs.
    ['GITHUB_CREDENTIALS', ['sweeper', 'worker', 'actions']],
    ['CONSOLE_LINK_KEY', ['console', 'discord']],
  ] as const)(
    'lets only the functions that need %s read it, and tells only them its ARN',
    (name, expected) => {
      const secretId = stack.getLogicalId(stack.secrets[name].node.defaultChild as never);
      const roleIds = (names: readonly string[]) =>
        names
          .map((n) => stack.getLogicalId(stack.functions[n as 'worker'].role!.node.defaultChild as never))
          .sort();
      expect(readers(secretId)).toEqual(roleIds(expected));

      const withArn = FUNCTIONS.filter((spec) => {
        const fnId = stack.getLogicalId(stack.functions[spec.name].node.defaultChild as never);
        return environments.find(([id]) => id === fnId)?.[1][`${name}_SECRET_ARN`] !== undefined;
      }).map((spec) => spec.name);
      expect(withArn.sort()).toEqual([...expected].sort());
    },
  );
});
