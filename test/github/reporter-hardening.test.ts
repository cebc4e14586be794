/**
 * Issue #9 hardening of the status comment (defects 2, 7, 14, 17): capped below GitHub's limit
 * with long checklists summarised, fenced by the version it shows, a TTL on its record, and every
 * dry-run edit recorded as a run event. Against the fake GitHub server (real wire format).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { COMMENT_MAX_CHARS } from '../../lib/agents/comment-cap.ts';
import { createGitHubReporter, STATUS_GROUP } from '../../lib/agents/github-reporter.ts';
import type { Run } from '../../lib/engine/types.ts';
import { GitHubClientFactory } from '../../lib/github/client.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { createTestStore } from '../support/dynamo.ts';
import { FakeGitHub } from '../support/fake-github.ts';
import { REPO, statusRun, TOKEN, workflow } from './status-run.ts';

const makeRun = (over: Partial<Run> = {}) => statusRun('rhard', over);

function bigPlan(tasks: number) {
  return {
    version: 'pbig',
    title: 'big',
    summary: 'A long checklist',
    tasks: Array.from({ length: tasks }, (_, i) => ({
      id: `t${i + 1}`,
      title: `Task number ${i + 1} with some words to make the line longer than a few characters`,
      agent: 'coder',
      files: [],
      done: i % 2 === 0,
    })),
    files: [],
    planner: 'deterministic',
    repo: REPO,
    issue: 7,
  };
}

describe('the status comment, hardened', () => {
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

  it("summarises a checklist too long for GitHub's 65,536 characters, keeping whole lines", async () => {
    const run = makeRun({ data: { ...makeRun().data, plan: bigPlan(3_000) } });

    await createGitHubReporter({ github: factory() }).report(run, { events: [], workflow, store });

    const body = gh.commentsOn(REPO, 7)[0]!.body;
    expect(body.length).toBeLessThanOrEqual(COMMENT_MAX_CHARS);
    expect(body).toMatch(/^- … and \d+ more tasks \(\d+ done\) not shown/m);
    for (const line of body.split('\n').filter((l) => l.startsWith('- ['))) {
      expect(line).toMatch(/^- \[[ x]\] Task number \d+ with some words .* → `coder`$/);
    }
    expect(body).toContain('```mermaid');
  });

  it('drops the update of a late writer showing an older version', async () => {
    const reporter = createGitHubReporter({ github: factory() });
    const run = makeRun();
    await reporter.report(
      { ...run, version: 5, status: 'succeeded', reason: 'done' },
      { events: [], workflow, store },
    );

    await reporter.report({ ...run, version: 4, status: 'running' }, { events: [], workflow, store });

    expect(gh.calls('PATCH', /\/issues\/comments\/\d+$/)).toHaveLength(0);
    expect(gh.commentsOn(REPO, 7)[0]!.body).toContain('✅ succeeded');
  });

  it('sends nothing once the engine says the report is no longer current', async () => {
    const reporter = createGitHubReporter({ github: factory() });
    const run = makeRun();
    await reporter.report(run, { events: [], workflow, store });

    await reporter.report(
      { ...run, version: 4, status: 'failed', reason: 'boom' },
      { events: [], workflow, store, current: async () => false },
    );

    expect(gh.calls('PATCH', /\/issues\/comments\/\d+$/)).toHaveLength(0);
  });

  it('keeps its record with a TTL', async () => {
    const run = makeRun();
    await createGitHubReporter({ github: factory() }).report(run, { events: [], workflow, store });

    const item = await store.kvGet(STATUS_GROUP, run.id);
    expect(item?.ttl).toBeGreaterThan(Date.now() / 1000 + 30 * 86_400);
  });

  it('records every dry-run edit of a live run as a run event', async () => {
    const recorded: Array<{ runId: string; type: string }> = [];
    const reporter = createGitHubReporter({
      github: new GitHubClientFactory({ baseUrl: gh.url }),
      recordEvent: async (runId, e) => void recorded.push({ runId, type: e.type }),
    });
    const run = makeRun();

    await reporter.report(run, { events: [], workflow, store });
    await reporter.report(
      { ...run, version: 4, node: 'approval', status: 'waiting' },
      { events: [], workflow, store },
    );

    expect(gh.requests).toHaveLength(0);
    expect(recorded).toEqual([
      { runId: run.id, type: 'github.dry-run' },
      { runId: run.id, type: 'github.dry-run' },
    ]);
  });
});
