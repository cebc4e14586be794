import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { plannerModelArns } from '../../infra/bedrock.ts';
import { buildApp } from '../../infra/build.ts';
import { FUNCTIONS } from '../../infra/functions.ts';
import { TEST_CONTEXT } from './support.ts';

/** A project root with stand-in handlers and the given central config (bundling is skipped). */
function projectWith(configYaml: string): string {
  const root = mkdtempSync(join(tmpdir(), 'switchyard-bedrock-infra-'));
  for (const spec of FUNCTIONS) {
    const file = join(root, spec.entry);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, 'export const handler = async () => ({ statusCode: 200 });\n');
  }
  mkdirSync(join(root, 'config'));
  writeFileSync(join(root, 'config', 'switchyard.yml'), configYaml);
  writeFileSync(join(root, 'package-lock.json'), '{}\n');
  return root;
}

function synth(configYaml: string) {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [], ...TEST_CONTEXT } });
  const stack = buildApp(app, { projectRoot: projectWith(configYaml) });
  return { app, stack, template: Template.fromStack(stack) };
}

const bedrockStatements = (template: Template) =>
  Object.entries(template.findResources('AWS::IAM::Policy')).flatMap(([id, p]) =>
    (p.Properties.PolicyDocument.Statement as Array<{ Action: unknown; Resource: unknown }>)
      .filter((s) => JSON.stringify(s.Action).includes('bedrock'))
      .map((s) => ({ id, roles: p.Properties.Roles, ...s })),
  );

describe('the worker may invoke the configured planner model and nothing else', () => {
  it('grants bedrock:InvokeModel on the inference profile and its foundation models, to the worker only; cdk-nag stays clean', () => {
    const { app, stack, template } = synth(
      'version: 1\nplanner:\n  provider: bedrock\n  model: us.anthropic.claude-3-5-haiku-20241022-v1:0\n',
    );
    const statements = bedrockStatements(template);
    expect(statements).toHaveLength(1);
    const [s] = statements;
    expect(s!.Action).toBe('bedrock:InvokeModel');
    const workerRole = stack.getLogicalId(stack.functions.worker.role!.node.defaultChild as never);
    expect(s!.roles).toEqual([{ Ref: workerRole }]);
    const resources = JSON.stringify(stack.resolve(s!.Resource));
    expect(resources).toContain(':inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0');
    for (const r of ['us-east-1', 'us-east-2', 'us-west-2'])
      expect(resources).toContain(`:bedrock:${r}::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0`);
    expect(resources).not.toContain('*');
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Action: 'bedrock:InvokeModel' })]) },
    });

    const report = new AwsSolutionsChecks().validateScope(app);
    expect(report.violations.map((v) => v.ruleName)).toEqual([]);
  }, 180_000);

  it('a plain model id in a configured region gives one foundation-model ARN', () => {
    const stack = new Stack();
    const arns = plannerModelArns({ model: 'amazon.nova-lite-v1:0', region: 'eu-west-1' }).map((a) =>
      JSON.stringify(stack.resolve(a)),
    );
    expect(arns).toHaveLength(1);
    expect(arns[0]).toContain(':bedrock:eu-west-1::foundation-model/amazon.nova-lite-v1:0');
  });

  it('the deterministic planner (the default) gets no Bedrock permission at all', () => {
    const { template } = synth('version: 1\n');
    expect(bedrockStatements(template)).toEqual([]);
  }, 180_000);
});
