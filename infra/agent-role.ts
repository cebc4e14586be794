import { CfnOutput, Duration, Stack, Validations } from 'aws-cdk-lib';
import {
  type IOidcProvider,
  OidcProviderNative,
  PolicyStatement,
  Role,
  WebIdentityPrincipal,
} from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/**
 * The role agent workflows assume through GitHub's OIDC federation (aws-actions/configure-aws-credentials):
 * no AWS key is stored in GitHub. Only workflows of the listed repositories may assume it (their
 * token's `sub` is `repo:<owner>/<name>:…`, and its `aud` must be `sts.amazonaws.com`), and it may
 * only invoke the configured Bedrock models.
 */

export const GITHUB_OIDC_HOST = 'token.actions.githubusercontent.com';
/** `owner/name` or `owner/*`. */
export const AGENT_REPO = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})\/(?:[A-Za-z0-9_.-]{1,100}|\*)$/;
/** A cross-region inference profile id starts with its geography. */
const PROFILE_PREFIX = /^(us|eu|apac|us-gov|global)\./;

export interface AgentRoleProps {
  repos: readonly string[];
  /** Bedrock model ids or inference profile ids (e.g. `us.anthropic.claude-sonnet-4-5-20250929-v1:0`). */
  models: readonly string[];
  /** Import the account's GitHub OIDC provider instead of creating it (an account has at most one per URL). */
  providerArn?: string;
}

export class AgentRole extends Construct {
  readonly role: Role;
  readonly provider: IOidcProvider;

  constructor(scope: Construct, id: string, props: AgentRoleProps) {
    super(scope, id);
    this.provider = props.providerArn
      ? OidcProviderNative.fromOidcProviderArn(this, 'GitHubOidc', props.providerArn)
      : new OidcProviderNative(this, 'GitHubOidc', {
          url: `https://${GITHUB_OIDC_HOST}`,
          clientIds: ['sts.amazonaws.com'],
        });
    this.role = new Role(this, 'Role', {
      description: `Switchyard agent workflows of ${props.repos.join(', ')}: Bedrock only`,
      maxSessionDuration: Duration.hours(2),
      assumedBy: new WebIdentityPrincipal(this.provider.openIdConnectProviderArn, {
        StringEquals: { [`${GITHUB_OIDC_HOST}:aud`]: 'sts.amazonaws.com' },
        StringLike: { [`${GITHUB_OIDC_HOST}:sub`]: props.repos.map((r) => `repo:${r}:*`) },
      }),
    });
    const stack = Stack.of(this);
    const resources = props.models.flatMap((model) => {
      if (!PROFILE_PREFIX.test(model))
        return [
          stack.formatArn({
            service: 'bedrock',
            account: '',
            resource: 'foundation-model',
            resourceName: model,
          }),
        ];
      // An inference profile routes to the model in any region of its geography: both the profile
      // and the model it names must be allowed.
      return [
        stack.formatArn({ service: 'bedrock', resource: 'inference-profile', resourceName: model }),
        `arn:${stack.partition}:bedrock:*::foundation-model/${model.replace(PROFILE_PREFIX, '')}`,
      ];
    });
    this.role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'],
        resources,
      }),
    );
    // The region of a profile's foundation models is the only wildcard; each is acknowledged by name.
    for (const model of props.models.filter((m) => PROFILE_PREFIX.test(m)))
      Validations.of(this.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/${model.replace(PROFILE_PREFIX, '')}]`,
        reason:
          'A cross-region inference profile invokes its named foundation model in any region of its geography; the region is the only wildcard.',
      });
    new CfnOutput(stack, 'AgentRoleArn', {
      value: this.role.roleArn,
      description: 'Repository variable SWITCHYARD_AGENT_ROLE_ARN of the agent workflow (docs/agents.md)',
    });
  }
}
