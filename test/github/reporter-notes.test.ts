/**
 * The status comment under the engine (issue 13, cost): what it shows (comment id and body hash)
 * is noted with the report's completion, so its KV record is written when the comment is created
 * and not on every edit. Against the fake GitHub server (real wire format) and DynamoDB Local.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createGitHubReporter, STATUS_GROUP } from '../../lib/agents/github-reporter.ts';
import type { ReportContext } from '../../lib/engine/engine.ts';
import type { Run } from '../../lib/engine/types.ts';
import { GitHubClientFactory } from '../../lib/github/client.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { createTestStore } from '../support/dynamo.ts';
import { FakeGitHub } from '../support/fake-github.ts';
import { REPO, statusRun, TOKEN, workflow } from './status-run.ts';

const makeRun = (over: Partial<Run> = {}) => statusRun('rnote', over);

describe("the status comment with the engine's notes", () => {
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
  const reporter = () =>
    createGitHubReporter({
      github: new GitHubClientFactory({
        credentials: { kind: 'token', token: TOKEN },
        baseUrl: gh.url,
        throttle: false,
      }),
    });
  /** A report as the engine makes it: the note of the last completed report, and a new one kept. */
  async function report(run: Run, noted: string | undefined): Promise<string | undefined> {
    let kept: string | undefined;
    const ctx: ReportContext = {
      events: [],
      workflow,
      store,
      current: async () => true,
      ...(noted !== undefined ? { noted } : {}),
      note: (value) => {
        kept = value;
      },
    };
    await reporter().report(run, ctx);
    return kept;
  }
  const patches = () => gh.calls('PATCH', /\/issues\/comments\/\d+$/);

  it('writes its record when it creates the comment, and edits by its note without writing it again', async () => {
    const run = makeRun();
    const created = await report(run, undefined);
    const record = await store.kvGet(STATUS_GROUP, run.id);
    const [comment] = gh.commentsOn(REPO, 7);
    expect(JSON.parse(created!)).toMatchObject({ c: comment!.id });

    const edited = await report({ ...run, version: 4, status: 'succeeded', reason: 'done' }, created);

    expect(patches()).toHaveLength(1);
    expect(gh.commentsOn(REPO, 7)[0]!.body).toContain('✅ succeeded');
    expect(await store.kvGet(STATUS_GROUP, run.id)).toEqual(record);
    expect(JSON.parse(edited!)).toMatchObject({ c: comment!.id });
    expect(edited).not.toBe(created);
  });

  it('does not send an unchanged body again, and keeps its note for the next report', async () => {
    const run = makeRun();
    const created = await report(run, undefined);
    const before = gh.requests.length;

    const kept = await report({ ...run, version: 4 }, created);

    expect(gh.requests.length).toBe(before);
    expect(kept).toBe(created);
  });

  it('edits even an unchanged body when the engine has no note it can vouch for', async () => {
    const run = makeRun();
    await report(run, undefined);

    // A claim lapsed since (its worker may have shown something else): no note. The record's hash
    // is not kept up to date under the engine, so it is not taken as what is shown either.
    const kept = await report({ ...run, version: 4 }, undefined);

    expect(patches()).toHaveLength(1);
    expect(kept).toBeDefined();
  });

  it('forgets a deleted comment and creates a new one on the next report', async () => {
    const run = makeRun();
    const created = await report(run, undefined);
    gh.comments.clear();

    await expect(report({ ...run, version: 4, status: 'failed', reason: 'x' }, created)).rejects.toThrow(
      /gone; recreating/,
    );
    expect(await store.kvGet(STATUS_GROUP, run.id)).toBeUndefined();
    await report({ ...run, version: 5, status: 'failed', reason: 'x' }, undefined);
    expect(gh.commentsOn(REPO, 7)).toHaveLength(1);
  });
});
