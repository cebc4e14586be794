import { type App, Tags, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readConfig } from './config.ts';
import { SwitchyardStack, type SwitchyardStackProps } from './switchyard-stack.ts';

/**
 * Build the whole app from its context. Shared by infra/app.ts (the CDK CLI entry) and the tests,
 * so the tests check exactly what `cdk synth` produces, cdk-nag included.
 */
export function buildApp(app: App, options: Pick<SwitchyardStackProps, 'projectRoot'> = {}): SwitchyardStack {
  const config = readConfig(app.node);
  const stack = new SwitchyardStack(app, `Switchyard-${config.stage}`, {
    stackName: `switchyard-${config.stage}`,
    description: `Switchyard (${config.stage}): ChatOps and GitHub orchestrator`,
    config,
    ...options,
  });
  Tags.of(app).add('project', 'switchyard');
  Tags.of(app).add('stage', config.stage);
  // Any unacknowledged finding fails `cdk synth`; acknowledgements sit next to their resources.
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return stack;
}
