import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { example } from '../github/support.ts';
import {
  configFile,
  E2E_TEST_TIMEOUT_MS,
  E2EStack,
  labeledPayload,
  READY_TO_CODER,
  E2E_REPO as REPO,
  REPOSITORY as repository,
  until,
} from '../support/e2e.ts';
import { FakeGitHubActions } from '../support/fake-github-actions.ts';

/**
 * Issue #12, gates that wait for something other than a decision, on the local stack with GitHub
 * played by the recording stand-in: `/hold` parks a run before its next dispatch until `/unhold`;
 * a run blocked by red CI on main parks at a `ci` gate, resumes when main turns green (confirmed
 * through the API), and fails with a report once `guards.ci.maxWaitHours` have passed.
 */
describe('hold and ci gates, end to end', { timeout: E2E_TEST_TIMEOUT_MS }, () => {
  let github: FakeGitHubActions;
  const e2e = new E2EStack('e2e-gates-secret');

  beforeAll(async () => {
    github = await new FakeGitHubActions().start();
  });
  afterAll(async () => {
    await github.stop();
  });
  afterEach(() => e2e.stop());

  const start = (ci: string) =>
    e2e.start({ config: configFile(`${READY_TO_CODER}\nguards: { ci: ${ci} }\n`), githubUrl: github.url });

  async function webhook(event: string, payload: unknown): Promise<Record<string, unknown>> {
    const res = await e2e.webhook(event, payload);
    expect(res.status).toBeLessThan(300);
    return res.body;
  }

  function labeled(number: number) {
    const payload = labeledPayload(number);
    github.github.addIssue(REPO, {
      number,
      title: payload.issue.title,
      body: payload.issue.body,
      labels: ['ready'],
    });
    return payload;
  }

  function comment(issue: number, body: string, login: string) {
    const c = github.github.addComment(REPO, issue, body, login);
    return {
      id: c.id,
      payload: {
        action: 'created',
        issue: { number: issue, title: `Fix the parser (${issue})`, state: 'open', labels: [] },
        comment: { id: c.id, body, user: { login, type: 'User' }, author_association: 'MEMBER' },
        repository,
        sender: { login, type: 'User' },
      },
    };
  }

  /** A real `workflow_run.completed` payload for CI on main, and the same run in the API's listing. */
  let ciRunId = 900_000;
  function ciResult(conclusion: 'failure' | 'success') {
    const at = new Date(Date.now() + ciRunId - 900_000).toISOString();
    const id = ++ciRunId;
    const p = example('workflow_run', 'completed');
    const wr = p.workflow_run as Record<string, unknown>;
    Object.assign(wr, {
      id,
      name: 'CI',
      // The stand-in lists every run as workflow 4242: the same source, delivered or listed.
      workflow_id: 4242,
      status: 'completed',
      conclusion,
      head_branch: 'main',
      updated_at: at,
      event: 'push',
    });
    p.repository = { ...(p.repository as object), ...repository };
    github.runs.push({
      id,
      repo: REPO,
      workflow: 'ci.yml',
      name: 'CI',
      display_title: 'CI',
      head_branch: 'main',
      head_sha: 'abc1234',
      event: 'push',
      status: 'completed',
      conclusion,
      created_at: at,
      updated_at: at,
      html_url: `https://github.com/${REPO}/actions/runs/${id}`,
      inputs: {},
    });
    return p;
  }

  const runFor = (issue: number) => e2e.runFor(issue);
  const reactionOn = (commentId: number) =>
    until(`a reaction on ${commentId}`, async () =>
      github.github.reactions.find((r) => r.commentId === commentId),
    );

  it('/hold parks the run at a hold gate before its dispatch; /unhold resumes it and it dispatches', async () => {
    await start('{ enabled: false }');
    await webhook('issues', labeled(401));
    const id = await runFor(401);
    await until(
      'the approval gate',
      async () => (await e2e.live.store.getRun(id))?.gate?.kind === 'approval',
    );
    github.github.permissions.set(`${REPO}#bob`, 'write');

    // Nothing to lift yet: refused.
    const early = comment(401, '/unhold', 'bob');
    await webhook('issue_comment', early.payload);
    expect((await reactionOn(early.id)).content).toBe('confused');

    const hold = comment(401, '/hold', 'bob');
    await webhook('issue_comment', hold.payload);
    expect((await reactionOn(hold.id)).content).toBe('+1');
    const approve = comment(401, '/approve', 'bob');
    await webhook('issue_comment', approve.payload);
    expect((await reactionOn(approve.id)).content).toBe('+1');

    const held = await until('the hold gate', async () => {
      const r = await e2e.live.store.getRun(id);
      return r?.gate?.kind === 'hold' ? r : undefined;
    });
    expect(held.node).toBe('execute');
    expect(held.gate?.prompt).toContain('held by github:bob');
    expect(github.dispatches.find((d) => d.inputs.switchyard_run === id)).toBeUndefined();

    const unhold = comment(401, '/unhold', 'bob');
    await webhook('issue_comment', unhold.payload);
    expect((await reactionOn(unhold.id)).content).toBe('+1');
    await until('the dispatch', async () => github.dispatches.find((d) => d.inputs.switchyard_run === id));
    const cmds = (await e2e.live.store.listEvents(id))
      .filter((e) => e.type === 'github.command')
      .map((e) => [e.detail.command, e.detail.outcome]);
    expect(cmds).toEqual([
      ['unhold', 'refused'],
      ['hold', 'done'],
      ['approve', 'done'],
      ['unhold', 'done'],
    ]);
    await until('the status comment lists the refused /unhold, the hold and its lifting', async () =>
      github.github
        .commentsOn(REPO, 401)
        .some(
          (c) =>
            c.body.includes('/unhold by github:bob refused') &&
            c.body.includes('github:bob held the run') &&
            c.body.includes('github:bob lifted the hold'),
        ),
    );
  });

  it('red CI on main parks the run at a ci gate; green resumes it to the approval gate', async () => {
    await start('{ enabled: true }');
    expect(await webhook('workflow_run', ciResult('failure'))).toMatchObject({
      status: 'guard',
      outcome: 'recorded',
    });
    await webhook('issues', labeled(402));
    const id = await runFor(402);
    const parked = await until('the ci gate', async () => {
      const r = await e2e.live.store.getRun(id);
      return r?.gate?.kind === 'ci' ? r : undefined;
    });
    expect(parked.status).toBe('waiting');
    expect(parked.node).toBe('route');
    expect(parked.gate?.prompt).toBe('waiting for green CI on main: CI');
    await until('the status comment shows the wait', async () =>
      github.github.commentsOn(REPO, 402).some((c) => c.body.includes('waiting for green CI on main: CI')),
    );

    await webhook('workflow_run', ciResult('success'));
    await until(
      'the approval gate',
      async () => (await e2e.live.store.getRun(id))?.gate?.kind === 'approval',
    );
    const events = await e2e.live.store.listEvents(id);
    const types = events.map((e) => e.type);
    // Resumed by the green delivery itself, not by the gate's periodic re-check.
    expect(events.find((e) => e.type === 'signal.result')?.by).toBe('ci-guard');
    expect(types).not.toContain('run.failed');
  });

  it('a ci gate expires after guards.ci.maxWaitHours, with a report', async () => {
    // 0.0005 h = 1.8 s: the sweeper brings the gate back to route, which gives up.
    await start('{ enabled: true, maxWaitHours: 0.0005 }');
    await webhook('workflow_run', ciResult('failure'));
    await webhook('issues', labeled(403));
    const id = await runFor(403);
    await until('the ci gate', async () => (await e2e.live.store.getRun(id))?.gate?.kind === 'ci');
    const failed = await until('the run fails', async () => {
      const r = await e2e.live.store.getRun(id);
      return r?.status === 'failed' ? r : undefined;
    });
    expect(failed.reason).toContain('waited 0.0005 h for green CI on main');
    expect(failed.error?.name).toBe('RunBlockedError');
    await until('the status comment reports it', async () =>
      github.github.commentsOn(REPO, 403).some((c) => c.body.includes('for green CI on main and gave up')),
    );
  });
});
