import { App } from 'aws-cdk-lib';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, readConfig } from '../../infra/config.ts';
import { synth } from './support.ts';

/**
 * The agent role (-c agentRepos): GitHub's OIDC provider (created or imported), a trust policy that
 * only the listed repositories' workflows satisfy, Bedrock invoke on the configured models only,
 * the role ARN as an output, and cdk-nag clean (synth runs the AwsSolutions checks and throws).
 */

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;
const ofType = (t: Template, type: string) =>
  Object.values(t.toJSON().Resources as Resources).filter((r) => r.Type === type);

const MODEL = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';

describe('the agent role (created provider)', () => {
  let template: Template;
  beforeAll(() => {
    ({ template } = synth({
      agentRepos: 'acme/app, acme-labs/*',
      agentModels: `${MODEL},amazon.nova-pro-v1:0`,
    }));
  });

  it('creates the GitHub OIDC provider for sts.amazonaws.com', () => {
    template.hasResourceProperties('AWS::IAM::OIDCProvider', {
      Url: 'https://token.actions.githubusercontent.com',
      ClientIdList: ['sts.amazonaws.com'],
    });
  });

  it('trusts only the listed repositories’ workflows, with the STS audience', () => {
    const roles = ofType(template, 'AWS::IAM::Role').filter((r) =>
      JSON.stringify(r.Properties.AssumeRolePolicyDocument).includes('AssumeRoleWithWebIdentity'),
    );
    expect(roles).toHaveLength(1);
    const statements = (roles[0]!.Properties.AssumeRolePolicyDocument as { Statement: unknown[] }).Statement;
    expect(statements).toEqual([
      {
        Action: 'sts:AssumeRoleWithWebIdentity',
        Effect: 'Allow',
        Principal: { Federated: { Ref: expect.stringMatching(/^AgentsGitHubOidc/) } },
        Condition: {
          StringEquals: { 'token.actions.githubusercontent.com:aud': 'sts.amazonaws.com' },
          StringLike: {
            'token.actions.githubusercontent.com:sub': ['repo:acme/app:*', 'repo:acme-labs/*:*'],
          },
        },
      },
    ]);
  });

  it('may only invoke the configured models', () => {
    const policies = ofType(template, 'AWS::IAM::Policy').filter((p) =>
      JSON.stringify(p.Properties.PolicyDocument).includes('bedrock:'),
    );
    expect(policies).toHaveLength(1);
    const statements = (
      policies[0]!.Properties.PolicyDocument as { Statement: Array<Record<string, unknown>> }
    ).Statement;
    expect(statements).toHaveLength(1);
    expect(statements[0]!.Action).toEqual(['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream']);
    const text = JSON.stringify(statements[0]!.Resource);
    expect(text).toContain(`inference-profile/${MODEL}`);
    expect(text).toContain('::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0');
    expect(text).toContain('foundation-model/amazon.nova-pro-v1:0');
    expect(text).not.toMatch(/foundation-model\/\*|"\*"/);
  });

  it('outputs the role ARN for the workflow’s repository variable', () => {
    template.hasOutput('AgentRoleArn', {
      Value: { 'Fn::GetAtt': [Match.stringLikeRegexp('^AgentsRole'), 'Arn'] },
    });
  });
});

describe('the agent role (imported provider)', () => {
  it('uses the given provider and creates none', () => {
    const arn = 'arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com';
    const { template } = synth({ agentRepos: 'acme/app', githubOidcProviderArn: arn });
    expect(ofType(template, 'AWS::IAM::OIDCProvider')).toHaveLength(0);
    const trust = JSON.stringify(
      ofType(template, 'AWS::IAM::Role').map((r) => r.Properties.AssumeRolePolicyDocument),
    );
    expect(trust).toContain(arn);
    expect(trust).toContain('repo:acme/app:*');
  });
});

describe('agent role context', () => {
  const config = (context: Record<string, string>) => readConfig(new App({ context }).node);

  it('is absent without agentRepos', () => {
    expect(config({}).agentRepos).toBeUndefined();
  });

  it.each([['acme'], ['acme/app/x'], ['*/*'], ['acme/app,repo:evil/*']])('refuses agentRepos=%s', (value) => {
    expect(() => config({ agentRepos: value })).toThrow(ConfigError);
  });

  it('refuses a provider ARN for another issuer, and a model id that is not one', () => {
    expect(() =>
      config({ githubOidcProviderArn: 'arn:aws:iam::123456789012:oidc-provider/accounts.google.com' }),
    ).toThrow(ConfigError);
    expect(() => config({ agentModels: 'anthropic.*' })).toThrow(ConfigError);
  });
});
