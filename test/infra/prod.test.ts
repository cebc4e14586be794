import type { CfnResource } from 'aws-cdk-lib';
import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SwitchyardStack } from '../../infra/switchyard-stack.ts';
import { synth } from './support.ts';

type Resources = Record<
  string,
  { Type: string; Properties: Record<string, unknown>; DeletionPolicy?: string }
>;

let template: Template;
let stack: SwitchyardStack;
let resources: Resources;

beforeAll(() => {
  // No alarmEmail: the subscription is optional.
  ({ template, stack } = synth({ stage: 'prod', alarmEmail: '' }));
  resources = template.toJSON().Resources as Resources;
});

const ofType = (type: string) => Object.values(resources).filter((r) => r.Type === type);

describe('prod stage', () => {
  it('is its own stack, named after the stage', () => {
    expect(stack.stackName).toBe('switchyard-prod');
  });

  it('protects the table from deletion and retains it with the stack', () => {
    const table = resources[stack.getLogicalId(stack.table.node.defaultChild as CfnResource)]!;
    expect(table.Properties.DeletionProtectionEnabled).toBe(true);
    expect(table.DeletionPolicy).toBe('Retain');
  });

  it('retains the secrets and the log groups', () => {
    for (const r of [...ofType('AWS::SecretsManager::Secret'), ...ofType('AWS::Logs::LogGroup')]) {
      expect(r.DeletionPolicy).toBe('Retain');
    }
  });

  it('keeps logs for 90 days', () => {
    for (const group of ofType('AWS::Logs::LogGroup')) expect(group.Properties.RetentionInDays).toBe(90);
  });

  it('uses the service name `switchyard` for metrics and alarms', () => {
    for (const fn of ofType('AWS::Lambda::Function')) {
      const env = (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
      expect(env.POWERTOOLS_SERVICE_NAME).toBe('switchyard');
    }
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'switchyard-prod-runs-failed',
      Dimensions: [{ Name: 'service', Value: 'switchyard' }],
    });
  });

  it('subscribes no email when none is given', () => {
    template.resourceCountIs('AWS::SNS::Subscription', 0);
  });
});
