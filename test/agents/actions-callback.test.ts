import { generateKeyPairSync } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type ActionsCallbackDeps,
  handleActionsCallback,
  jsonDepth,
} from '../../lib/agents/actions-callback.ts';
import { resumeFromWorkflowRun } from '../../lib/agents/workflow-run.ts';
import { createActionsCallbackDeps } from '../../lib/app/actions-callback.ts';
import { toRequest } from '../../lib/http/request.ts';
import { FakeOidcIssuer } from '../support/fake-oidc.ts';
import { type AgentWorld, agentWorld } from './support.ts';

const REPO = 'acme/app';
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

describe('dispatch with return_run_details and results over GitHub OIDC', () => {
  let w: AgentWorld;
  let oidc: FakeOidcIssuer;
  let deps: ActionsCallbackDeps;

  beforeAll(async () => {
    oidc = await new FakeOidcIssuer().start();
  });
  afterAll(async () => {
    await oidc.stop();
  });
  afterEach(async () => {
    await w?.stop();
  });

  async function world(runDetails: 'return' | 'ignore' | 'refuse' = 'return') {
    w = await agentWorld();
    w.fake.runDetails = runDetails;
    deps = createActionsCallbackDeps({
      store: w.h.store,
      queue: w.h.queue,
      env: { GITHUB_OIDC_ISSUER: oidc.url },
      engine: w.h.engine,
      github: async () => w.github,
    });
    return w;
  }

  async function post(body: unknown, token: string | undefined, headers: Record<string, string> = {}) {
    const res = await handleActionsCallback(
      deps,
      toRequest({
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
          ...headers,
        },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      }),
    );
    await w.h.settle();
    return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown> };
  }

  /** A run dispatched and waiting for its agent, with the workflow run GitHub created for it. */
  async function dispatched() {
    const run = await w.start([{ agent: 'coder', title: 'Fix the parser', files: ['src/parser.ts'] }]);
    const wr = w.fake.dispatches.find((d) => d.inputs.switchyard_run === run.id)!;
    const item = `${run.id}.t1.1`;
    // The agent's PR, already green: the task is done as soon as its checks are read.
    const branch = `switchyard/${run.id}/t1`;
    w.fake.openPull(REPO, 42, branch, 'e'.repeat(40));
    w.fake.addRun(REPO, {
      head_branch: branch,
      head_sha: 'e'.repeat(40),
      event: 'pull_request',
      conclusion: 'success',
    });
    const result = {
      run: run.id,
      item,
      conclusion: 'success',
      summary: 'Fixed the parser',
      pullRequest: { number: 42, url: `https://github.com/${REPO}/pull/42` },
      usage: { inputTokens: 1200, outputTokens: 300, costUsd: 0.42 },
    };
    return { run, wr, item, result };
  }

  const dispatchBodies = () =>
    w.fake.requests
      .filter((r) => r.method === 'POST' && r.path.endsWith('/dispatches'))
      .map((r) => r.body as Record<string, unknown>);

  it('records the workflow run GitHub returns at dispatch, and cancels by that id', async () => {
    await world('return');
    const { run, wr } = await dispatched();

    expect(dispatchBodies()).toEqual([expect.objectContaining({ return_run_details: true })]);
    const rec = (await w.hub.queue.getDispatch(run.id))!.value;
    expect(rec).toMatchObject({ workflowRunId: wr.id, workflowRunUrl: wr.html_url });
    expect((await w.events(run.id)).find((e) => e.type === 'work.dispatched')?.detail).toMatchObject({
      workflowRunId: wr.id,
      runDetails: 'returned',
    });

    // Before dispatching, find-or-create lists the runs once (a crash may have dispatched already).
    const listings = () =>
      w.fake.requests.filter((r) => r.method === 'GET' && /\/actions\/runs\?/.test(r.path));
    const before = listings().length;
    await w.h.engine.signal(run.id, { type: 'cancel', by: 'alice' });
    await w.h.settle();
    expect(w.fake.cancelled).toEqual([wr.id]);
    // Cancelled by the recorded id: the runs were not listed again to find it.
    expect(listings()).toHaveLength(before);
  });

  it('keeps run-name matching when GitHub answers 204, without dispatching twice', async () => {
    await world('ignore');
    const { run, wr } = await dispatched();

    expect(w.fake.dispatches).toHaveLength(1);
    const rec = (await w.hub.queue.getDispatch(run.id))!.value;
    expect(rec.workflowRunId).toBeUndefined();
    expect(await w.complete(run.id, 'success')).toMatchObject({ outcome: 'resumed' });
    expect((await w.run(run.id)).status).toBe('succeeded');
    expect(wr.status).toBe('completed');
  });

  it('dispatches again without the parameter when the server refuses it by name', async () => {
    await world('refuse');
    const { run } = await dispatched();

    const bodies = dispatchBodies();
    expect(bodies).toHaveLength(2);
    expect(bodies[0]).toHaveProperty('return_run_details', true);
    expect(bodies[1]).not.toHaveProperty('return_run_details');
    expect(w.fake.dispatches).toHaveLength(1);
    expect(await w.types(run.id)).toContain('github.dispatch.fallback');
    expect((await w.run(run.id)).gate).toMatchObject({ kind: 'agent' });
  });

  it('accepts a valid token, resumes the run with the PR, answers a replay 409, and ignores the late completion', async () => {
    await world('return');
    const { run, wr, result } = await dispatched();
    const token = await oidc.token(oidc.claims({ repo: REPO, runId: wr.id }));
    // The dispatch record, as the callback reads it (not the worker's steps meanwhile).
    const kvGet = w.h.store.kvGet.bind(w.h.store);
    let callbackReads = 0;
    vi.spyOn(w.h.store, 'kvGet').mockImplementation((group, key) => {
      if (key === `d#${run.id}` && new Error().stack?.includes('handleActionsCallback')) callbackReads++;
      return kvGet(group, key);
    });

    const first = await post(result, token);

    expect(first).toMatchObject({ status: 200, body: { status: 'accepted', outcome: 'resumed' } });
    expect(callbackReads).toBe(1); // the delivery is given the record the callback checked
    vi.restoreAllMocks();
    const done = await w.run(run.id);
    expect(done.status).toBe('succeeded');
    expect(done.data.execution).toMatchObject({
      tasks: [{ id: 't1', status: 'done', url: `https://github.com/${REPO}/pull/42` }],
    });
    const signal = (await w.events(run.id)).find((e) => e.type === 'signal.result');
    expect(signal?.detail).toBeDefined();

    const before = (await w.events(run.id)).length;
    const replay = await post(result, await oidc.token(oidc.claims({ repo: REPO, runId: wr.id })));
    expect(replay.status).toBe(409);
    w.fake.finish(wr, 'success');
    const late = await resumeFromWorkflowRun(w.h.engine, w.fake.payload(wr, 'completed'));
    expect(['duplicate', 'stale']).toContain(late.outcome);
    await w.h.settle();
    expect((await w.events(run.id)).length).toBe(before);
    expect((await w.run(run.id)).status).toBe('succeeded');
  });

  it('applies one of two identical callbacks that come at once; the other is not applied again', async () => {
    await world('return');
    const { run, wr, result } = await dispatched();
    const token = await oidc.token(oidc.claims({ repo: REPO, runId: wr.id }));
    const writes = vi.spyOn(w.h.store, 'kvPut');

    const both = await Promise.all([post(result, token), post(result, token)]);

    const resumed = both.filter((r) => r.body.outcome === 'resumed');
    expect(resumed).toHaveLength(1);
    // The other: refused as a replay, or too late for the run, or (its resume lost, and the record
    // not yet marked) parked for a wait that never comes: never a second resume.
    const other = both.find((r) => r !== resumed[0])!;
    expect([409, 410, 200]).toContain(other.status);
    expect((await w.events(run.id)).filter((e) => e.type === 'signal.result')).toHaveLength(1);
    expect((await w.run(run.id)).status).toBe('succeeded');
    // No record of its own per applied result: the dispatch record is the one written.
    expect(writes.mock.calls.every(([group]) => group === 'work')).toBe(true);
  });

  it('fails the task when the agent reports failure, with its summary', async () => {
    await world('return');
    const { run, wr, result } = await dispatched();
    const token = await oidc.token(oidc.claims({ repo: REPO, runId: wr.id }));

    const res = await post({ ...result, conclusion: 'failure', summary: 'tests fail' }, token);

    expect(res.status).toBe(200);
    const failed = (await w.events(run.id)).find((e) => e.type === 'work.task.failed');
    expect(failed?.detail).toMatchObject({ task: 't1', summary: 'tests fail' });
  });

  const refusals: Array<[string, (ctx: { wrId: number; runId: string }) => Promise<string>]> = [
    ['a wrong repository', ({ wrId }) => oidc.token(oidc.claims({ repo: 'evil/app', runId: wrId }))],
    ['a wrong run_id', ({ wrId }) => oidc.token(oidc.claims({ repo: REPO, runId: wrId + 1 }))],
    [
      'an expired token',
      ({ wrId }) =>
        oidc.token(oidc.claims({ repo: REPO, runId: wrId }), { issuedAtOffsetS: -900, expiresInS: 300 }),
    ],
    [
      'a wrong audience',
      ({ wrId }) => oidc.token(oidc.claims({ repo: REPO, runId: wrId }), { audience: 'sts.amazonaws.com' }),
    ],
    [
      'a wrong issuer',
      ({ wrId }) =>
        oidc.token(oidc.claims({ repo: REPO, runId: wrId }), {
          issuer: 'https://token.actions.githubusercontent.com',
        }),
    ],
    [
      'alg: none',
      async ({ wrId }) => {
        const now = Math.floor(Date.now() / 1000);
        const claims = { ...oidc.claims({ repo: REPO, runId: wrId }), iss: oidc.url, aud: 'switchyard' };
        return `${b64({ alg: 'none', typ: 'JWT', kid: oidc.kid })}.${b64({ ...claims, iat: now, exp: now + 300 })}.`;
      },
    ],
    [
      'HS256 signed with the public key',
      async ({ wrId }) => {
        const pem = oidc.publicKey.export({ type: 'spki', format: 'pem' });
        return new SignJWT(oidc.claims({ repo: REPO, runId: wrId }))
          .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: oidc.kid })
          .setIssuer(oidc.url)
          .setAudience('switchyard')
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(Buffer.from(pem));
      },
    ],
    [
      'an unknown kid',
      ({ wrId }) => {
        const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
        return oidc.token(oidc.claims({ repo: REPO, runId: wrId }), { kid: 'not-ours', key: privateKey });
      },
    ],
    [
      'a tampered payload',
      async ({ wrId }) => {
        const good = await oidc.token(oidc.claims({ repo: 'acme/other', runId: wrId }));
        const [h, p, s] = good.split('.');
        const claims = JSON.parse(Buffer.from(p!, 'base64url').toString('utf8'));
        return `${h}.${b64({ ...claims, repository: REPO })}.${s}`;
      },
    ],
  ];

  it.each(refusals)('refuses %s with 401 and changes nothing', async (_name, make) => {
    await world('return');
    const { run, wr, result } = await dispatched();
    const before = await w.events(run.id);

    const res = await post(result, await make({ wrId: wr.id, runId: run.id }));

    expect(res.status).toBe(401);
    expect((await w.run(run.id)).gate).toMatchObject({ kind: 'agent' });
    expect(await w.events(run.id)).toHaveLength(before.length);
    // The real token still works afterwards: nothing was spent by the refusal.
    const ok = await post(result, await oidc.token(oidc.claims({ repo: REPO, runId: wr.id })));
    expect(ok.status).toBe(200);
  });

  it('refuses bad bodies with 400 (or 413) before the token is even checked', async () => {
    await world('return');
    const { run, wr, result } = await dispatched();
    const token = await oidc.token(oidc.claims({ repo: REPO, runId: wr.id }));
    const fetches = oidc.jwksFetches;
    const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
    const bodies: Array<[unknown, number]> = [
      ['{"run":', 400],
      [deep, 400],
      [{ ...result, extra: true }, 400],
      [{ ...result, conclusion: 'maybe' }, 400],
      [{ ...result, item: 'rzzzzzzzzzzzz.t1.1' }, 400],
      [{ ...result, summary: 'x'.repeat(5_000) }, 400],
      [{ ...result, pullRequest: { number: 1, url: 'javascript:alert(1)' } }, 400],
      [{ ...result, usage: { costUsd: -1 } }, 400],
      [[result], 400],
      [{ ...result, summary: 'x'.repeat(70_000) }, 413],
    ];
    for (const [body, status] of bodies)
      expect((await post(body, token)).status, JSON.stringify(body).slice(0, 80)).toBe(status);
    expect((await post(result, token, { 'content-type': 'text/plain' })).status).toBe(400);
    expect((await post(result, undefined)).status).toBe(401);
    expect((await post(result, 'not-a-jwt')).status).toBe(401);
    expect(oidc.jwksFetches).toBe(fetches);
    expect((await w.run(run.id)).gate).toMatchObject({ kind: 'agent' });
    // A PR of another repository is refused too (after the token, which binds the repository).
    const other = await post(
      { ...result, pullRequest: { number: 42, url: 'https://github.com/evil/app/pull/42' } },
      token,
    );
    expect(other.status).toBe(400);
    expect((await post(result, token)).status).toBe(200);
  });

  it('binds by workflow and run-name when no run id was recorded', async () => {
    await world('ignore');
    const { run, wr, result } = await dispatched();
    expect((await w.hub.queue.getDispatch(run.id))!.value.workflowRunId).toBeUndefined();
    // Another dispatched run of the same workflow, named for another Switchyard run.
    const foreign = w.fake.addRun(REPO, {
      workflow: 'switchyard-agent.yml',
      event: 'workflow_dispatch',
      display_title: 'switchyard r0000000000000000 r0000000000000000.t1.1',
      status: 'in_progress',
      conclusion: null,
    });

    const wrongRun = await post(result, await oidc.token(oidc.claims({ repo: REPO, runId: foreign.id })));
    const wrongWorkflow = await post(
      result,
      await oidc.token(oidc.claims({ repo: REPO, runId: wr.id, workflow: 'other.yml' })),
    );
    const ok = await post(result, await oidc.token(oidc.claims({ repo: REPO, runId: wr.id })));

    expect(wrongRun.status).toBe(401);
    expect(wrongWorkflow.status).toBe(401);
    expect(ok.status).toBe(200);
    expect((await w.run(run.id)).status).toBe('succeeded');
  });

  it('binds a callback that comes while the dispatch is still being recorded, by workflow and run-name', async () => {
    await world('ignore');
    const put = vi.spyOn(w.hub.queue, 'putDispatch');
    const { run, wr, result } = await dispatched();
    // The record as the dispatching step wrote it before GitHub answered: it names the workflow.
    const recording = put.mock.calls[0]![0];
    expect(recording).toMatchObject({ state: 'dispatching', repo: REPO, workflow: 'switchyard-agent.yml' });
    await w.hub.queue.updateDispatch(run.id, () => recording);
    expect((await w.hub.queue.getDispatch(run.id))!.value.state).toBe('dispatching');

    const wrongWorkflow = await post(
      result,
      await oidc.token(oidc.claims({ repo: REPO, runId: wr.id, workflow: 'other.yml' })),
    );
    const ok = await post(result, await oidc.token(oidc.claims({ repo: REPO, runId: wr.id })));

    expect(wrongWorkflow.status).toBe(401);
    expect(ok.status).toBe(200);
    expect((await w.hub.queue.getDispatch(run.id))!.value.workflowRunId).toBe(wr.id);
    expect((await w.run(run.id)).status).toBe('succeeded');
  });

  it("refuses a token of an earlier item's workflow run, which has no binding record, even named for this run", async () => {
    await world('ignore');
    const { run, wr, result } = await dispatched();
    // A workflow run of this run's earlier item, named by its run-name for this run and item (a
    // rerun of it, say). GitHub returned its id at its dispatch, so the record listed it as
    // `earlier` when the next item replaced it, and nothing bound it.
    const earlier = w.fake.addRun(REPO, {
      workflow: 'switchyard-agent.yml',
      event: 'workflow_dispatch',
      display_title: `switchyard ${run.id} ${result.item}`,
      status: 'in_progress',
      conclusion: null,
    });
    await w.hub.queue.updateDispatch(run.id, (d) => ({ ...d, earlier: [earlier.id] }));

    const stale = await post(result, await oidc.token(oidc.claims({ repo: REPO, runId: earlier.id })));
    expect(stale.status).toBe(401);
    expect(stale.body).toEqual({ error: 'the token is for another workflow run' });
    const ok = await post(result, await oidc.token(oidc.claims({ repo: REPO, runId: wr.id })));
    expect(ok.status).toBe(200);
  });

  it('measures JSON depth without parsing', () => {
    expect(jsonDepth('{"a":[1,{"b":"[[[[["}]}')).toBe(3);
    expect(jsonDepth('"\\"{"')).toBe(0);
  });
});
