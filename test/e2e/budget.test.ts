import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { main as runsCli } from '../../scripts/runs-cli.ts';
import {
  configFile,
  E2E_TEST_TIMEOUT_MS,
  E2EStack,
  labeledPayload,
  READY_TO_CODER,
  E2E_REPO as REPO,
  until,
} from '../support/e2e.ts';
import { FakeGitHubActions } from '../support/fake-github-actions.ts';
import { FakeOidcIssuer } from '../support/fake-oidc.ts';

/**
 * Spend caps end to end on the local stack (issue #11): a run whose cap would be passed by its
 * next dispatch waits at a budget gate; `npm run runs -- approve ID --budget USD` raises the cap
 * and the run dispatches again; `reject` stops the run with a report.
 */

const config = (budgets: string) =>
  configFile(`${READY_TO_CODER}
guards: { ci: { enabled: false } }
workflows:
  issue-pipeline:
    disabledGates: [approval]
budgets: ${budgets}
`);

describe('spend caps, end to end', { timeout: E2E_TEST_TIMEOUT_MS }, () => {
  let fake: FakeGitHubActions;
  let oidc: FakeOidcIssuer;
  const e2e = new E2EStack('e2e-webhook-secret');
  const saved = new Map<string, string | undefined>();

  beforeAll(async () => {
    fake = await new FakeGitHubActions().start();
    oidc = await new FakeOidcIssuer().start();
    for (const k of ['DYNAMODB_ENDPOINT', 'TABLE_NAME', 'QUEUE_URL']) saved.set(k, process.env[k]);
  });
  afterAll(async () => {
    await fake.stop();
    await oidc.stop();
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  afterEach(() => e2e.stop());

  async function start(config: string) {
    // The CLI reads the same table; without QUEUE_URL its signal is picked up by the stack's sweeper.
    const table = `e2e-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    process.env.DYNAMODB_ENDPOINT = inject('dynamoEndpoint');
    process.env.TABLE_NAME = table;
    delete process.env.QUEUE_URL;
    return e2e.start({ config, githubUrl: fake.url, table, env: { GITHUB_OIDC_ISSUER: oidc.url } });
  }

  async function label(number: number): Promise<string> {
    const body = 'Two steps:\n\n- [ ] Fix `src/a.ts`\n- [ ] Fix `src/b.ts`\n';
    const title = `Budgeted (${number})`;
    fake.github.addIssue(REPO, { number, title, body, labels: ['ready'] });
    const res = await e2e.webhook('issues', labeledPayload(number, { title, body }));
    expect(res.status).toBe(202);
    return e2e.runFor(number);
  }

  const getRun = (id: string) => e2e.getRun(id);
  const waitFor: E2EStack['waitFor'] = (...args) => e2e.waitFor(...args);
  const dispatches = (id: string) => fake.dispatches.filter((d) => d.inputs.switchyard_run === id);
  const cli = async (...argv: string[]) => {
    const lines: string[] = [];
    const code = await runsCli(argv, (s) => lines.push(s));
    return { code, out: lines.join('\n') };
  };

  it('opens a budget gate before the dispatch that would pass the USD cap; approve --budget raises it and the run goes on', async () => {
    await start(config('{ perRun: { usd: 0.5 } }'));
    const id = await label(501);
    const first = await until('the first dispatch', async () => dispatches(id)[0]);
    const task = JSON.parse(first.inputs.task!) as { item: string };
    await waitFor(id, (r) => r.gate?.correlation === task.item, 'the agent to be waited for');

    // The agent reports its spend over OIDC: $0.45 of $0.50, so the next one would pass the cap.
    const token = await oidc.token(oidc.claims({ repo: REPO, runId: first.id }));
    const res = await fetch(`${e2e.url}/callbacks/actions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({
        run: id,
        item: task.item,
        conclusion: 'success',
        summary: 'done',
        usage: { inputTokens: 1000, outputTokens: 200, costUsd: 0.45 },
      }),
    });
    expect(res.status).toBe(200);
    const gated = await waitFor(id, (r) => r.gate?.kind === 'budget', 'the budget gate');
    expect(gated.gate?.prompt).toContain('budget reached: $0.45 of $0.50');
    expect(dispatches(id)).toHaveLength(1);

    const shown = await cli('show', id);
    expect(shown.out).toContain('spend     $0.45 of $0.50 · 1 of 12 dispatches');
    expect((await cli('approve', id, '--budget', 'lots')).code).toBe(2);
    const approved = await cli('approve', id, '--budget', '5', '--by', 'ops');
    expect(approved.code).toBe(0);
    expect(approved.out).toContain('(budget $5)');

    const second = await until('the dispatch after the raise', async () => dispatches(id)[1]);
    expect(JSON.parse(second.inputs.task!)).toMatchObject({ task: { id: 't2' } });
    // The dispatch is sent inside the step; its events land with the step's commit, just after.
    const { run, events } = await until('the raise committed', async () => {
      const got = await getRun(id);
      return got.events.some((e) => e.type === 'budget.raised') ? got : undefined;
    });
    expect(events.map((e) => e.type)).toEqual(
      expect.arrayContaining(['budget.spent', 'budget.reached', 'signal.approve', 'budget.raised']),
    );
    const raised = events.find((e) => e.type === 'budget.raised');
    expect(raised?.detail).toMatchObject({ by: 'ops', from: { usd: 0.5 }, to: { usd: 5 } });
    expect(run.status).not.toBe('failed');
  });

  it('reject at a budget gate stops the run with a report', async () => {
    await start(config('{ perRun: { dispatches: 1 } }'));
    const id = await label(502);
    const first = await until('the first dispatch', async () => dispatches(id)[0]);
    const task = JSON.parse(first.inputs.task!) as { item: string };
    await waitFor(id, (r) => r.gate?.correlation === task.item, 'the agent to be waited for');
    fake.finish(first, 'success');
    const done = await e2e.webhook('workflow_run', fake.payload(first));
    expect(done.status).toBeLessThan(300);
    const gated = await waitFor(id, (r) => r.gate?.kind === 'budget', 'the budget gate');
    expect(gated.gate?.prompt).toContain('budget reached: 1 of 1 dispatches');

    const rejected = await cli('reject', id, '--reason', 'not worth more', '--by', 'ops');
    expect(rejected.code).toBe(0);
    const failed = await waitFor(id, (r) => r.status === 'failed', 'the run to stop');
    expect(failed.reason).toBe('rejected by ops: not worth more');
    expect(dispatches(id)).toHaveLength(1);
    const report = await until('the status comment with the reason', async () =>
      fake.github.commentsOn(REPO, 502).find((c) => c.body.includes('rejected by ops: not worth more')),
    );
    expect(report.body).toContain('1 of 1 dispatches');
  });
});
