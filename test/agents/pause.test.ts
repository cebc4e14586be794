import { afterEach, describe, expect, it, vi } from 'vitest';
import { RunPausedError } from '../../lib/engine/errors.ts';
import { pausedFor, setPaused } from '../../lib/engine/pause.ts';
import { createTestStore } from '../support/dynamo.ts';
import { type AgentWorld, agentWorld } from './support.ts';

/** The kill switch against the real engine, hub and work queue on DynamoDB Local. */
describe('the kill switch', () => {
  let w: AgentWorld;
  afterEach(async () => {
    await w?.stop();
  });

  it('holds the next dispatch while the repository is paused (the run keeps waiting), and the sweep dispatches it after resume', async () => {
    w = await agentWorld();
    const run = await w.start([{ agent: 'coder' }, { agent: 'reviewer' }]);
    expect(w.fake.dispatches).toHaveLength(1);

    await setPaused(w.h.store, { paused: true, repo: 'acme/app', by: 'test' });
    await w.complete(run.id);
    expect(w.fake.dispatches).toHaveLength(1);
    const held = await w.run(run.id);
    expect(held.status).toBe('waiting');
    expect(held.gate?.prompt).toContain('acme/app is paused');

    // A sweep while still paused changes nothing.
    await w.hub.reconcile();
    await w.h.settle();
    expect(w.fake.dispatches).toHaveLength(1);

    await setPaused(w.h.store, { paused: false, repo: 'acme/app', by: 'test' });
    await w.hub.reconcile();
    await w.h.settle();
    expect(w.fake.dispatches).toHaveLength(2);
    expect(JSON.parse(w.fake.dispatches[1]!.inputs.task!)).toMatchObject({ task: { id: 't2' } });
  });

  it('refuses new runs while paused globally, records why, and starts them after resume', async () => {
    w = await agentWorld();
    await setPaused(w.h.store, { paused: true, by: 'cli:ops' });
    await expect(w.start([{ agent: 'coder' }])).rejects.toBeInstanceOf(RunPausedError);
    expect(await w.h.engine.listRuns({ limit: 10 })).toHaveLength(0);
    const audit = (await w.h.store.kvList<{ type: string; reason?: string }>('audit')).map((a) => a.value);
    expect(audit).toContainEqual(expect.objectContaining({ type: 'pause', scope: 'global', by: 'cli:ops' }));
    expect(audit).toContainEqual(
      expect.objectContaining({
        type: 'run.refused',
        reason: expect.stringContaining('everything is paused'),
      }),
    );

    expect(await setPaused(w.h.store, { paused: false, by: 'cli:ops' })).toEqual({
      changed: true,
      scope: 'global',
    });
    const run = await w.start([{ agent: 'coder' }]);
    expect(run.status).toBe('waiting');
    expect(w.fake.dispatches).toHaveLength(1);
  });
});

describe('pausedFor', () => {
  it('finds the pause that applies in one read while there are few, and reads each that may apply when there are many', async () => {
    const store = await createTestStore();
    const reads = { list: vi.spyOn(store, 'kvList'), get: vi.spyOn(store, 'kvGet') };
    expect(await pausedFor(store, 'acme/app')).toBeUndefined();
    await setPaused(store, { paused: true, repo: 'Acme/App', by: 'alice' });
    expect(await pausedFor(store, 'acme/APP')).toMatchObject({ scope: 'Acme/App', by: 'alice' });
    expect(await pausedFor(store, 'acme/other')).toBeUndefined();
    await setPaused(store, { paused: true, by: 'ops' });
    expect(await pausedFor(store, 'acme/app')).toMatchObject({ scope: 'global', by: 'ops' });
    expect(await pausedFor(store, undefined)).toMatchObject({ scope: 'global' });
    expect([reads.list.mock.calls.length, reads.get.mock.calls.length]).toEqual([5, 0]);

    // Many repositories paused one by one: the Query stops early, and the two are read by key.
    await setPaused(store, { paused: false, by: 'ops' });
    for (let i = 0; i < 10; i++) await setPaused(store, { paused: true, repo: `acme/r${i}`, by: 'bob' });
    reads.get.mockClear();
    expect(await pausedFor(store, 'acme/app')).toMatchObject({ scope: 'Acme/App', by: 'alice' });
    expect(await pausedFor(store, 'acme/r7')).toMatchObject({ scope: 'acme/r7' });
    expect(await pausedFor(store, 'acme/none')).toBeUndefined();
    expect(reads.get).toHaveBeenCalledTimes(6);
  });
});
