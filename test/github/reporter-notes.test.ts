/**
 * The status comment under the engine (issue 13, cost): what it shows (comment id and body hash)
 * is noted with the report's completion, so its KV record is only the creator's claim, written
 * once, and never on an edit. Against the fake GitHub server (real wire format) and DynamoDB Local.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
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

  it('writes only its claim when it creates the comment, and edits by its note without writing it again', async () => {
    const run = makeRun();
    const created = await report(run, undefined);
    const record = await store.kvGet(STATUS_GROUP, run.id);
    expect(record).toMatchObject({ version: 1, value: { commentId: null } });
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

  it('without a note it can vouch for, compares with the comment GitHub has, found by its marker', async () => {
    const run = makeRun();
    await report(run, undefined);
    const writes = vi.spyOn(store, 'kvPut');

    // A claim lapsed since (its worker may have shown something else): no note. The record is only
    // the creator's claim, so the comment is found by its marker, and its body is GitHub's.
    const kept = await report({ ...run, version: 4 }, undefined);
    expect(patches()).toHaveLength(0);
    expect(kept).toBeDefined();
    // Shown differently meanwhile (the lapsed worker's later state): edited back.
    const [comment] = gh.commentsOn(REPO, 7);
    comment!.body = `${comment!.body}\n(another state)`;
    await report({ ...run, version: 5 }, undefined);
    expect(patches()).toHaveLength(1);
    expect(writes).not.toHaveBeenCalled();
    writes.mockRestore();
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
