import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { type LocalStack, startLocalStack } from '../../scripts/local-stack.ts';
import { main as runsCli } from '../../scripts/runs-cli.ts';
import { FakeGitHubActions } from '../support/fake-github-actions.ts';
import { FakeOidcIssuer } from '../support/fake-oidc.ts';

/**
 * Spend caps end to end on the local stack (issue #11): a run whose cap would be passed by its
 * next dispatch waits at a budget gate; `npm run runs -- approve ID --budget USD` raises the cap
 * and the run dispatches again; `reject` stops the run with a report.
 */

const SECRET = 'e2e-webhook-secret';
const REPO = 'acme/app';
const dir = mkdtempSync(join(tmpdir(), 'switchyard-budget-'));

function configFile(budgets: string): string {
  const file = join(dir, `config-${randomBytes(4).toString('hex')}.yml`);
  writeFileSync(
    file,
    `
version: 1
routing:
  rules:
    - name: ready
      event: issues
      action: labeled
      label: ready
      workflow: issue-pipeline
      agents: [planner, coder]
repoConfig: { enabled: false }
agents:
  planner: { type: planner, permissions: [read] }
  coder:
    type: coder
    executor: actions-agent
    permissions: [read, comment, dispatch_workflow, cancel_workflow]
executors:
  actions-agent: { type: github-actions, workflow: switchyard-agent.yml, ref: main }
guards: { ci: { enabled: false } }
workflows:
  issue-pipeline:
    disabledGates: [approval]
budgets: ${budgets}
`,
  );
  return file;
}

const sign = (body: string) => `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;

/** Polls until `fn` yields; the bound only turns a hang into a clear failure. */
async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 120_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('spend caps, end to end', { timeout: 240_000 }, () => {
  let fake: FakeGitHubActions;
  let oidc: FakeOidcIssuer;
  let stack: LocalStack | undefined;
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
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  async function start(config: string): Promise<LocalStack> {
    const table = `e2e-${randomBytes(6).toString('hex')}`;
    // The CLI reads the same table; without QUEUE_URL its signal is picked up by the stack's sweeper.
    process.env.DYNAMODB_ENDPOINT = inject('dynamoEndpoint');
    process.env.TABLE_NAME = table;
    delete process.env.QUEUE_URL;
    stack = await startLocalStack({
      env: {
        ...process.env,
        DYNAMODB_ENDPOINT: inject('dynamoEndpoint'),
        TABLE_NAME: table,
        PORT: '0',
        GITHUB_API_URL: fake.url,
        GITHUB_TOKEN: 'e2e-github-token',
        GITHUB_THROTTLE: 'off',
        GITHUB_WEBHOOK_SECRET: SECRET,
        GITHUB_OIDC_ISSUER: oidc.url,
        SWITCHYARD_CONFIG: config,
      },
      persist: false,
      sweepIntervalMs: 100,
      print: () => {},
    });
    return stack;
  }

  async function label(number: number): Promise<string> {
    const body = 'Two steps:\n\n- [ ] Fix `src/a.ts`\n- [ ] Fix `src/b.ts`\n';
    fake.github.addIssue(REPO, { number, title: `Budgeted (${number})`, body, labels: ['ready'] });
    const payload = JSON.stringify({
      action: 'labeled',
      label: { name: 'ready' },
      issue: {
        number,
        title: `Budgeted (${number})`,
        body,
        state: 'open',
        labels: [{ name: 'ready' }],
        user: { login: 'alice' },
        author_association: 'OWNER',
        html_url: `https://github.com/${REPO}/issues/${number}`,
      },
      repository: {
        full_name: REPO,
        name: 'app',
        owner: { login: 'acme' },
        default_branch: 'main',
        private: false,
      },
      sender: { login: 'alice', type: 'User' },
    });
    const res = await fetch(`${stack!.url}/github/webhook`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'issues',
        'x-github-delivery': randomUUID(),
        'x-hub-signature-256': sign(payload),
      },
      body: payload,
    });
    expect(res.status).toBe(202);
    return until(`a run for #${number}`, async () => {
      const runs = await stack!.store.listRuns({ subject: `${REPO}#${number}` });
      return runs[0]?.id;
    });
  }

  const getRun = async (id: string) =>
    (await (await fetch(`${stack!.url}/runs/${id}`)).json()) as {
      run: Record<string, unknown> & { gate?: { kind?: string; prompt?: string; correlation?: string } };
      events: Array<{ type: string; detail: Record<string, unknown> }>;
    };
  const waitFor = (
    id: string,
    pred: (r: Awaited<ReturnType<typeof getRun>>['run']) => boolean,
    what: string,
  ) =>
    until(what, async () => {
      const { run } = await getRun(id);
      return pred(run) ? run : undefined;
    });
  const dispatches = (id: string) => fake.dispatches.filter((d) => d.inputs.switchyard_run === id);
  const cli = async (...argv: string[]) => {
    const lines: string[] = [];
    const code = await runsCli(argv, (s) => lines.push(s));
    return { code, out: lines.join('\n') };
  };

  it('opens a budget gate before the dispatch that would pass the USD cap; approve --budget raises it and the run goes on', async () => {
    await start(configFile('{ perRun: { usd: 0.5 } }'));
    const id = await label(501);
    const first = await until('the first dispatch', async () => dispatches(id)[0]);
    const task = JSON.parse(first.inputs.task!) as { item: string };
    await waitFor(id, (r) => r.gate?.correlation === task.item, 'the agent to be waited for');

    // The agent reports its spend over OIDC: $0.45 of $0.50, so the next one would pass the cap.
    const token = await oidc.token(oidc.claims({ repo: REPO, runId: first.id }));
    const res = await fetch(`${stack!.url}/callbacks/actions`, {
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
    await start(configFile('{ perRun: { dispatches: 1 } }'));
    const id = await label(502);
    const first = await until('the first dispatch', async () => dispatches(id)[0]);
    const task = JSON.parse(first.inputs.task!) as { item: string };
    await waitFor(id, (r) => r.gate?.correlation === task.item, 'the agent to be waited for');
    fake.finish(first, 'success');
    const done = await fetch(`${stack!.url}/github/webhook`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'workflow_run',
        'x-github-delivery': randomUUID(),
        'x-hub-signature-256': sign(JSON.stringify(fake.payload(first))),
      },
      body: JSON.stringify(fake.payload(first)),
    });
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
