import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createGitHubReporter } from '../../lib/agents/github-reporter.ts';
import { runMarker } from '../../lib/agents/status-comment.ts';
import type { Run } from '../../lib/engine/types.ts';
import { Workflow } from '../../lib/engine/workflow.ts';
import { GitHubClientFactory } from '../../lib/github/client.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { issuePipeline } from '../../lib/workflows/issue-pipeline.ts';
import { createTestStore } from '../support/dynamo.ts';
import { FakeGitHub } from '../support/fake-github.ts';

/**
 * Issue #9, defect 10: a marker comment counts as Switchyard's own only when Switchyard's identity
 * wrote it. Before, anyone could post `<!-- switchyard:run:<id> -->` on an issue and have the
 * reporter edit-in-place their comment (a 403 for a stranger's comment, so the run's status
 * never showed), or make triage believe it had already asked.
 */

const REPO = 'acme/app';
const TOKEN = 'marker-token';
const workflow = new Workflow(issuePipeline) as Workflow<unknown>;

const run = (id: string): Run => ({
  id,
  workflow: 'issue-pipeline',
  status: 'running',
  node: 'plan',
  subject: { repo: REPO, issue: 9, key: `${REPO}#9` },
  trigger: { source: 'github', actor: 'octocat' },
  createdAt: '2024-05-01T10:00:00.000Z',
  updatedAt: '2024-05-01T10:00:00.000Z',
  version: 3,
  data: { routing: { outcome: 'run', rule: 'r', agents: [], reason: 'r', guards: [], policies: [] } },
  eventSeq: 3,
});

describe('marker comments count only when Switchyard wrote them', () => {
  let gh: FakeGitHub;
  let store: DynamoRunStore;
  beforeAll(async () => {
    gh = await new FakeGitHub(TOKEN).start();
    store = await createTestStore();
  });
  afterAll(() => gh.stop());
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

  it('a forged status marker by another user is ignored: Switchyard posts its own comment', async () => {
    const r = run('rforged01');
    const forged = gh.addComment(REPO, 9, `${runMarker(r.id)}\nall done, nothing to see`, 'mallory');
    await createGitHubReporter({ github: factory() }).report(r, { events: [], workflow, store });
    expect(gh.calls('PATCH', new RegExp(`/issues/comments/${forged.id}$`))).toHaveLength(0);
    expect(gh.comments.get(forged.id)?.body).toContain('nothing to see');
    const ours = gh.commentsOn(REPO, 9).filter((c) => c.user === 'switchyard[bot]');
    expect(ours).toHaveLength(1);
    expect(ours[0]?.body).toContain('Switchyard run');
  });

  it('its own marker comment (after a crash before recording it) is still found and edited', async () => {
    const r = run('rownmark01');
    const own = gh.addComment(REPO, 9, `${runMarker(r.id)}\nold`, 'switchyard[bot]');
    await createGitHubReporter({ github: factory() }).report(r, { events: [], workflow, store });
    expect(gh.calls('POST', /\/comments$/)).toHaveLength(0);
    expect(gh.comments.get(own.id)?.body).toContain('Switchyard run');
  });

  it('the identity is asked once and remembered', async () => {
    const f = factory();
    expect(await f.selfLogin()).toBe('switchyard[bot]');
    expect(await f.selfLogin()).toBe('switchyard[bot]');
    expect(gh.calls('GET', /^\/user$/)).toHaveLength(1);
  });
});
