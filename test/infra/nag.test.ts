import { type App, Validations } from 'aws-cdk-lib';
import { Queue } from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { build } from './support.ts';

function acknowledgements(root: IConstruct): { path: string; id: string; reason: unknown }[] {
  return root.node.findAll().flatMap((c) =>
    c.node.metadata
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((m) =>
        Object.entries(m.data as Record<string, unknown>).map(([id, reason]) => ({
          path: c.node.path,
          id,
          reason,
        })),
      ),
  );
}

describe.each(['dev', 'prod'])('cdk-nag AwsSolutions on the %s stage', (stage) => {
  let app: App;
  // No synthesis needed: validateScope walks the construct tree directly.
  beforeAll(() => {
    ({ app } = build({ stage }));
  });

  it('reports no unacknowledged error or warning', () => {
    const report = new AwsSolutionsChecks().validateScope(app);
    const findings = report.violations.map(
      (v) => `${v.severity} ${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`,
    );
    expect(findings).toEqual([]);
    expect(report.success).toBe(true);
  });

  it('gives every acknowledgement a reason', () => {
    const acks = acknowledgements(app);
    expect(acks.length).toBeGreaterThan(0);
    for (const ack of acks) {
      expect(typeof ack.reason, `${ack.id} at ${ack.path}`).toBe('string');
      expect(String(ack.reason).length, `${ack.id} at ${ack.path}`).toBeGreaterThan(30);
    }
  });

  it('acknowledges only the rules we have decided on', () => {
    const ids = new Set(acknowledgements(app).map((a) => a.id.replace(/^annotation::/i, '')));
    // APIG4: public routes authenticate by signature in the handler. SMG4: third-party secrets cannot auto-rotate.
    expect([...ids].sort()).toEqual(['AwsSolutions-APIG4', 'AwsSolutions-SMG4']);
  });
});

describe('cdk-nag plugin', () => {
  it('fails synthesis on a new, unacknowledged finding', () => {
    const { app, stack } = build();
    // A queue with no DLQ and no TLS policy: three AwsSolutions errors.
    new Queue(stack, 'Unchecked');
    expect(() => app.synth()).toThrow(/AwsSolutions-SQS3/);
  });
});
