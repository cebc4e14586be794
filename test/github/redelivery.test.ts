import { randomUUID } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { example, signedRequest, TEST_SECRET, type TestIngress, testIngress } from './support.ts';

/** An issue labelled `ready` (the default trigger) from the real `issues.labeled` example. */
function readyLabelled(issue: number): Record<string, unknown> {
  const p = example('issues', 'labeled');
  const i = p.issue as { number: number; labels: Array<{ name: string }> };
  i.number = issue;
  i.labels = [...i.labels.filter((l) => l.name !== 'ready'), { name: 'ready' }];
  (p.label as { name: string }).name = 'ready';
  return p;
}

describe('redelivery and concurrent duplicates (DynamoDB Local)', () => {
  let ingress: TestIngress;
  beforeEach(async () => {
    ingress = await testIngress();
  });

  const runsFor = async (issue: number) => {
    const p = readyLabelled(issue);
    const repo = (p.repository as { full_name: string }).full_name;
    return ingress.store.listRuns({ subject: `${repo}#${issue}` });
  };

  it('starts a run for an issue labelled ready', async () => {
    const res = await ingress.send(signedRequest(TEST_SECRET, 'issues', readyLabelled(101)));
    expect(res.statusCode).toBe(202);
    expect(JSON.parse(res.body)).toMatchObject({
      status: 'accepted',
      outcome: 'created',
      rule: 'ready-issue',
    });
    const runs = await runsFor(101);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({
      workflow: 'issue-pipeline',
      status: 'queued',
      trigger: { source: 'github', event: 'issues.labeled' },
    });
    expect(runs[0]?.data.event).toMatchObject({ name: 'issues', label: 'ready' });
  });

  it('a redelivered event (same X-GitHub-Delivery) makes no second run', async () => {
    const delivery = randomUUID();
    const first = await ingress.send(signedRequest(TEST_SECRET, 'issues', readyLabelled(102), { delivery }));
    const again = await ingress.send(signedRequest(TEST_SECRET, 'issues', readyLabelled(102), { delivery }));
    expect(JSON.parse(first.body)).toMatchObject({ outcome: 'created' });
    expect(again.statusCode).toBe(202);
    expect(JSON.parse(again.body)).toMatchObject({ outcome: 'duplicate', run: JSON.parse(first.body).run });
    expect(await runsFor(102)).toHaveLength(1);
    // One step message for the one run: a duplicate sends nothing.
    expect(ingress.queue.sent.filter((m) => m.message.kind === 'step')).toHaveLength(1);
  });

  it('ten concurrent copies of one delivery make exactly one run, and every copy gets 202', async () => {
    const delivery = randomUUID();
    const responses = await Promise.all(
      Array.from({ length: 10 }, () =>
        ingress.send(signedRequest(TEST_SECRET, 'issues', readyLabelled(103), { delivery })),
      ),
    );
    expect(responses.map((r) => r.statusCode)).toEqual(Array(10).fill(202));
    const bodies = responses.map((r) => JSON.parse(r.body) as { run: string; outcome: string });
    expect(new Set(bodies.map((b) => b.run)).size).toBe(1);
    expect(bodies.filter((b) => b.outcome === 'created')).toHaveLength(1);
    expect(await runsFor(103)).toHaveLength(1);
    expect(ingress.queue.sent.filter((m) => m.message.kind === 'step')).toHaveLength(1);
  });

  it('a different delivery for the same issue joins the active run (subject concurrency: attach)', async () => {
    const a = await ingress.send(signedRequest(TEST_SECRET, 'issues', readyLabelled(104)));
    const b = await ingress.send(signedRequest(TEST_SECRET, 'issues', readyLabelled(104)));
    expect(JSON.parse(b.body)).toMatchObject({ outcome: 'attached', run: JSON.parse(a.body).run });
    expect(await runsFor(104)).toHaveLength(1);
  });

  it('a redelivered CI result is recorded once', async () => {
    const p = example('workflow_run', 'completed');
    const wr = p.workflow_run as Record<string, unknown>;
    wr.status = 'completed';
    wr.conclusion = 'failure';
    wr.event = 'push';
    const delivery = randomUUID();
    const first = await ingress.send(signedRequest(TEST_SECRET, 'workflow_run', p, { delivery }));
    const copies = await Promise.all(
      Array.from({ length: 5 }, () =>
        ingress.send(signedRequest(TEST_SECRET, 'workflow_run', p, { delivery })),
      ),
    );
    expect(JSON.parse(first.body)).toMatchObject({ status: 'guard', outcome: 'recorded' });
    for (const c of copies) expect(['duplicate', 'unchanged']).toContain(JSON.parse(c.body).outcome);
    const repo = (p.repository as { full_name: string }).full_name;
    expect((await ingress.store.kvGet('guard', `ci#${repo}`))?.version).toBe(1);
  });
});
