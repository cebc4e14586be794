import { afterEach, describe, expect, it } from 'vitest';
import { DirectAddressError } from '../../lib/agents/errors.ts';
import { createExecuteNode } from '../../lib/agents/execute.ts';
import { AgentHub } from '../../lib/agents/hub.ts';
import { createWorkReporter } from '../../lib/agents/work-reporter.ts';
import { resumeFromWorkflowRun } from '../../lib/agents/workflow-run.ts';
import { DiscordRest } from '../../lib/discord/rest.ts';
import type { NewEvent, Run } from '../../lib/engine/types.ts';
import { FakeDiscord } from '../support/fake-discord.ts';
import { harness } from '../support/harness.ts';
import { AGENT_WORKFLOW, AGENTS_YAML, type AgentWorld, agentsYaml, agentWorld, answer } from './support.ts';

const dispatchedRuns = (w: AgentWorld) => w.fake.dispatches.map((d) => d.inputs.switchyard_run);

describe('the hub: queue promotion, consultation, escalation', () => {
  let w: AgentWorld;
  afterEach(async () => {
    await w?.stop();
  });

  it('promotes queued work by priority when a slot frees up, FIFO within a priority', async () => {
    w = await agentWorld();
    const a = await w.start([{ agent: 'coder' }], { issue: 1 });
    const b = await w.start([{ agent: 'coder' }], { issue: 2, priority: 0 });
    const c = await w.start([{ agent: 'coder' }], { issue: 3, priority: 5 });
    const d = await w.start([{ agent: 'coder' }], { issue: 4, priority: 0 });
    expect(dispatchedRuns(w)).toEqual([a.id]);
    for (const queued of [b, c, d]) {
      expect(queued.status).toBe('waiting');
      expect(queued.gate?.correlation).toBe(`queue:${queued.id}.t1.1`);
    }
    const depth = await w.hub.queue.snapshot();
    expect(depth.waiting.map((i) => i.runId)).toEqual([c.id, b.id, d.id]);

    await w.complete(a.id);
    expect(dispatchedRuns(w)).toEqual([a.id, c.id]);
    await w.complete(c.id);
    await w.complete(b.id);
    await w.complete(d.id);

    expect(dispatchedRuns(w)).toEqual([a.id, c.id, b.id, d.id]);
    for (const r of [a, b, c, d]) expect((await w.run(r.id)).status).toBe('succeeded');
  });

  it('gives a cancelled run’s queue place to the next run', async () => {
    w = await agentWorld();
    const a = await w.start([{ agent: 'coder' }], { issue: 1 });
    const b = await w.start([{ agent: 'coder' }], { issue: 2 });
    const c = await w.start([{ agent: 'coder' }], { issue: 3 });
    await w.h.engine.signal(b.id, { type: 'cancel', by: 'alice' });
    await w.h.settle();
    await w.complete(a.id);
    expect(dispatchedRuns(w)).toEqual([a.id, c.id]);
    expect((await w.hub.queue.snapshot()).waiting).toEqual([]);
  });

  it('frees the slot of a cancelled running task and promotes the next', async () => {
    w = await agentWorld();
    const a = await w.start([{ agent: 'coder' }], { issue: 1 });
    const b = await w.start([{ agent: 'coder' }], { issue: 2 });
    await w.h.engine.signal(a.id, { type: 'cancel', by: 'alice' });
    await w.h.settle();
    expect(dispatchedRuns(w)).toEqual([a.id, b.id]);
    expect((await w.run(b.id)).gate?.correlation).toBe(`${b.id}.t1.1`);
  });

  it('routes a consultation to an available agent of the type and hands the answer back', async () => {
    w = await agentWorld();
    const run = await w.start([{ agent: 'coder', title: 'Refactor auth' }]);
    await answer(w, run.id, {
      ok: true,
      payload: { consult: { type: 'reviewer', question: 'Is the token refresh safe?' } },
    });
    const consult = w.fake.dispatches[1]!;
    const question = JSON.parse(consult.inputs.task!);
    expect(question).toMatchObject({
      purpose: 'consult',
      agent: { name: 'reviewer', type: 'reviewer' },
      question: { from: 'coder', asks: 'reviewer', text: 'Is the token refresh safe?' },
    });
    await answer(w, run.id, { ok: true, payload: { summary: 'Yes, with a lock around refresh.' } });

    const back = JSON.parse(w.fake.dispatches[2]!.inputs.task!);
    expect(back).toMatchObject({
      purpose: 'task',
      agent: { name: 'coder' },
      consultations: [
        { type: 'reviewer', agent: 'reviewer', answer: 'Yes, with a lock around refresh.', ok: true },
      ],
    });
    const exchange = (await w.events(run.id)).filter((e) => e.type.startsWith('hub.consult'));
    expect(exchange.map((e) => [e.type, e.detail.from ?? e.detail.for, e.detail.to ?? e.detail.by])).toEqual([
      ['hub.consult.requested', 'coder', undefined],
      ['hub.consult.routed', 'coder', 'reviewer'],
      ['hub.consult.answered', 'coder', 'reviewer'],
    ]);
    await answer(w, run.id, { ok: true });
    expect((await w.run(run.id)).status).toBe('succeeded');
  });

  it('a consultation that would pass the run dispatch cap waits at the budget gate before it is dispatched', async () => {
    w = await agentWorld({ yaml: `${AGENTS_YAML}\nbudgets: { perRun: { dispatches: 1 } }\n` });
    const run = await w.start([{ agent: 'coder', title: 'Refactor auth' }]);
    await answer(w, run.id, {
      ok: true,
      payload: { consult: { type: 'reviewer', question: 'Is the token refresh safe?' } },
    });
    // The consultation is routed, then held: nothing goes to the reviewer past the cap.
    const gated = await w.run(run.id);
    expect(gated).toMatchObject({ status: 'waiting', gate: { kind: 'budget' } });
    expect(gated.gate?.prompt).toContain('budget reached: 1 of 1 dispatches');
    expect(w.fake.dispatches).toHaveLength(1);
    expect(await w.types(run.id)).toEqual(expect.arrayContaining(['hub.consult.routed', 'budget.reached']));

    // Raised by a person, the consultation goes out, and its answer goes back to the coder.
    await w.h.engine.signal(run.id, { type: 'approve', by: 'ops', binding: gated.gate!.binding! });
    await w.h.settle();
    expect(JSON.parse(w.fake.dispatches[1]!.inputs.task!)).toMatchObject({
      purpose: 'consult',
      agent: { name: 'reviewer' },
    });
  });

  it('refuses an agent addressing another agent directly, and records it', async () => {
    w = await agentWorld();
    const run = await w.start([{ agent: 'coder' }]);
    await answer(w, run.id, { ok: true, payload: { consult: { to: 'reviewer', question: 'psst' } } });
    const refusal = (await w.events(run.id)).find((e) => e.type === 'hub.refused');
    expect(refusal?.detail).toMatchObject({ from: 'coder', to: 'reviewer' });
    // Nothing went to the reviewer; the attempt counts as a failure and the task is retried.
    expect(w.fake.dispatches.map((d) => JSON.parse(d.inputs.task!).agent.name)).toEqual(['coder', 'coder']);
    const failed = (await w.events(run.id)).find((e) => e.type === 'work.task.failed');
    expect(failed?.detail.summary).toContain('refused');
  });

  it('escalates a consultation when no agent of the type is available', async () => {
    w = await agentWorld();
    const run = await w.start([{ agent: 'coder' }]);
    await answer(w, run.id, { ok: true, payload: { consult: { type: 'coverage', question: 'tests?' } } });
    const r = await w.run(run.id);
    expect(r.gate).toMatchObject({ kind: 'escalation' });
    expect(r.gate?.prompt).toContain('no coverage agent is configured');
  });

  it('refuses a consultation by agent name at the API', async () => {
    w = await agentWorld();
    const events: NewEvent[] = [];
    const scope = { run: { id: 'r1' } as Run, node: 'execute', emit: (e: NewEvent) => events.push(e) };
    await expect(
      w.hub.consult(scope, { from: 'coder', type: 'reviewer-bob', question: 'hi' }),
    ).rejects.toBeInstanceOf(DirectAddressError);
    await expect(
      w.hub.consult(scope, { from: 'coder', to: 'reviewer', question: 'hi' }),
    ).rejects.toBeInstanceOf(DirectAddressError);
    expect(events.map((e) => e.type)).toEqual(['hub.refused', 'hub.refused']);
    const ok = await w.hub.consult(scope, { from: 'coder', type: 'coder', question: 'pair?' });
    expect(ok).toMatchObject({ outcome: 'routed', agent: { name: 'coder2' } });
  });

  it('notifies the configured Discord role of an escalation', async () => {
    const discord = await new FakeDiscord().start();
    try {
      w = await agentWorld({
        yaml: agentsYaml('', 'maxFailures: 1\n  discordRole: "123456789012345678"'),
        env: { DISCORD_ESCALATION_CHANNEL_ID: '223456789012345678' },
        discord: new DiscordRest({ baseUrl: discord.url, botToken: discord.botToken }),
      });
      const run = await w.start([{ agent: 'coder' }]);
      await w.complete(run.id, 'failure');
      const posts = discord.requests.filter(
        (r) => r.method === 'POST' && r.path === '/channels/223456789012345678/messages',
      );
      expect(posts).toHaveLength(1);
      expect(posts[0]!.body).toMatchObject({
        content: expect.stringContaining('<@&123456789012345678>'),
        allowed_mentions: { parse: [], roles: ['123456789012345678'] },
      });
      expect(await w.types(run.id)).toContain('escalation.notified');
    } finally {
      await discord.stop();
    }
  });

  it('loses nothing across a restart: a new engine and hub on the same table finish the task', async () => {
    w = await agentWorld();
    const run = await w.start([{ agent: 'coder' }]);
    const queued = await w.start([{ agent: 'coder' }], { issue: 9 });
    w.h.queue.stop();

    // "Restart": new queue, engine, hub and reporter over the same store.
    const services: Record<string, unknown> = {};
    const h2 = await harness<unknown>([AGENT_WORKFLOW], { store: w.h.store, services, now: w.clock.now });
    const hub2 = new AgentHub({ ...w.hub.deps, engine: () => h2.engine });
    services.execute = createExecuteNode(hub2);
    h2.engine.addReporter(createWorkReporter(hub2));
    const wr = w.fake.dispatches[0]!;
    w.fake.finish(wr, 'success');
    expect((await resumeFromWorkflowRun(h2.engine, w.fake.payload(wr))).outcome).toBe('resumed');
    await h2.settle();

    expect((await h2.engine.getRun(run.id))?.status).toBe('succeeded');
    expect(dispatchedRuns(w)).toEqual([run.id, queued.id]);
    h2.queue.stop();
  });
});
