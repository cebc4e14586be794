import { existsSync, readFileSync } from 'node:fs';
import { Aws, Validations } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { parseConfig } from '../lib/routing/config.ts';
import type { PlannerConfig } from '../lib/routing/planner-config.ts';

/**
 * The worker's Bedrock permission, derived from the same central config the worker is bundled
 * with: `bedrock:InvokeModel` (what Converse needs) on the configured model only. A model id
 * gives its foundation-model ARN in the planner's region; an inference profile id gives the
 * profile's ARN plus the foundation-model ARNs in the regions the profile routes to. No planner on
 * Bedrock, no statement.
 */

/** Regions each geographic cross-region inference profile may route to (Bedrock user guide, "Supported Regions and models for inference profiles"). */
export const PROFILE_REGIONS: Record<string, readonly string[]> = {
  us: ['us-east-1', 'us-east-2', 'us-west-1', 'us-west-2'],
  'us-gov': ['us-gov-east-1', 'us-gov-west-1'],
  eu: ['eu-central-1', 'eu-central-2', 'eu-north-1', 'eu-south-1', 'eu-south-2', 'eu-west-1', 'eu-west-3'],
  apac: [
    'ap-northeast-1',
    'ap-northeast-2',
    'ap-northeast-3',
    'ap-south-1',
    'ap-south-2',
    'ap-southeast-1',
    'ap-southeast-2',
    'ap-southeast-4',
  ],
  ca: ['ca-central-1', 'ca-west-1'],
  jp: ['ap-northeast-1', 'ap-northeast-3'],
  au: ['ap-southeast-2', 'ap-southeast-4'],
};

const PROFILE = /^(us-gov|us|eu|apac|ca|jp|au|global)\.(.+)$/;

/** The resources the worker may invoke for `planner` (tokens for the stack's region and account where the config has none). */
export function plannerModelArns(planner: Pick<PlannerConfig, 'model' | 'region'>): string[] {
  const model = planner.model;
  if (!model) return [];
  const region = planner.region ?? Aws.REGION;
  const fm = (r: string, id: string) => `arn:${Aws.PARTITION}:bedrock:${r}::foundation-model/${id}`;
  const m = PROFILE.exec(model);
  if (!m) return [fm(region, model)];
  const [, geo, base] = m as unknown as [string, string, string];
  const profile = `arn:${Aws.PARTITION}:bedrock:${region}:${Aws.ACCOUNT_ID}:inference-profile/${model}`;
  // A global profile may route to any commercial region: the only case that needs a region wildcard.
  const regions = geo === 'global' ? ['*'] : (PROFILE_REGIONS[geo] ?? []);
  return [profile, ...regions.map((r) => fm(r, base))];
}

/** Grant the function Converse on the planner model named in `configFile`, if the planner is on Bedrock. */
export function grantPlannerModel(fn: IFunction, configFile: string): string[] {
  // Stand-in project roots of infrastructure tests may have no config; a real one always does.
  if (!existsSync(configFile)) return [];
  const planner = parseConfig(readFileSync(configFile, 'utf8'), configFile).planner;
  if (planner.provider !== 'bedrock' || !planner.model) return [];
  const resources = plannerModelArns(planner);
  fn.addToRolePolicy(new PolicyStatement({ actions: ['bedrock:InvokeModel'], resources }));
  if (resources.some((r) => r.includes(':*:')) && fn.role) {
    Validations.of(fn.role).acknowledge({
      id: 'AwsSolutions-IAM5',
      reason:
        'A global Bedrock inference profile routes requests to the model in any commercial region; the action is InvokeModel on that one model only.',
    });
  }
  return resources;
}
