import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NewEvent } from '../../lib/engine/types.ts';
import { GitHubClientFactory } from '../../lib/github/client.ts';
import { PermissionDeniedError } from '../../lib/github/errors.ts';
import { parseConfig } from '../../lib/routing/config.ts';
import { setPrRouting } from '../../lib/routing/pr-toggle.ts';
import { FakeGitHub } from '../support/fake-github.ts';

const REPO = 'acme/app';
const TOKEN = 'toggle-token';
const config = parseConfig('routing: { prRouteLabel: "switchyard:route" }', 'c.yml');

describe('the per-PR routing toggle', () => {
  let gh: FakeGitHub;
  beforeAll(async () => {
    gh = await new FakeGitHub(TOKEN).start();
  });
  afterAll(async () => {
    await gh.stop();
  });
  beforeEach(() => {
    gh.requests.length = 0;
    gh.issues.clear();
    gh.comments.clear();
    gh.addIssue(REPO, { number: 5, title: 'A PR', pullRequest: true, labels: ['enhancement'] });
  });
  const github = () =>
    new GitHubClientFactory({
      credentials: { kind: 'token', token: TOKEN },
      baseUrl: gh.url,
      throttle: false,
    });

  it('turns routing on: adds the label and says who did it', async () => {
    const res = await setPrRouting(
      { github: github(), config },
      { repo: REPO, pr: 5, enabled: true, by: 'discord:42' },
    );
    expect(res).toMatchObject({ changed: true, enabled: true, label: 'switchyard:route', dryRun: false });
    expect(gh.issues.get(`${REPO}#5`)?.labels).toEqual(['enhancement', 'switchyard:route']);
    expect(gh.commentsOn(REPO, 5)[0]?.body).toContain('now **on**');
    expect(gh.commentsOn(REPO, 5)[0]?.body).toContain('discord:42');
  });

  it('turns routing off: removes the label', async () => {
    gh.issues.get(`${REPO}#5`)!.labels.push('switchyard:route');
    const res = await setPrRouting(
      { github: github(), config },
      { repo: REPO, pr: 5, enabled: false, by: 'discord:42' },
    );
    expect(res.changed).toBe(true);
    expect(gh.issues.get(`${REPO}#5`)?.labels).toEqual(['enhancement']);
    expect(gh.calls('DELETE', /\/labels\/switchyard%3Aroute$/)).toHaveLength(1);
  });

  it('changes nothing (and posts nothing) when the PR already is in that state', async () => {
    const res = await setPrRouting(
      { github: github(), config },
      { repo: REPO, pr: 5, enabled: false, by: 'x' },
    );
    expect(res).toMatchObject({ changed: false });
    expect(gh.requests.map((r) => r.method)).toEqual(['GET']);
  });

  it('goes through the permission-checked client: a narrowed pr-toggle identity is refused and recorded', async () => {
    const narrowed = parseConfig(
      'agents:\n  pr-toggle: { type: router, permissions: [read, comment] }\n',
      'n.yml',
    );
    const events: NewEvent[] = [];
    await expect(
      setPrRouting(
        { github: github(), config: narrowed },
        { repo: REPO, pr: 5, enabled: true, by: 'x' },
        { runId: 'r', node: 'toggle', sink: (e) => void events.push(e) },
      ),
    ).rejects.toBeInstanceOf(PermissionDeniedError);
    expect(events.map((e) => e.type)).toEqual(['github.refused']);
    expect(gh.calls('POST', /\/labels$/)).toHaveLength(0);
  });

  it('in dry-run, records the label and comment it would have written', async () => {
    const events: NewEvent[] = [];
    const res = await setPrRouting(
      { github: new GitHubClientFactory({ baseUrl: gh.url }), config },
      { repo: REPO, pr: 5, enabled: true, by: 'x' },
      { runId: 'r', node: 'toggle', sink: (e) => void events.push(e) },
    );
    expect(res).toMatchObject({ changed: true, dryRun: true });
    expect(gh.requests).toHaveLength(0);
    expect(events.map((e) => `${e.detail.method} ${e.detail.path}`)).toEqual([
      'GET /repos/acme/app/issues/5',
      'POST /repos/acme/app/issues/5/labels',
      'POST /repos/acme/app/issues/5/comments',
    ]);
  });
});
