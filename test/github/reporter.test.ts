import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createGitHubReporter } from '../../lib/agents/github-reporter.ts';
import { runMarker } from '../../lib/agents/status-comment.ts';
import type { Run, RunEvent } from '../../lib/engine/types.ts';
import { GitHubClientFactory } from '../../lib/github/client.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { createTestStore } from '../support/dynamo.ts';
import { FakeGitHub } from '../support/fake-github.ts';
import { REPO, statusRun, TOKEN, workflow } from './status-run.ts';

function makeRun(over: Partial<Run> = {}): Run {
  return statusRun('rtest', {
    data: {
      routing: {
        outcome: 'run',
        rule: 'ready-issue',
        agents: ['planner', 'coder'],
        reason: 'rule ready-issue matched issues.labeled',
        guards: [],
        policies: [],
      },
    },
    ...over,
  });
}

const events = (...nodes: string[]): RunEvent[] =>
  nodes.map((node, i) => ({
    seq: i,
    at: '2024-05-01T10:00:00.000Z',
    type: 'step.succeeded',
    node,
    detail: {},
  }));

describe('the GitHub status comment reporter', () => {
  let gh: FakeGitHub;
  let store: DynamoRunStore;
  beforeAll(async () => {
    gh = await new FakeGitHub(TOKEN).start();
    store = await createTestStore();
  });
  afterAll(async () => {
    await gh.stop();
  });
  beforeEach(() => {
    gh.requests.length = 0;
    gh.comments.clear();
  });

  const factory = () =>
    new GitHubClientFactory({
      credentials: { kind: 'token', token: TOKEN },
      baseUrl: gh.url,
      throttle: false,
    });

  it('creates one comment, then edits it in place as the run moves', async () => {
    const reporter = createGitHubReporter({ github: factory() });
    const run = makeRun();
    await reporter.report(run, { events: events('intake', 'route'), workflow, store });
    const plan = {
      version: 'pabc',
      title: 't',
      summary: 'Fix the crash',
      tasks: [{ id: 't1', title: 'Fix `src/save.ts`', agent: 'coder', files: ['src/save.ts'], done: false }],
      files: [],
      planner: 'deterministic',
      repo: REPO,
      issue: 7,
    };
    await reporter.report(
      {
        ...run,
        version: 5,
        status: 'waiting',
        node: 'approval',
        data: { ...run.data, plan },
        gate: { node: 'approval', kind: 'approval', binding: 'pabc', expiresAt: '2024-05-04T10:00:00.000Z' },
      },
      { events: events('intake', 'route', 'plan'), workflow, store },
    );
    await reporter.report(
      {
        ...run,
        version: 9,
        status: 'succeeded',
        node: 'report',
        reason: 'completed at report',
        data: { ...run.data, plan },
      },
      {
        events: events('intake', 'route', 'plan', 'approval', 'execute', 'report'),
        workflow,
        store,
      },
    );

    const comments = gh.commentsOn(REPO, 7);
    expect(comments).toHaveLength(1);
    expect(gh.calls('POST', /\/issues\/7\/comments$/)).toHaveLength(1);
    expect(gh.calls('PATCH', /\/issues\/comments\/\d+$/)).toHaveLength(2);
    const body = comments[0]!.body;
    expect(body.startsWith(runMarker(run.id))).toBe(true);
    expect(body).toContain('✅ succeeded');
    expect(body).toContain('#### Plan `pabc`');
    // The task title is untrusted text: its marks are escaped (issue #9, defect 11).
    expect(body).toContain('- [ ] Fix \\`src/save.ts\\` → `coder` · `src/save.ts`');
    expect(body).toContain('```mermaid\nflowchart LR');
    expect(body).toContain('class n_intake,n_route,n_plan,n_approval,n_execute,n_report done');
  });

  it('highlights the current node and links the Discord message', async () => {
    const reporter = createGitHubReporter({ github: factory() });
    const run = makeRun({
      node: 'approval',
      status: 'waiting',
      data: { ...makeRun().data, discordMessageUrl: 'https://discord.com/channels/1/2/3' },
    });
    await reporter.report(run, { events: events('intake', 'route', 'plan'), workflow, store });
    const body = gh.commentsOn(REPO, 7)[0]!.body;
    expect(body).toContain('class n_approval current');
    expect(body).toContain('[Discord](https://discord.com/channels/1/2/3)');
  });

  it('does not send an unchanged body again', async () => {
    const reporter = createGitHubReporter({ github: factory() });
    const run = makeRun();
    await reporter.report(run, { events: [], workflow, store });
    const before = gh.requests.length;
    await reporter.report({ ...run, version: 4 }, { events: [], workflow, store });
    expect(gh.requests.length).toBe(before);
  });

  it('finds its comment by the hidden marker after a crash between creating and recording it', async () => {
    const run = makeRun();
    // A previous attempt created the comment, then died before recording its id.
    const orphan = gh.addComment(REPO, 7, `${runMarker(run.id)}\nold body`, 'switchyard[bot]');
    await createGitHubReporter({ github: factory() }).report(run, { events: [], workflow, store });
    expect(gh.commentsOn(REPO, 7).map((c) => c.id)).toEqual([orphan.id]);
    expect(gh.calls('POST', /\/comments$/)).toHaveLength(0);
    expect(gh.comments.get(orphan.id)?.body).toContain('Switchyard run');
  });

  it('two reporters racing on one run still make one comment', async () => {
    const run = makeRun();
    const results = await Promise.allSettled([
      createGitHubReporter({ github: factory() }).report(run, { events: [], workflow, store }),
      createGitHubReporter({ github: factory() }).report(run, { events: [], workflow, store }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled').length).toBeGreaterThanOrEqual(1);
    for (const r of results)
      if (r.status === 'rejected') expect((r.reason as Error).name).toBe('ReporterBusyError');
    expect(gh.commentsOn(REPO, 7)).toHaveLength(1);
  });

  it('stays silent for runs routing ignored or sent to triage', async () => {
    const reporter = createGitHubReporter({ github: factory() });
    for (const outcome of ['ignore', 'triage', 'forbidden']) {
      await reporter.report(makeRun({ data: { routing: { outcome, agents: [], reason: '' } } }), {
        events: [],
        workflow,
        store,
      });
    }
    expect(gh.requests).toHaveLength(0);
  });

  it('in dry-run sends nothing and records the would-be comment on the finished run', async () => {
    const recorded: Array<{ runId: string; type: string; detail: Record<string, unknown> }> = [];
    const reporter = createGitHubReporter({
      github: new GitHubClientFactory({ baseUrl: gh.url }),
      recordEvent: async (runId, e) => void recorded.push({ runId, type: e.type, detail: e.detail }),
    });
    const run = makeRun({ status: 'failed', reason: 'execute failed: boom' });
    await reporter.report(run, { events: [], workflow, store });
    await reporter.report({ ...run, version: 4 }, { events: [], workflow, store });
    expect(gh.requests).toHaveLength(0);
    expect(recorded).toHaveLength(1);
    expect(recorded[0]).toMatchObject({
      runId: run.id,
      type: 'github.dry-run',
      detail: { method: 'POST', path: '/repos/acme/app/issues/7/comments' },
    });
    expect(JSON.stringify(recorded[0]?.detail.body)).toContain('execute failed: boom');
  });
});
