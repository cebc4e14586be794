import { afterEach, describe, expect, it, vi } from 'vitest';
import { resumeFromWorkflowRun } from '../../lib/agents/workflow-run.ts';
import { type AgentWorld, agentWorld, answer, TEST_ENV } from './support.ts';

describe('the execute node (hub, queue, GitHub Actions executor)', () => {
  let w: AgentWorld;
  afterEach(async () => {
    await w?.stop();
  });

  it('dispatches a task as a workflow_dispatch and finishes when its workflow_run completes', async () => {
    w = await agentWorld();
    const run = await w.start([{ agent: 'coder', title: 'Fix the parser', files: ['src/parser.ts'] }]);

    expect(run.status).toBe('waiting');
    expect(run.gate).toMatchObject({ kind: 'agent', node: 'execute', correlation: `${run.id}.t1.1` });
    const [dispatch] = w.fake.dispatches;
    expect(dispatch).toMatchObject({
      repo: 'acme/app',
      workflow: 'switchyard-agent.yml',
      head_branch: 'main',
    });
    expect(dispatch!.inputs.switchyard_run).toBe(run.id);
    const task = JSON.parse(dispatch!.inputs.task!);
    expect(task).toMatchObject({
      run: run.id,
      item: `${run.id}.t1.1`,
      repo: 'acme/app',
      issue: 7,
      task: { id: 't1', title: 'Fix the parser', files: ['src/parser.ts'] },
      env: { SWITCHYARD_AGENT_MODEL: 'model-x' },
    });

    const res = await w.complete(run.id, 'success');

    expect(res).toMatchObject({ outcome: 'resumed', runId: run.id });
    const done = await w.run(run.id);
    expect(done.status).toBe('succeeded');
    expect(done.data.taskStatus).toEqual({ t1: 'done' });
    expect(done.data.execution).toMatchObject({
      tasks: [{ id: 't1', status: 'done', url: expect.stringContaining('/actions/runs/') }],
    });
    const types = await w.types(run.id);
    expect(types).toEqual(
      expect.arrayContaining([
        'work.queued',
        'github.request',
        'work.dispatched',
        'signal.result',
        'work.task.succeeded',
        'work.completed',
      ]),
    );
    expect(await w.hub.queue.snapshot()).toEqual({ running: [], waiting: [] });
  });

  it('never sends a secret: allowlisted credential names are refused and secret values cut out', async () => {
    w = await agentWorld();
    const run = await w.start([{ agent: 'coder', title: `Rotate ${TEST_ENV.GITHUB_TOKEN}` }]);
    const inputs = JSON.stringify(w.fake.dispatches[0]!.inputs);
    expect(inputs).not.toContain('GITHUB_TOKEN');
    expect(inputs).not.toContain(TEST_ENV.GITHUB_TOKEN);
    expect(inputs).toContain('SWITCHYARD_AGENT_MODEL');
    const refused = (await w.events(run.id)).find((e) => e.type === 'agent.env.refused');
    expect(refused?.detail).toMatchObject({ agent: 'coder', names: ['GITHUB_TOKEN'] });
  });

  it('runs a plan task by task, in order', async () => {
    w = await agentWorld();
    const run = await w.start([{ agent: 'coder' }, { agent: 'reviewer' }]);
    expect(w.fake.dispatches).toHaveLength(1);
    await w.complete(run.id);
    expect(w.fake.dispatches).toHaveLength(2);
    expect(JSON.parse(w.fake.dispatches[1]!.inputs.task!)).toMatchObject({
      task: { id: 't2' },
      agent: { name: 'reviewer' },
    });
    await w.complete(run.id);
    expect((await w.run(run.id)).data.taskStatus).toEqual({ t1: 'done', t2: 'done' });
  });

  it("hands a task's slot to the run's next task in one write, unless another run waits for it", async () => {
    w = await agentWorld();
    const swaps = vi.spyOn(w.h.store, 'kvSwap');
    const leaves = vi.spyOn(w.h.store, 'kvLeave');
    const run = await w.start([{ agent: 'coder' }, { agent: 'coder' }, { agent: 'coder' }]);

    // Nothing else waits: t1's slot passes to t2, with no release and no admission of their own.
    await w.complete(run.id);
    expect(swaps).toHaveBeenCalledTimes(1);
    expect(leaves).not.toHaveBeenCalled();
    expect((await w.hub.queue.snapshot()).running.map((r) => r.id)).toEqual([`${run.id}.t2.1`]);

    // Another run waits for the coder (concurrency 1): t2's slot goes to it, and t3 queues behind.
    const other = await w.start([{ agent: 'coder' }], { issue: 8 });
    expect(other.status).toBe('waiting');
    await w.complete(run.id);
    expect(swaps).toHaveBeenCalledTimes(1);
    expect(leaves).toHaveBeenCalledTimes(1);
    expect((await w.hub.queue.snapshot()).running.map((r) => r.runId)).toEqual([other.id]);
    expect((await w.hub.queue.snapshot()).waiting.map((r) => r.id)).toEqual([`${run.id}.t3.1`]);

    await w.complete(other.id);
    await w.complete(run.id);
    expect((await w.run(run.id)).data.taskStatus).toEqual({ t1: 'done', t2: 'done', t3: 'done' });
    expect((await w.run(other.id)).status).toBe('succeeded');
    expect(await w.hub.queue.snapshot()).toEqual({ running: [], waiting: [] });
  });

  it('refuses a dispatch by an agent without dispatch_workflow, records it, and frees the slot', async () => {
    w = await agentWorld();
    const run = await w.start([{ agent: 'readonly' }]);
    const failed = await w.run(run.id);
    expect(failed.status).toBe('failed');
    expect(failed.reason).toContain('lacks permission dispatch_workflow');
    expect(w.fake.dispatches).toHaveLength(0);
    const refusal = (await w.events(run.id)).find((e) => e.type === 'github.refused');
    expect(refusal?.detail).toMatchObject({
      agent: 'readonly',
      permission: 'dispatch_workflow',
      method: 'POST',
    });
    expect((await w.hub.queue.snapshot()).running).toEqual([]);
  });

  it('records the call as a dry run when there are no GitHub credentials, and still waits for the agent', async () => {
    w = await agentWorld({ dryRun: true });
    const run = await w.start([{ agent: 'coder' }]);
    expect(run.status).toBe('waiting');
    expect(w.fake.dispatches).toHaveLength(0);
    const dry = (await w.events(run.id)).find((e) => e.type === 'github.dry-run');
    expect(dry?.detail).toMatchObject({
      method: 'POST',
      path: '/repos/acme/app/actions/workflows/switchyard-agent.yml/dispatches',
      body: { ref: 'main', inputs: { switchyard_run: run.id } },
    });
    // A simulated workflow_run completion resumes it (docs/agents.md, dry-run).
    const res = await resumeFromWorkflowRun(w.h.engine, {
      action: 'completed',
      workflow_run: {
        id: 1,
        display_title: `switchyard ${run.id}`,
        event: 'workflow_dispatch',
        status: 'completed',
        conclusion: 'success',
        created_at: w.clock.now().toISOString(),
      },
      repository: { full_name: 'acme/app' },
    });
    await w.h.settle();
    expect(res.outcome).toBe('resumed');
    expect((await w.run(run.id)).status).toBe('succeeded');
  });

  it('retries a failed task, then escalates after maxFailures; approving tries again', async () => {
    w = await agentWorld();
    const run = await w.start([{ agent: 'coder' }]);
    await w.complete(run.id, 'failure');
    expect(w.fake.dispatches).toHaveLength(2); // retried
    await w.complete(run.id, 'failure');

    const escalated = await w.run(run.id);
    expect(escalated.status).toBe('waiting');
    expect(escalated.gate).toMatchObject({ kind: 'escalation', binding: 'escalation-1' });
    const events = await w.events(run.id);
    expect(events.filter((e) => e.type === 'work.task.failed').map((e) => e.detail.failures)).toEqual([1, 2]);
    const notice = events.find((e) => e.type === 'escalation.notify.dry-run');
    expect(notice?.detail.content).toContain('failed 2 times');

    await w.h.engine.signal(run.id, { type: 'approve', by: 'alice' });
    await w.h.settle();
    expect(w.fake.dispatches).toHaveLength(3);
    await w.complete(run.id, 'success');
    expect((await w.run(run.id)).status).toBe('succeeded');
  });

  it('fails the run with a report when the escalation is rejected', async () => {
    w = await agentWorld({ options: { maxFailures: 1 } });
    const run = await w.start([{ agent: 'coder' }]);
    await w.complete(run.id, 'failure');
    await w.h.engine.signal(run.id, { type: 'reject', by: 'bob', reason: 'not worth it' });
    await w.h.settle();
    const done = await w.run(run.id);
    expect(done.status).toBe('failed');
    expect(done.reason).toBe('rejected by bob: not worth it');
  });

  it('escalates when the agent asks for a person', async () => {
    w = await agentWorld();
    const run = await w.start([{ agent: 'coder' }]);
    await answer(w, run.id, { ok: false, payload: { escalate: 'I need access to the staging database' } });
    const r = await w.run(run.id);
    expect(r.gate).toMatchObject({ kind: 'escalation' });
    expect(r.gate?.prompt).toContain('coder asks for a person: I need access to the staging database');
  });

  it('escalates instead of dispatching while the CI guard is red; approving dispatches anyway', async () => {
    w = await agentWorld();
    await w.h.store.kvPut('guard', 'ci#acme/app', {
      repo: 'acme/app',
      branch: 'main',
      sources: { 'workflow:1': { name: 'CI', conclusion: 'failure', at: new Date().toISOString() } },
      updatedAt: new Date().toISOString(),
    });
    const run = await w.start([{ agent: 'coder' }]);
    expect((await w.run(run.id)).gate).toMatchObject({ kind: 'escalation' });
    expect(w.fake.dispatches).toHaveLength(0);
    await w.h.engine.signal(run.id, { type: 'approve', by: 'alice' });
    await w.h.settle();
    expect(w.fake.dispatches).toHaveLength(1);
  });

  it('fails the task as timed out when the agent does not answer, and cancels its workflow run', async () => {
    w = await agentWorld({ options: { agentTimeoutMs: 60_000 } });
    const run = await w.start([{ agent: 'coder' }]);
    const wr = w.fake.dispatches[0]!;

    w.clock.advance(61_000);
    await w.h.engine.sweep();
    await w.h.settle();

    const done = await w.run(run.id);
    expect(done.status).toBe('failed');
    expect(done.reason).toContain('agent coder timed out: no result for task t1 within 1 min');
    expect(w.fake.cancelled).toEqual([wr.id]);
    const types = await w.types(run.id);
    expect(types).toEqual(
      expect.arrayContaining(['gate.expired', 'agent.timed-out', 'agent.workflow-run.cancelled']),
    );
    expect((await w.hub.queue.snapshot()).running).toEqual([]);
  });

  it('links a workflow run when it is in progress, not when it is requested (no read)', async () => {
    w = await agentWorld();
    w.fake.runDetails = 'ignore'; // GitHub answers the dispatch without the run's id
    const run = await w.start([{ agent: 'coder' }]);
    const wr = w.fake.dispatches[0]!;
    const reads = vi.spyOn(w.h.store, 'kvGet');
    expect(await resumeFromWorkflowRun(w.h.engine, w.fake.payload(wr, 'requested'))).toMatchObject({
      outcome: 'ignored',
      runId: run.id,
    });
    expect(reads).not.toHaveBeenCalled();
    expect(await resumeFromWorkflowRun(w.h.engine, w.fake.payload(wr, 'in_progress'))).toMatchObject({
      outcome: 'linked',
    });
    expect((await w.hub.queue.getDispatch(run.id))?.value.workflowRunId).toBe(wr.id);
  });

  it('leaves a workflow run in progress to the dispatch still recording it, but not its completion', async () => {
    w = await agentWorld();
    const run = await w.start([{ agent: 'coder' }]);
    const wr = w.fake.dispatches[0]!;
    // As the record is while the dispatching step waits for GitHub's answer.
    await w.hub.queue.updateDispatch(run.id, ({ workflowRunId: _id, workflowRunUrl: _url, ...d }) => ({
      ...d,
      state: 'dispatching',
    }));
    const writes = vi.spyOn(w.h.store, 'kvPut');
    expect(await resumeFromWorkflowRun(w.h.engine, w.fake.payload(wr, 'in_progress'))).toMatchObject({
      outcome: 'ignored',
      reason: 'its dispatch is still being recorded',
    });
    expect(writes).not.toHaveBeenCalled();
    expect((await w.types(run.id)).includes('agent.workflow-run.linked')).toBe(false);

    w.fake.finish(wr, 'success');
    expect((await resumeFromWorkflowRun(w.h.engine, w.fake.payload(wr))).outcome).toBe('resumed');
  });

  it('cancelling a run cancels its dispatched workflow run, once', async () => {
    w = await agentWorld();
    const run = await w.start([{ agent: 'coder' }]);
    const wr = w.fake.dispatches[0]!;
    // GitHub reports the run in progress: the hub links its id.
    expect(await resumeFromWorkflowRun(w.h.engine, w.fake.payload(wr, 'in_progress'))).toMatchObject({
      outcome: 'linked',
    });

    await w.h.engine.signal(run.id, { type: 'cancel', by: 'alice' });
    await w.h.settle();
    await w.h.engine.sweep();
    await w.h.settle();

    expect(w.fake.cancelled).toEqual([wr.id]);
    expect(w.fake.requests.filter((r) => r.path.endsWith('/cancel'))).toHaveLength(1);
    const cancelled = (await w.events(run.id)).find((e) => e.type === 'agent.workflow-run.cancelled');
    expect(cancelled?.detail).toMatchObject({ workflowRunId: wr.id, repo: 'acme/app' });
    // Its late completion is ignored.
    w.fake.finish(wr, 'cancelled');
    expect(['duplicate', 'stale']).toContain(
      (await resumeFromWorkflowRun(w.h.engine, w.fake.payload(wr))).outcome,
    );
  });

  it('keeps a result that arrives before the dispatching step committed, and uses it', async () => {
    w = await agentWorld();
    let early: unknown;
    w.fake.onDispatch = async (wr) => {
      w.fake.finish(wr, 'success');
      early = await resumeFromWorkflowRun(w.h.engine, w.fake.payload(wr));
    };
    const run = await w.start([{ agent: 'coder' }]);
    expect(early).toMatchObject({ outcome: 'parked' });
    expect((await w.run(run.id)).status).toBe('succeeded');
  });

  it("finds an earlier item's workflow run stale with no binding record, even while the next is being dispatched", async () => {
    w = await agentWorld();
    const writes = vi.spyOn(w.h.store, 'kvPut');
    const run = await w.start([{ agent: 'coder' }, { agent: 'coder' }]);
    const first = w.fake.dispatches[0]!;
    await w.complete(run.id);
    // GitHub returned each run's id at dispatch: the dispatch record names it, nothing binds it.
    const bindings = writes.mock.calls.filter(([, key]) => String(key).startsWith('w#'));
    expect(bindings).toEqual([]);
    const second = w.fake.dispatches[1]!;
    // As the record is while a step dispatches the second item (its id not recorded yet), with the
    // first run's redelivered completion dated like the second dispatch and titled without an item
    // (the default run-name): only the record's `earlier` list tells them apart.
    const rec = await w.hub.queue.updateDispatch(
      run.id,
      ({ workflowRunId: _id, workflowRunUrl: _url, ...d }) => ({
        ...d,
        state: 'dispatching',
      }),
    );
    expect(rec?.earlier).toEqual([first.id]);
    const late = w.fake.payload(first);
    late.workflow_run.created_at = rec!.startedAt;
    expect(await resumeFromWorkflowRun(w.h.engine, late)).toMatchObject({
      outcome: 'stale',
      reason: 'the workflow run belongs to an earlier work item',
    });
    expect((await w.run(run.id)).gate?.correlation).toBe(`${run.id}.t2.1`);
    // The second run's own completion still resumes the run.
    w.fake.finish(second, 'success');
    expect((await resumeFromWorkflowRun(w.h.engine, w.fake.payload(second))).outcome).toBe('resumed');
  });

  it('ignores a redelivered completion', async () => {
    w = await agentWorld();
    const run = await w.start([{ agent: 'coder' }, { agent: 'coder' }]);
    const first = w.fake.dispatches[0]!;
    await w.complete(run.id);
    const again = await resumeFromWorkflowRun(w.h.engine, w.fake.payload(first));
    expect(['duplicate', 'stale']).toContain(again.outcome);
    expect((await w.run(run.id)).gate?.correlation).toBe(`${run.id}.t2.1`);
  });
});
