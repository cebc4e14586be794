import type { CfnResource } from 'aws-cdk-lib';
import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import type { FunctionName } from '../../infra/functions.ts';
import type { SwitchyardStack } from '../../infra/switchyard-stack.ts';
import { synth } from './support.ts';

/**
 * Issue #9, defect 15: least privilege for the internet-facing functions and throttles per route.
 * (cdk-nag staying clean is test/infra/nag.test.ts.)
 */

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;
let template: Template;
let stack: SwitchyardStack;
let resources: Resources;

beforeAll(() => {
  ({ template, stack } = synth());
  resources = template.toJSON().Resources as Resources;
});

const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);

/** Every action any policy attached to `fn`'s role allows. */
function actionsOf(fn: 'discord' | 'github' | 'callbacks' | 'runs' | 'worker' | 'sweeper'): string[] {
  const roleId = stack.getLogicalId(stack.functions[fn].role!.node.defaultChild as CfnResource);
  return ofType('AWS::IAM::Policy')
    .filter(([, p]) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]))
    .flatMap(([, p]) =>
      (p.Properties.PolicyDocument as { Statement: { Action: string | string[] }[] }).Statement.flatMap(
        (s) => (Array.isArray(s.Action) ? s.Action : [s.Action]),
      ),
    );
}

describe('table permissions', () => {
  it('no function may BatchWriteItem: nothing uses it', () => {
    for (const fn of ['discord', 'github', 'callbacks', 'runs', 'worker', 'sweeper'] as const)
      expect(actionsOf(fn)).not.toContain('dynamodb:BatchWriteItem');
  });

  it('the runs API stays read-only', () => {
    expect(actionsOf('runs').filter((a) => a.startsWith('dynamodb:'))).toEqual(
      expect.not.arrayContaining(['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem']),
    );
  });
});

describe('per-route throttles and the webhook alarm', () => {
  it('each public route has its own throttle, below the stage default', () => {
    const [, stage] = ofType('AWS::ApiGatewayV2::Stage')[0]!;
    const routes = stage.Properties.RouteSettings as Record<
      string,
      { ThrottlingRateLimit: number; ThrottlingBurstLimit: number; DetailedMetricsEnabled?: boolean }
    >;
    for (const key of [
      'POST /github/webhook',
      'POST /discord/interactions',
      'POST /callbacks/{token}',
      'GET /health',
    ]) {
      expect(routes[key]?.ThrottlingRateLimit).toBeGreaterThan(0);
      expect(routes[key]!.ThrottlingRateLimit).toBeLessThanOrEqual(50);
    }
    // Route metrics (4xx, incl. 429) exist only with detailed metrics on.
    expect(routes['POST /github/webhook']?.DetailedMetricsEnabled).toBe(true);
  });

  it('alarms on 4xx (429 included) at the webhook route', () => {
    const alarm = ofType('AWS::CloudWatch::Alarm').find(
      ([, a]) => a.Properties.AlarmName === 'switchyard-dev-webhook-4xx',
    );
    expect(alarm).toBeDefined();
    const p = alarm![1].Properties;
    expect(p.MetricName).toBe('4xx');
    expect(JSON.stringify(p.Dimensions)).toContain('POST /github/webhook');
  });
});

/** The table actions of a function's policies, sorted. */
function tableActionsOf(fn: FunctionName): string[] {
  const roleId = stack.getLogicalId(stack.functions[fn].role!.node.defaultChild as CfnResource);
  return [
    ...new Set(
      ofType('AWS::IAM::Policy')
        .filter(([, p]) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]))
        .flatMap(([, p]) =>
          (p.Properties.PolicyDocument as { Statement: { Action: string | string[] }[] }).Statement.flatMap(
            (s) => (Array.isArray(s.Action) ? s.Action : [s.Action]),
          ),
        )
        .filter((a) => a.startsWith('dynamodb:')),
    ),
  ].sort();
}

/** The statements of a function's policies that name the table itself (not its indexes). */
function tableStatementsOf(fn: FunctionName): { Action: string[]; Condition?: unknown }[] {
  const roleId = stack.getLogicalId(stack.functions[fn].role!.node.defaultChild as CfnResource);
  const tableId = stack.getLogicalId(stack.table.node.defaultChild as CfnResource);
  return ofType('AWS::IAM::Policy')
    .filter(([, p]) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]))
    .flatMap(
      ([, p]) =>
        (
          p.Properties.PolicyDocument as {
            Statement: { Action: string | string[]; Resource: unknown; Condition?: unknown }[];
          }
        ).Statement,
    )
    .filter((s) => JSON.stringify(s.Resource) === JSON.stringify({ 'Fn::GetAtt': [tableId, 'Arn'] }))
    .map((s) => ({
      Action: Array.isArray(s.Action) ? s.Action : [s.Action],
      ...(s.Condition ? { Condition: s.Condition } : {}),
    }));
}

const READ = ['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:Query'];
const WRITE = [
  'dynamodb:ConditionCheckItem',
  'dynamodb:DeleteItem',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
];

describe('table actions per internet-facing function (issue #9, defect 15)', () => {
  // Exactly these: the store's commit transaction deletes the subject lock when a run ends and
  // appendEvent checks the run exists (ConditionCheckItem), so every function that commits needs both.
  const expected: Record<string, string[]> = {
    runs: READ,
    discord: [...READ, ...WRITE].sort(),
    github: [...READ, ...WRITE].sort(),
    callbacks: [...READ, ...WRITE].sort(),
    actions: [...READ, ...WRITE].sort(),
    console: [...READ, ...WRITE].sort(),
  };
  for (const [fn, actions] of Object.entries(expected)) {
    it(`${fn} has exactly its table actions`, () => {
      expect(tableActionsOf(fn as FunctionName)).toEqual(actions);
    });
  }

  it('the runs API reads only runs, the health probe and the work queue (dynamodb:LeadingKeys)', () => {
    const statements = tableStatementsOf('runs');
    expect(statements).toHaveLength(1);
    expect(statements[0]!.Condition).toEqual({
      'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['RUN#*', 'KV#health', 'KV#work'] },
    });
  });

  it('no table statement allows Scan, BatchWriteItem or a wildcard', () => {
    for (const fn of Object.keys(expected) as FunctionName[])
      for (const a of tableActionsOf(fn))
        expect(['dynamodb:Scan', 'dynamodb:BatchWriteItem', 'dynamodb:*']).not.toContain(a);
  });
});
