import { execFile } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  E2E_TEST_TIMEOUT_MS,
  E2EStack,
  labeledPayload,
  E2E_REPO as REPO,
  until,
  configFile as writeConfig,
} from '../support/e2e.ts';
import { FakeGitHubActions } from '../support/fake-github-actions.ts';
import { FakeOidcIssuer } from '../support/fake-oidc.ts';

/**
 * End to end on the local stack (the same handlers behind the local HTTP adapter, the in-process
 * queue and worker, the sweeper on a timer) with GitHub played by a loopback fake:
 * label → plan → approve → dispatch → workflow_run completed → report; timeouts; cancellation;
 * priority under contention; permission refusals; and a restart in the middle of agent work.
 */

function configFile(opts: { dispatch?: boolean; approval?: boolean; httpAgent?: string } = {}): string {
  const permissions =
    opts.dispatch === false ? '[read, comment]' : '[read, comment, dispatch_workflow, cancel_workflow]';
  return writeConfig(`
version: 1
routing:
  rules:
    - name: ready
      event: issues
      action: labeled
      label: ready
      workflow: issue-pipeline
      agents: [planner, coder]
      priority: 1
    - name: urgent
      event: issues
      action: labeled
      label: urgent
      workflow: issue-pipeline
      agents: [planner, coder]
      priority: 10
${
  opts.httpAgent
    ? `    - name: review
      event: issues
      action: labeled
      label: review
      workflow: issue-pipeline
      agents: [planner, remote]
`
    : ''
}
repoConfig: { enabled: false }
agents:
  planner: { type: planner, permissions: [read] }
  coder:
    type: coder
    executor: actions-agent
    permissions: ${permissions}
    concurrency: 1
    envAllowlist: [SWITCHYARD_AGENT_MODEL, GITHUB_TOKEN]
${
  opts.httpAgent
    ? `  remote:
    type: reviewer
    executor: { type: http, url: "${opts.httpAgent}" }
    permissions: [read]
    envAllowlist: [SWITCHYARD_AGENT_MODEL]
`
    : ''
}executors:
  actions-agent: { type: github-actions, workflow: switchyard-agent.yml, ref: main }
guards: { ci: { enabled: false } }
${opts.approval === false ? 'workflows:\n  issue-pipeline:\n    disabledGates: [approval]\n' : ''}`);
}

// A whole stack per test: under two busy loops on a loaded 2-core machine one test took 130 s.
const SECRET = 'e2e-webhook-secret';

