import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../infra/build.ts';
import { executorSecretNames } from '../../infra/executor-secrets.ts';
import { FUNCTIONS } from '../../infra/functions.ts';
import { TEST_CONTEXT } from './support.ts';

/** Issue 9, defect 13: an HTTP executor's `secretEnv` works on AWS without hand-made grants. */

function projectWith(configYaml: string): string {
  const root = mkdtempSync(join(tmpdir(), 'switchyard-secretenv-infra-'));
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

const CONFIG = `version: 1
agents:
  reviewer:
    type: reviewer
    executor: review-svc
  linter:
    type: reviewer
    executor: { type: http, url: "https://lint.example.com/task", secretEnv: LINT_AGENT_SECRET }
executors:
  review-svc: { type: http, url: "https://review.example.com/task", secretEnv: REVIEW_AGENT_SECRET }
  plain: { type: http, url: "https://plain.example.com/task" }
`;

describe('signing secrets named by HTTP executors', () => {
  it('are read from the bundled config: named executors and inline ones, once each', () => {
    const root = projectWith(CONFIG);
    expect(executorSecretNames(join(root, 'config', 'switchyard.yml'))).toEqual([
      'LINT_AGENT_SECRET',
      'REVIEW_AGENT_SECRET',
    ]);
    expect(executorSecretNames(join(root, 'nothing.yml'))).toEqual([]);
  });

  it('get a secret each, readable by the worker and the callbacks function only, found through <NAME>_SECRET_ARN; cdk-nag stays clean', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [], ...TEST_CONTEXT } });
    const stack = buildApp(app, { projectRoot: projectWith(CONFIG) });
    const template = Template.fromStack(stack);
    const secrets = template.findResources('AWS::SecretsManager::Secret');
    const ours = Object.entries(secrets).filter(([id]) => id.startsWith('ExecutorSecret'));
    expect(ours.map(([id]) => id.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual([
      'ExecutorSecretLintAgentSecret',
      'ExecutorSecretReviewAgentSecret',
    ]);

    const envOf = (name: 'worker' | 'callbacks' | 'github') => {
      const fn = stack.functions[name].node.defaultChild as never;
      const props = template.toJSON().Resources[stack.getLogicalId(fn)].Properties;
      return props.Environment.Variables as Record<string, unknown>;
    };
    for (const fn of ['worker', 'callbacks'] as const) {
      expect(Object.keys(envOf(fn))).toEqual(
        expect.arrayContaining(['LINT_AGENT_SECRET_SECRET_ARN', 'REVIEW_AGENT_SECRET_SECRET_ARN']),
      );
    }
    expect(Object.keys(envOf('github'))).not.toContain('LINT_AGENT_SECRET_SECRET_ARN');

    // Read grants: exactly the two readers' roles, per secret.
    for (const [id] of ours) {
      const readers = Object.values(template.findResources('AWS::IAM::Policy')).filter((p) =>
        JSON.stringify(p.Properties.PolicyDocument.Statement).includes(`"Ref":"${id}"`),
      );
      const roles = readers.flatMap((p) => p.Properties.Roles as Array<{ Ref: string }>).map((r) => r.Ref);
      const roleOf = (name: 'worker' | 'callbacks') =>
        stack.getLogicalId(stack.functions[name].role!.node.defaultChild as never);
      expect(roles.sort()).toEqual([roleOf('callbacks'), roleOf('worker')].sort());
    }

    const report = new AwsSolutionsChecks().validateScope(app);
    expect(report.violations.map((v) => v.ruleName)).toEqual([]);
  }, 180_000);
});
