import type { CfnResource } from 'aws-cdk-lib';
import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import type { FunctionName } from '../../infra/functions.ts';
import type { SwitchyardStack } from '../../infra/switchyard-stack.ts';
import { CALLBACK_GROUP } from '../../lib/agents/callbacks.ts';
import { CI_TRIAGE_GROUP } from '../../lib/agents/ci-triage.ts';
import { COVERAGE_GROUP } from '../../lib/agents/coverage.ts';
import { HOLD_GROUP } from '../../lib/agents/gates.ts';
import { EDIT_GROUP } from '../../lib/agents/replan.ts';
import { WORK_GROUP } from '../../lib/agents/work-queue.ts';
import { LINK_GROUP, SESSION_GROUP } from '../../lib/console/access.ts';
import { BINDING_GROUP, TOKEN_GROUP } from '../../lib/discord/binding.ts';
import { REFUSAL_GROUP } from '../../lib/discord/interactions.ts';
import { PAUSE_AUDIT_GROUP, PAUSE_GROUP } from '../../lib/engine/pause.ts';
import { CONFIG_VERSION_GROUP } from '../../lib/routing/config-versions.ts';
import { DELIVERY_GROUP, GUARD_GROUP } from '../../lib/routing/guards.ts';
import { CONFIG_GROUP } from '../../lib/routing/repo-config.ts';
import { itemKeys, leadingKeys } from '../../lib/store/schema.ts';
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

const d = (actions: string[]) => actions.map((a) => `dynamodb:${a}`).sort();

describe('table actions per internet-facing function (issue #9, defect 15)', () => {
  // Exactly the actions each function's code uses (infra/functions.ts says which store methods
  // need which): nothing internet-facing retires, reports, admits work or journals effects, so
  // none has UpdateItem; the two callback endpoints never list runs (no BatchGetItem).
  const signaller = ['DeleteItem', 'GetItem', 'PutItem', 'Query'];
  const expected: Record<string, string[]> = {
    runs: d(['BatchGetItem', 'GetItem', 'Query']),
    discord: d([...signaller, 'BatchGetItem']),
    github: d([...signaller, 'BatchGetItem']),
    console: d([...signaller, 'BatchGetItem']),
    callbacks: d(signaller),
    actions: d(signaller),
  };
  for (const [fn, actions] of Object.entries(expected)) {
    it(`${fn} has exactly its table actions`, () => {
      expect(tableActionsOf(fn as FunctionName)).toEqual(actions);
    });
  }

  // The partitions each writer's code touches, from the modules' own group names (a renamed group
  // fails here, not in production): runs and locks for every signaller, idempotency records only
  // where runs start, and the KV groups of its own composition.
  const kv = (...groups: string[]) => groups.map((g) => itemKeys.kv(g));
  const partitions: Record<string, string[]> = {
    discord: [
      leadingKeys.runs,
      leadingKeys.idempotency,
      leadingKeys.locks,
      ...kv(TOKEN_GROUP, BINDING_GROUP, CONFIG_VERSION_GROUP, PAUSE_GROUP, PAUSE_AUDIT_GROUP, REFUSAL_GROUP),
      ...kv(LINK_GROUP, WORK_GROUP),
    ],
    github: [
      leadingKeys.runs,
      leadingKeys.idempotency,
      leadingKeys.locks,
      ...kv(CONFIG_GROUP, CONFIG_VERSION_GROUP, GUARD_GROUP, DELIVERY_GROUP, HOLD_GROUP, PAUSE_GROUP),
      ...kv(PAUSE_AUDIT_GROUP, WORK_GROUP, CI_TRIAGE_GROUP, COVERAGE_GROUP, EDIT_GROUP),
    ],
    callbacks: [leadingKeys.runs, leadingKeys.locks, ...kv(CALLBACK_GROUP, WORK_GROUP)],
    actions: [leadingKeys.runs, leadingKeys.locks, ...kv(WORK_GROUP)],
    console: [leadingKeys.runs, leadingKeys.locks, ...kv(LINK_GROUP, SESSION_GROUP, WORK_GROUP)],
  };
  for (const [fn, keys] of Object.entries(partitions)) {
    it(`${fn} reads and writes only its partitions (dynamodb:LeadingKeys)`, () => {
      const statements = tableStatementsOf(fn as FunctionName);
      expect(statements).toHaveLength(2); // reads, writes: each conditioned
      for (const s of statements) {
        const condition = s.Condition as { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': string[] } };
        expect([...condition['ForAllValues:StringLike']['dynamodb:LeadingKeys']].sort()).toEqual(
          [...new Set(keys)].sort(),
        );
      }
    });
  }

  it('keeps Discord interaction tokens and console sessions away from the GitHub and callback functions', () => {
    for (const fn of ['github', 'callbacks', 'actions'] as const) {
      const leading = JSON.stringify(tableStatementsOf(fn));
      expect(leading).not.toContain(`"${itemKeys.kv(TOKEN_GROUP)}"`);
      expect(leading).not.toContain(`"${itemKeys.kv(SESSION_GROUP)}"`);
    }
  });

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