describe('agents at work, end to end', { timeout: E2E_TEST_TIMEOUT_MS }, () => {
  let fake: FakeGitHubActions;
  let table: string;
  const e2e = new E2EStack(SECRET);

  beforeAll(async () => {
    fake = await new FakeGitHubActions().start();
  });
  afterAll(async () => {
    await fake.stop();
  });
  afterEach(async () => {
    fake.runDetails = 'return';
    await e2e.stop();
  });

  function start(config: string, env: Record<string, string> = {}, tableName?: string) {
    table = tableName ?? `e2e-${randomBytes(6).toString('hex')}`;
    return e2e.start({
      config,
      githubUrl: fake.url,
      table,
      env: { SWITCHYARD_AGENT_MODEL: 'model-x', ...env },
    });
  }

  const webhook = (event: string, payload: unknown) => e2e.webhook(event, payload);

  function labeled(number: number, label = 'ready') {
    const payload = labeledPayload(number, { label });
    fake.github.addIssue(REPO, {
      number,
      title: payload.issue.title,
      body: payload.issue.body,
      labels: [label],
    });
    return payload;
  }

  const getRun = (id: string) => e2e.getRun(id);
  const runFor = (issue: number) => e2e.runFor(issue);
  const waitFor = (id: string, pred: (run: Record<string, unknown>) => boolean, what: string, ms?: number) =>
    e2e.waitFor(id, pred, what, ms);

  const dispatchOf = (runId: string) => fake.dispatches.find((d) => d.inputs.switchyard_run === runId);

  it('label → plan → approve → dispatch → workflow_run completed → report', async () => {
    // Run-name matching, as on a GitHub that does not return the run's id at dispatch.
    fake.runDetails = 'ignore';
    await start(configFile());
    expect((await webhook('issues', labeled(101))).status).toBe(202);
    const id = await runFor(101);
    await waitFor(
      id,
      (r) => r.status === 'waiting' && (r.gate as { kind?: string })?.kind === 'approval',
      'the approval gate',
    );

    await e2e.live.app.engine.signal(id, { type: 'approve', by: 'alice' });
    const dispatch = await until('the dispatch', async () => dispatchOf(id));
    expect(dispatch).toMatchObject({ repo: REPO, workflow: 'switchyard-agent.yml', head_branch: 'main' });
    const task = JSON.parse(dispatch.inputs.task!);
    expect(task).toMatchObject({
      run: id,
      repo: REPO,
      issue: 101,
      env: { SWITCHYARD_AGENT_MODEL: 'model-x' },
    });
    expect(JSON.stringify(dispatch.inputs)).not.toContain('e2e-github-token');
    await waitFor(id, (r) => (r.gate as { kind?: string })?.kind === 'agent', 'the agent gate');

    const list = (await (await fetch(`${e2e.url}/runs`)).json()) as Record<string, unknown>;
    expect(list).toMatchObject({
      queue: { depth: 0 },
      agents: expect.arrayContaining([expect.objectContaining({ name: 'coder', running: 1, limit: 1 })]),
    });

    expect((await webhook('workflow_run', fake.payload(dispatch, 'requested'))).body).toMatchObject({
      outcome: 'ignored',
    });
    expect((await webhook('workflow_run', fake.payload(dispatch, 'in_progress'))).body).toMatchObject({
      outcome: 'linked',
    });
    fake.finish(dispatch, 'success');
    expect((await webhook('workflow_run', fake.payload(dispatch))).body).toMatchObject({
      status: 'agent',
      runId: id,
    });

    const done = await waitFor(id, (r) => r.status === 'succeeded', 'the run to succeed');
    expect(done.node).toBe('report');
    const types = (await getRun(id)).events.map((e) => e.type);
    expect(types).toEqual(
      expect.arrayContaining([
        'plan.created',
        'signal.approve',
        'work.queued',
        'work.dispatched',
        'agent.workflow-run.linked',
        'signal.result',
        'work.task.succeeded',
        'work.completed',
        'run.succeeded',
      ]),
    );
  });

  it('fails the task with a report when the agent times out, and cancels its workflow run', async () => {
    await start(configFile({ approval: false }), { SWITCHYARD_AGENT_TIMEOUT_MS: '1500' });
    await webhook('issues', labeled(102));
    const id = await runFor(102);
    const dispatch = await until('the dispatch', async () => dispatchOf(id));

    const failed = await waitFor(id, (r) => r.status === 'failed', 'the timeout');

    expect(failed.reason).toMatch(/agent coder timed out: no result for task t1/);
    await until('the cancel', async () => fake.cancelled.includes(dispatch.id));
    // The reporter records the cancel after GitHub answered it: wait for the event, not the call.
    await until('the cancel event', async () =>
      (await getRun(id)).events.some((e) => e.type === 'agent.workflow-run.cancelled'),
    );
    const types = (await getRun(id)).events.map((e) => e.type);
    expect(types).toEqual(
      expect.arrayContaining(['gate.expired', 'agent.timed-out', 'agent.workflow-run.cancelled']),
    );
  });

  it('cancelling a run cancels its dispatched workflow run', async () => {
    await start(configFile({ approval: false }));
    await webhook('issues', labeled(103));
    const id = await runFor(103);
    const dispatch = await until('the dispatch', async () => dispatchOf(id));
    await waitFor(id, (r) => (r.gate as { kind?: string })?.kind === 'agent', 'the agent gate');

    await e2e.live.app.engine.signal(id, { type: 'cancel', by: 'alice', reason: 'wrong issue' });

    await until('the workflow run to be cancelled', async () => fake.cancelled.includes(dispatch.id));
    expect(fake.requests.filter((r) => r.path.endsWith(`/actions/runs/${dispatch.id}/cancel`))).toHaveLength(
      1,
    );
    expect((await getRun(id)).run.status).toBe('cancelled');
  });

  it('runs queued work by priority when the agent is busy', async () => {
    await start(configFile({ approval: false }));
    await webhook('issues', labeled(111));
    const first = await runFor(111);
    const firstDispatch = await until('the first dispatch', async () => dispatchOf(first));

    await webhook('issues', labeled(112, 'ready')); // priority 1, queued first
    const low = await runFor(112);
    await waitFor(
      low,
      (r) => String((r.gate as { correlation?: string })?.correlation).startsWith('queue:'),
      'queued',
    );
    await webhook('issues', labeled(113, 'urgent')); // priority 10, queued later
    const high = await runFor(113);
    await waitFor(
      high,
      (r) => String((r.gate as { correlation?: string })?.correlation).startsWith('queue:'),
      'queued',
    );
    const list = (await (await fetch(`${e2e.url}/runs`)).json()) as {
      queue: { depth: number; byAgent: Record<string, number> };
    };
    expect(list.queue).toEqual({ depth: 2, byAgent: { coder: 2 } });

    fake.finish(firstDispatch, 'success');
    await webhook('workflow_run', fake.payload(firstDispatch));
    const next = await until('the next dispatch', async () =>
      fake.dispatches.find(
        (d) =>
          d.inputs.switchyard_run !== first &&
          (d.inputs.switchyard_run === high || d.inputs.switchyard_run === low),
      ),
    );
    expect(next.inputs.switchyard_run).toBe(high);

    fake.finish(next, 'success');
    await webhook('workflow_run', fake.payload(next));
    await until('the low-priority dispatch', async () => dispatchOf(low));
    await waitFor(high, (r) => r.status === 'succeeded', 'the urgent run to finish');
  });

  it('refuses a dispatch by an agent without dispatch_workflow, and records the refusal', async () => {
    await start(configFile({ dispatch: false, approval: false }));
    await webhook('issues', labeled(121));
    const id = await runFor(121);
    const failed = await waitFor(id, (r) => r.status === 'failed', 'the refusal');
    expect(failed.reason).toContain('lacks permission dispatch_workflow');
    expect(dispatchOf(id)).toBeUndefined();
    const refusal = (await getRun(id)).events.find((e) => e.type === 'github.refused');
    expect(refusal?.detail).toMatchObject({ agent: 'coder', permission: 'dispatch_workflow' });
  });

  it('loses nothing when the stack restarts mid-task: the completion after the restart finishes the run', async () => {
    const config = configFile({ approval: false });
    await start(config);
    await webhook('issues', labeled(131));
    const running = await runFor(131);
    const dispatch = await until('the dispatch', async () => dispatchOf(running));
    await webhook('issues', labeled(132));
    const queued = await runFor(132);
    await waitFor(
      queued,
      (r) => String((r.gate as { correlation?: string })?.correlation).startsWith('queue:'),
      'queued',
    );
    const sameTable = table;

    await e2e.stop();
    await start(config, {}, sameTable);

    fake.finish(dispatch, 'success');
    expect((await webhook('workflow_run', fake.payload(dispatch))).body).toMatchObject({ runId: running });
    await waitFor(running, (r) => r.status === 'succeeded', 'the interrupted run to finish');
    const second = await until('the queued run to be dispatched', async () => dispatchOf(queued));
    fake.finish(second, 'success');
    await webhook('workflow_run', fake.payload(second));
    await waitFor(queued, (r) => r.status === 'succeeded', 'the queued run to finish');
  });

  it('in dry-run, records the dispatch and waits; the documented simulator resumes the run', async () => {
    await start(configFile({ approval: false }), { GITHUB_TOKEN: '', GITHUB_CREDENTIALS: '' });
    await webhook('issues', labeled(141));
    const id = await runFor(141);
    await waitFor(id, (r) => (r.gate as { kind?: string })?.kind === 'agent', 'the agent gate');
    expect(dispatchOf(id)).toBeUndefined();
    // The first agent gate may be the wait for a free slot; the dispatch follows it.
    const dry = await until('the dry-run dispatch', async () =>
      (await getRun(id)).events.find(
        (e) =>
          e.type === 'github.dry-run' && String((e.detail as { path?: string }).path).endsWith('/dispatches'),
      ),
    );
    expect(dry?.detail).toMatchObject({
      method: 'POST',
      body: { ref: 'main', inputs: { switchyard_run: id } },
    });

    const { stdout } = await promisify(execFile)(
      'npx',
      ['tsx', 'examples/simulate-workflow-run.ts', id, 'success', '--url', e2e.url],
      { env: { ...process.env, GITHUB_WEBHOOK_SECRET: SECRET } },
    );
    expect(stdout).toMatch(/^202 /);
    await waitFor(id, (r) => r.status === 'succeeded', 'the simulated completion to finish the run');
  });

  it('an HTTP agent gets the task and a callback; its signed POST /callbacks/{token} finishes the run', async () => {
    const tasks: Array<Record<string, unknown>> = [];
    const agent = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        tasks.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>);
        res.writeHead(202).end();
      });
    });
    await new Promise<void>((r) => agent.listen(0, '127.0.0.1', r));
    const address = agent.address();
    const agentUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/tasks`;
    try {
      await start(configFile({ approval: false, httpAgent: agentUrl }));
      await webhook('issues', labeled(151, 'review'));
      const id = await runFor(151);
      const task = await until('the HTTP task', async () => tasks[0]);
      expect(task).toMatchObject({
        run: id,
        issue: 151,
        agent: { name: 'remote' },
        env: { SWITCHYARD_AGENT_MODEL: 'model-x' },
      });
      const callback = task.callback as { url: string; secret: string };
      // The callback URL the agent got is the stack's own, known once it listened.
      expect(callback.url.startsWith(`${e2e.url}/callbacks/`)).toBe(true);
      const path = new URL(callback.url).pathname;
      const body = JSON.stringify({
        ok: true,
        summary: 'reviewed',
        url: 'https://github.com/acme/app/pull/9',
      });
      const signature = `sha256=${createHmac('sha256', callback.secret).update(body).digest('hex')}`;
      const post = () =>
        fetch(`${e2e.url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-switchyard-signature': signature },
          body,
        });
      const unsigned = await fetch(`${e2e.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      expect(unsigned.status).toBe(401);
      expect((await post()).status).toBe(200);
      expect((await post()).status).toBe(409);
      await waitFor(id, (r) => r.status === 'succeeded', 'the run to finish');
    } finally {
      await new Promise<void>((r) => agent.close(() => r()));
    }
  });
  it('label → plan → approve → dispatch (run id) → OIDC callback with a PR → red → fix → green → succeeded', async () => {
    const oidc = await new FakeOidcIssuer().start();
    try {
      await start(configFile(), { GITHUB_OIDC_ISSUER: oidc.url });
      await webhook('issues', labeled(301));
      const id = await runFor(301);
      await waitFor(
        id,
        (r) => (r.gate as { kind?: string })?.kind === 'approval',
        'the approval gate',
        240_000,
      );
      await e2e.live.app.engine.signal(id, { type: 'approve', by: 'alice' });

      const first = await until('the dispatch', async () => dispatchOf(id), 240_000);
      const task = JSON.parse(first.inputs.task!) as { item: string; task: { id: string } };
      const branch = `switchyard/${id}/${task.task.id}`;
      await waitFor(id, (r) => (r.gate as { kind?: string })?.kind === 'agent', 'the agent gate', 240_000);
      const dispatched = (await getRun(id)).events.find((e) => e.type === 'work.dispatched');
      expect(dispatched?.detail).toMatchObject({ workflowRunId: first.id, runDetails: 'returned' });

      const callback = async (runIdClaim: number, item: string) => {
        const token = await oidc.token(oidc.claims({ repo: REPO, runId: runIdClaim }));
        const res = await fetch(`${e2e.url}/callbacks/actions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({
            run: id,
            item,
            conclusion: 'success',
            summary: 'pushed',
            pullRequest: { number: 77, url: `https://github.com/${REPO}/pull/77` },
            usage: { inputTokens: 1000, outputTokens: 200, costUsd: 0.3 },
          }),
        });
        return res.status;
      };
      const ci = (sha: string, conclusion: string) => {
        const run = fake.addRun(REPO, {
          name: 'CI',
          head_branch: branch,
          head_sha: sha,
          event: 'pull_request',
          status: 'completed',
          conclusion,
        });
        if (conclusion === 'failure')
          fake.jobs.set(run.id, [
            {
              id: run.id * 10,
              name: 'test',
              status: 'completed',
              conclusion: 'failure',
              log: '2026-11-30T10:00:00.0000000Z FAIL test/parser.test.ts > parses\n##[error]AssertionError: expected 2 to be 3\n',
            },
          ]);
        return run;
      };

      // The agent opened PR #77 and reports over OIDC; CI on its head goes red.
      fake.openPull(REPO, 77, branch, 'c'.repeat(40));
      expect(await callback(first.id, task.item)).toBe(200);
      await until(
        'the checks wait',
        async () => (await getRun(id)).events.some((e) => e.type === 'work.task.pr'),
        240_000,
      );
      const red = ci('c'.repeat(40), 'failure');
      expect((await webhook('workflow_run', fake.payload(red))).body).toMatchObject({ status: 'pr-checks' });

      // The fix attempt: the same task again, with the failing job's first error lines.
      const second = await until(
        'the fix dispatch',
        async () => fake.dispatches.filter((d) => d.inputs.switchyard_run === id)[1],
        240_000,
      );
      const fix = JSON.parse(second.inputs.task!) as { item: string; lastFailure?: string };
      expect(fix.lastFailure).toContain('expected 2 to be 3');
      await waitFor(
        id,
        (r) => (r.gate as { correlation?: string })?.correlation === fix.item,
        'the fix attempt to wait',
        240_000,
      );
      fake.openPull(REPO, 77, branch, 'd'.repeat(40));
      expect(await callback(second.id, fix.item)).toBe(200);
      const green = ci('d'.repeat(40), 'success');
      await until(
        'the checks wait again',
        async () => (await getRun(id)).events.filter((e) => e.type === 'work.task.pr').length === 2,
        240_000,
      );
      expect((await webhook('workflow_run', fake.payload(green))).body).toMatchObject({
        status: 'pr-checks',
      });

      await waitFor(id, (r) => r.status === 'succeeded', 'the run to succeed', 240_000);
      const types = (await getRun(id)).events.map((e) => e.type);
      expect(types).toEqual(
        expect.arrayContaining(['work.fix.requested', 'work.checks', 'work.task.succeeded']),
      );
      const comment = await until(
        'the status comment with the PR',
        async () =>
          fake.github
            .commentsOn(REPO, 301)
            .find((c) => c.body.includes('PR #77') && c.body.includes('checks: **green**')),
        240_000,
      );
      expect(comment.body).toContain(`https://github.com/${REPO}/pull/77`);
    } finally {
      await oidc.stop();
    }
  }, 600_000);
});
