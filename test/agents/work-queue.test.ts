import { beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AgentWorkQueue,
  type DispatchRecord,
  EARLIER_RUNS,
  formatWorkloads,
  queueKey,
  RUNNING_KEY,
  type WorkItem,
  workloads,
} from '../../lib/agents/work-queue.ts';
import { ConcurrencyError } from '../../lib/engine/store-errors.ts';
import { parseConfig } from '../../lib/routing/config.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { createTestStore } from '../support/dynamo.ts';
import { firstDispatch } from './support.ts';

let seq = 0;
function item(over: Partial<WorkItem> = {}): WorkItem {
  seq++;
  return {
    id: `r${String(seq).padStart(9, '0')}.t1.1`,
    runId: `r${String(seq).padStart(9, '0')}`,
    agent: 'coder',
    agentType: 'coder',
    repo: 'acme/app',
    priority: 0,
    createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
    limit: 1,
    task: 't1',
    ...over,
  };
}

describe('the agent work queue', () => {
  let store: DynamoRunStore;
  beforeEach(async () => {
    store = await createTestStore();
  });

  it('orders keys by priority, highest first, then by time', () => {
    const keys = [
      queueKey({ priority: 0, createdAt: '2026-01-01T00:00:02.000Z', id: 'b' }),
      queueKey({ priority: 10, createdAt: '2026-01-01T00:00:03.000Z', id: 'c' }),
      queueKey({ priority: -5, createdAt: '2026-01-01T00:00:00.000Z', id: 'd' }),
      queueKey({ priority: 0, createdAt: '2026-01-01T00:00:01.000Z', id: 'a' }),
    ];
    expect([...keys].sort().map((k) => k.split('#').pop())).toEqual(['c', 'a', 'b', 'd']);
  });

  it('admits the highest priority first and keeps FIFO order within a priority', async () => {
    const q = new AgentWorkQueue(store, { repoLimit: 10 });
    const low = item({ priority: 1 });
    const firstHigh = item({ priority: 5 });
    const secondHigh = item({ priority: 5 });
    for (const i of [low, secondHigh, firstHigh].reverse()) await q.enqueue(i);
    const order: string[] = [];
    for (let n = 0; n < 3; n++) {
      const [admitted] = await q.admit();
      order.push(admitted!.id);
      await q.release(admitted!.id);
    }
    expect(order).toEqual([firstHigh.id, secondHigh.id, low.id]);
  });

  it('never runs more of one agent than its limit', async () => {
    const q = new AgentWorkQueue(store, { repoLimit: 10 });
    for (let n = 0; n < 5; n++) await q.enqueue(item({ limit: 2 }));
    expect(await q.admit()).toHaveLength(2);
    expect(await q.admit()).toHaveLength(0);
    const snap = await q.snapshot();
    expect(snap.running).toHaveLength(2);
    expect(snap.waiting).toHaveLength(3);
  });

  it('never runs more on one repository than the repository limit, across agents', async () => {
    const q = new AgentWorkQueue(store, { repoLimit: 2 });
    await q.enqueue(item({ agent: 'coder', limit: 5 }));
    await q.enqueue(item({ agent: 'coverage', agentType: 'coverage', limit: 5 }));
    await q.enqueue(item({ agent: 'reviewer', agentType: 'reviewer', limit: 5 }));
    await q.enqueue(item({ agent: 'coder', limit: 5, repo: 'acme/other' }));
    const admitted = await q.admit();
    expect(admitted.map((a) => a.repo).sort()).toEqual(['acme/app', 'acme/app', 'acme/other']);
  });

  it('lets other agents pass an agent that is full (no head-of-line blocking)', async () => {
    const q = new AgentWorkQueue(store, { repoLimit: 10 });
    const busy = item({ agent: 'coder', priority: 9 });
    await q.enqueue(busy);
    await q.admit();
    const blocked = item({ agent: 'coder', priority: 9 });
    const other = item({ agent: 'coverage', agentType: 'coverage', priority: 1 });
    await q.enqueue(blocked);
    await q.enqueue(other);
    expect((await q.admit()).map((a) => a.id)).toEqual([other.id]);
  });

  it('uses the registry limit over the limit the item was queued with', async () => {
    const q = new AgentWorkQueue(store, { repoLimit: 10, limitOf: () => 3 });
    for (let n = 0; n < 4; n++) await q.enqueue(item({ limit: 1 }));
    expect(await q.admit()).toHaveLength(3);
  });

  it('frees a slot on release and lets the next item in', async () => {
    const q = new AgentWorkQueue(store, { repoLimit: 10 });
    const a = item();
    const b = item();
    await q.enqueue(a);
    await q.enqueue(b);
    expect((await q.admit()).map((x) => x.id)).toEqual([a.id]);
    expect(await q.release(a.id)).toMatchObject({ id: a.id });
    expect(await q.release(a.id)).toBeUndefined();
    expect((await q.admit()).map((x) => x.id)).toEqual([b.id]);
  });

  it('withdraws a waiting item on release', async () => {
    const q = new AgentWorkQueue(store, { repoLimit: 10 });
    const a = item();
    await q.enqueue(a);
    await q.release(a.id);
    expect((await q.snapshot()).waiting).toHaveLength(0);
  });

  it('is idempotent on enqueue: a running item is not queued again', async () => {
    const q = new AgentWorkQueue(store, { repoLimit: 10 });
    const a = item({ limit: 5 });
    await q.enqueue(a);
    await q.admit();
    expect(await q.enqueue(a)).toBe('running');
    expect(await q.admit()).toHaveLength(0);
  });

  it('does not admit a running item again when its queue record is written again', async () => {
    const q = new AgentWorkQueue(store, { repoLimit: 10 });
    const a = item({ limit: 5 });
    await q.enqueue(a);
    await q.admit();
    // A crash between an enqueue's "is it running?" check and its write: the record is written
    // again (and again at another priority, as after a config change) while the item runs.
    await store.kvPut('work', queueKey(a), a);
    await store.kvPut('work', queueKey({ ...a, priority: 7 }), { ...a, priority: 7 });
    expect(await q.admit()).toHaveLength(0);
    expect((await q.snapshot()).waiting).toHaveLength(0);
    expect((await q.snapshot()).running.map((r) => r.id)).toEqual([a.id]);
    // Its release takes every record of it out of the queue.
    await q.release(a.id);
    expect(await store.kvList('work', { prefix: 'q#' })).toHaveLength(0);
  });

  it('survives a restart: a new queue object over the same table sees the same state', async () => {
    const a = item({ limit: 1 });
    const b = item({ limit: 1 });
    await new AgentWorkQueue(store).enqueue(a);
    await new AgentWorkQueue(store).enqueue(b);
    await new AgentWorkQueue(store).admit();
    const later = new AgentWorkQueue(store);
    expect((await later.snapshot()).running.map((r) => r.id)).toEqual([a.id]);
    expect((await later.snapshot()).waiting.map((r) => r.id)).toEqual([b.id]);
  });

  it('admits each item once and respects every limit when many workers claim in parallel', async () => {
    const workers = Array.from({ length: 8 }, () => new AgentWorkQueue(store, { repoLimit: 3 }));
    const items = [
      ...Array.from({ length: 6 }, () => item({ agent: 'coder', limit: 2 })),
      ...Array.from({ length: 6 }, () => item({ agent: 'coverage', agentType: 'coverage', limit: 2 })),
      ...Array.from({ length: 4 }, () => item({ agent: 'coder', limit: 2, repo: 'acme/other' })),
    ];
    await Promise.all(items.map((i, n) => workers[n % workers.length]!.enqueue(i)));

    const admitted = (await Promise.all(workers.map((w) => w.admit()))).flat();

    const ids = admitted.map((a) => a.id);
    expect(new Set(ids).size).toBe(ids.length);
    const running = (await workers[0]!.snapshot()).running;
    expect(running.map((r) => r.id).sort()).toEqual([...ids].sort());
    const count = (f: (r: WorkItem) => boolean) => running.filter(f).length;
    expect(count((r) => r.agent === 'coder')).toBeLessThanOrEqual(2);
    expect(count((r) => r.agent === 'coverage')).toBeLessThanOrEqual(2);
    expect(count((r) => r.repo === 'acme/app')).toBeLessThanOrEqual(3);
    // In queue order: two coders fill the coder limit, one coverage item fills the app's third
    // slot; the other repository's items are all coder's, which is full.
    expect(count((r) => r.agent === 'coder' && r.repo === 'acme/app')).toBe(2);
    expect(count((r) => r.agent === 'coverage')).toBe(1);
    expect(running).toHaveLength(3);
  });

  it('keeps the limits while workers release and claim in parallel, until everything ran once', async () => {
    const workers = Array.from({ length: 6 }, () => new AgentWorkQueue(store, { repoLimit: 10 }));
    const items = Array.from({ length: 12 }, () => item({ agent: 'coder', limit: 3 }));
    for (const i of items) await workers[0]!.enqueue(i);
    const ran: string[] = [];
    let maxRunning = 0;
    await Promise.all(
      workers.map(async (w) => {
        for (let round = 0; round < 40 && ran.length < items.length; round++) {
          const got = await w.admit();
          const now = (await w.snapshot()).running.length;
          maxRunning = Math.max(maxRunning, now);
          for (const g of got) {
            ran.push(g.id);
            await w.release(g.id);
          }
        }
      }),
    );
    expect(maxRunning).toBeLessThanOrEqual(3);
    expect([...ran].sort()).toEqual(items.map((i) => i.id).sort());
  });

  it('admits at scale: 100 runs enqueue and admit at once, each item once, the first 64 in queue order', async () => {
    const workers = Array.from({ length: 100 }, () => new AgentWorkQueue(store, { repoLimit: 64 }));
    const items = Array.from({ length: 100 }, (_, n) => item({ limit: 64, priority: n % 3 }));
    await Promise.all(items.map((i, n) => workers[n]!.enqueue(i)));

    // Every run pumps at once, as ~100 execute steps do after a burst of webhooks.
    const admitted = (await Promise.all(workers.map((w) => w.admit()))).flat();
    expect(admitted.length).toBeLessThanOrEqual(64);
    // A worker whose transactions kept conflicting left the rest to the others and to the next
    // pump (every release and every sweep pumps): one more pass admits whatever is left.
    admitted.push(...(await workers[0]!.admit()));

    const ids = admitted.map((a) => a.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toHaveLength(64);
    const snap = await workers[0]!.snapshot();
    expect(snap.running.map((r) => r.id).sort()).toEqual([...ids].sort());
    expect(snap.waiting).toHaveLength(36);
    // All were queued before anyone admitted: the running ones are exactly the queue's head.
    const inOrder = [...items].sort((a, b) => queueKey(a).localeCompare(queueKey(b)));
    expect([...ids].sort()).toEqual(
      inOrder
        .slice(0, 64)
        .map((i) => i.id)
        .sort(),
    );
    expect((await workers[0]!.runningByAgent()).get('coder')).toBe(64);
  });

  it('keeps every limit at scale while 40 workers release and admit in parallel, until all ran once', async () => {
    const workers = Array.from({ length: 40 }, () => new AgentWorkQueue(store, { repoLimit: 5 }));
    const repos = ['acme/app', 'acme/api', 'Acme/App'];
    const agents = [
      { agent: 'coder', agentType: 'coder', limit: 6 },
      { agent: 'reviewer', agentType: 'reviewer', limit: 3 },
    ];
    const items = Array.from({ length: 90 }, (_, n) => item({ ...agents[n % 2]!, repo: repos[n % 3]! }));
    await Promise.all(items.map((i, n) => workers[n % workers.length]!.enqueue(i)));
    const ran = new Map<string, number>();
    const violations: string[] = [];
    const check = async (w: AgentWorkQueue) => {
      const { running } = await w.snapshot();
      const by = (f: (r: WorkItem) => string) => {
        const m = new Map<string, number>();
        for (const r of running) m.set(f(r), (m.get(f(r)) ?? 0) + 1);
        return m;
      };
      if ((by((r) => r.agent).get('coder') ?? 0) > 6) violations.push('coder over its limit');
      if ((by((r) => r.agent).get('reviewer') ?? 0) > 3) violations.push('reviewer over its limit');
      // Repository names are case-insensitive: acme/app and Acme/App share one limit.
      for (const [repo, n] of by((r) => r.repo.toLowerCase())) if (n > 5) violations.push(`${repo}: ${n}`);
    };
    await Promise.all(
      workers.map(async (w) => {
        for (let round = 0; round < 200 && ran.size < items.length; round++) {
          const got = await w.admit();
          await check(w);
          for (const g of got) ran.set(g.id, (ran.get(g.id) ?? 0) + 1);
          await Promise.all(got.map((g) => w.release(g.id)));
          if (got.length === 0) await w.snapshot(); // someone else holds the slots: look again
        }
      }),
    );
    expect(violations).toEqual([]);
    expect([...ran.keys()].sort()).toEqual(items.map((i) => i.id).sort());
    expect([...ran.values()].every((n) => n === 1)).toBe(true);
    // Nothing runs, nothing waits, and no set holds a slot.
    expect(await workers[0]!.snapshot()).toEqual({ running: [], waiting: [] });
    expect(await store.kvMembers('work', RUNNING_KEY)).toEqual({ members: {}, sets: {} });
  });

  it('never leaves a slot to a withdrawn item while workers admit it and its run releases it at once', async () => {
    const workers = Array.from({ length: 10 }, () => new AgentWorkQueue(store, { repoLimit: 30 }));
    const items = Array.from({ length: 30 }, () => item({ limit: 30 }));
    await Promise.all(items.map((i, n) => workers[n % workers.length]!.enqueue(i)));

    // Every item is withdrawn (its run moved on) while the workers admit: an admission that lands
    // after its item's release must give its slot back, whatever the interleaving.
    const [admitted] = await Promise.all([
      Promise.all(workers.map((w) => w.admit())),
      Promise.all(items.map((i, n) => workers[(n + 3) % workers.length]!.release(i.id))),
    ]);

    const ids = admitted.flat().map((a) => a.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(await workers[0]!.snapshot()).toEqual({ running: [], waiting: [] });
    expect(await store.kvMembers('work', RUNNING_KEY)).toEqual({ members: {}, sets: {} });
  });

  it('admits exactly up to the limits when many workers admit from a long queue at once', async () => {
    const workers = Array.from({ length: 20 }, () => new AgentWorkQueue(store, { repoLimit: 4 }));
    const items = Array.from({ length: 40 }, (_, n) =>
      item({
        agent: n % 2 ? 'coder' : 'reviewer',
        agentType: n % 2 ? 'coder' : 'reviewer',
        limit: 3,
        repo: n % 4 < 2 ? 'acme/app' : 'Acme/API',
      }),
    );
    await Promise.all(items.map((i, n) => workers[n % workers.length]!.enqueue(i)));

    const admitted = (await Promise.all(workers.map((w) => w.admit()))).flat();

    const ids = admitted.map((a) => a.id);
    expect(new Set(ids).size).toBe(ids.length);
    const { running } = await workers[0]!.snapshot();
    expect(running.map((r) => r.id).sort()).toEqual([...ids].sort());
    const count = (f: (r: WorkItem) => boolean) => running.filter(f).length;
    expect(count((r) => r.agent === 'coder')).toBe(3);
    expect(count((r) => r.agent === 'reviewer')).toBe(3);
    expect(count((r) => r.repo.toLowerCase() === 'acme/app')).toBeLessThanOrEqual(4);
    expect(count((r) => r.repo.toLowerCase() === 'acme/api')).toBeLessThanOrEqual(4);
    // The sets agree with the running items, per agent.
    expect(await workers[0]!.runningByAgent()).toEqual(
      new Map([
        ['coder', 3],
        ['reviewer', 3],
      ]),
    );
  });

  describe('offer (enqueue, and admit at once when nothing else may run first)', () => {
    it('admits an item at once without a queue record, and shows it running with its details', async () => {
      const q = new AgentWorkQueue(store, { repoLimit: 10 });
      const a = item({ title: 'Fix the parser', purpose: 'task' });

      expect(await q.offer(a)).toBe('running');

      expect(await store.kvList('work', { prefix: 'q#' })).toHaveLength(0);
      const { running, waiting } = await q.snapshot();
      expect(waiting).toEqual([]);
      expect(running).toEqual([{ ...a, admittedAt: expect.any(String) }]);
      expect(await q.offer(a)).toBe('running'); // idempotent: no second slot
      expect(await q.enqueue(a)).toBe('running');
      expect(await q.admit()).toEqual([]);
      expect(await q.release(a.id)).toMatchObject({ id: a.id, title: 'Fix the parser' });
      expect(await q.release(a.id)).toBeUndefined();
      expect(await store.kvMembers('work', RUNNING_KEY)).toEqual({ members: {}, sets: {} });
    });

    it('queues an item whose agent or repository is full, and admission takes it in order', async () => {
      const q = new AgentWorkQueue(store, { repoLimit: 10 });
      const a = item();
      const b = item();
      expect(await q.offer(a)).toBe('running');
      expect(await q.offer(b)).toBe('queued');
      expect((await q.snapshot()).waiting.map((w) => w.id)).toEqual([b.id]);
      await q.release(a.id);
      expect((await q.admit()).map((x) => x.id)).toEqual([b.id]);
    });

    it('leaves the admission to the queue when another waiting item may run too (its turn comes first)', async () => {
      const q = new AgentWorkQueue(store, { repoLimit: 10 });
      const busy = item({ agent: 'coverage', agentType: 'coverage' });
      await q.enqueue(busy);
      // `busy` waits but fits: an admission pass would admit it with ours, in queue order.
      const mine = item({ priority: 5 });
      expect(await q.offer(mine)).toBe('queued');
      expect((await q.admit()).map((x) => x.id)).toEqual([mine.id, busy.id]);
    });

    it('goes through the queue once the running record would pass 1 KB', async () => {
      const q = new AgentWorkQueue(store, { repoLimit: 50 });
      const many = Array.from({ length: 12 }, () => item({ limit: 50, title: 'x'.repeat(100) }));
      // Later ones are queued, for the caller's pump to admit by the queue's way (their record
      // stays while they run).
      for (const i of many)
        if ((await q.offer(i)) === 'queued') expect((await q.admit()).map((x) => x.id)).toEqual([i.id]);
      const records = await store.kvList<WorkItem>('work', { prefix: 'q#' });
      expect(records.length).toBeGreaterThan(0);
      expect(records.length).toBeLessThan(many.length);
      expect((await q.snapshot()).running.map((r) => r.title)).toEqual(many.map(() => 'x'.repeat(100)));
      for (const i of many) await q.release(i.id);
      expect(await q.snapshot()).toEqual({ running: [], waiting: [] });
    });

    it('never exceeds a limit when many workers offer at once, and every item runs once', async () => {
      const workers = Array.from({ length: 12 }, () => new AgentWorkQueue(store, { repoLimit: 3 }));
      const items = Array.from({ length: 24 }, (_, n) =>
        item({ agent: n % 2 ? 'coder' : 'reviewer', agentType: 'coder', limit: 2 }),
      );
      const ran = new Map<string, number>();
      const violations: string[] = [];
      const check = async (w: AgentWorkQueue) => {
        const { running } = await w.snapshot();
        if (running.length > 3) violations.push(`repository: ${running.length}`);
        for (const agent of ['coder', 'reviewer'])
          if (running.filter((r) => r.agent === agent).length > 2) violations.push(agent);
      };
      const run = async (w: AgentWorkQueue, id: string) => {
        ran.set(id, (ran.get(id) ?? 0) + 1);
        await check(w);
        await w.release(id);
      };
      await Promise.all(
        items.map(async (i, n) => {
          const w = workers[n % workers.length]!;
          if ((await w.offer(i)) === 'running') await run(w, i.id);
        }),
      );
      // What was queued is admitted by the pumps after each release (here: until nothing waits).
      for (let round = 0; round < 50 && ran.size < items.length; round++) {
        const got = (await Promise.all(workers.slice(0, 4).map((w) => w.admit()))).flat();
        await Promise.all(got.map((g) => run(workers[0]!, g.id)));
      }
      expect(violations).toEqual([]);
      expect([...ran.keys()].sort()).toEqual(items.map((i) => i.id).sort());
      expect([...ran.values()].every((n) => n === 1)).toBe(true);
      expect(await workers[0]!.snapshot()).toEqual({ running: [], waiting: [] });
    });
  });

  describe('handOver (the next item of a run takes the slot of the one that ended)', () => {
    /** The queue over a store that counts the running record's writes. */
    function counted(): { q: AgentWorkQueue; writes: string[] } {
      const writes: string[] = [];
      const counting: DynamoRunStore = Object.create(store);
      for (const op of ['kvJoin', 'kvLeave', 'kvSwap', 'kvPut', 'kvDelete'] as const) {
        const real = store[op].bind(store) as (...args: unknown[]) => Promise<unknown>;
        (counting as unknown as Record<string, unknown>)[op] = (...args: unknown[]) => {
          writes.push(op);
          return real(...args);
        };
      }
      return { q: new AgentWorkQueue(counting, { repoLimit: 10 }), writes };
    }

    it('passes the slot in one write when nothing else would take it, with the next item shown running', async () => {
      const { q, writes } = counted();
      const first = item({ title: 'first' });
      const next = item({ runId: first.runId, id: `${first.runId}.t2.1`, task: 't2', title: 'second' });
      expect(await q.offer(first)).toBe('running');
      writes.length = 0;

      expect(await q.handOver(first.id, next)).toBe('running');

      expect(writes).toEqual(['kvSwap']);
      expect((await q.snapshot()).running).toEqual([{ ...next, admittedAt: expect.any(String) }]);
      expect(await store.kvMembers('work', RUNNING_KEY)).toMatchObject({
        sets: { 'a:coder': [next.id], 'r:acme/app': [next.id] },
      });
      expect(await q.release(next.id)).toMatchObject({ id: next.id, title: 'second' });
      expect(await store.kvMembers('work', RUNNING_KEY)).toEqual({ members: {}, sets: {} });
    });

    it('moves the slot across agents: the old agent set goes, the new one is joined', async () => {
      const { q } = counted();
      const first = item({ agent: 'coder' });
      const next = item({
        agent: 'reviewer',
        agentType: 'reviewer',
        runId: first.runId,
        id: `${first.runId}.t2.1`,
      });
      await q.offer(first);

      expect(await q.handOver(first.id, next)).toBe('running');

      expect((await store.kvMembers('work', RUNNING_KEY)).sets).toEqual({
        'a:reviewer': [next.id],
        'r:acme/app': [next.id],
      });
    });

    it('gives the slot to an item that waited for it instead, and writes nothing', async () => {
      const { q, writes } = counted();
      const first = item();
      await q.offer(first);
      const waiter = item(); // another run's item, queued behind the full agent
      expect(await q.offer(waiter)).toBe('queued');
      const next = item({ runId: first.runId, id: `${first.runId}.t2.1` });
      writes.length = 0;

      expect(await q.handOver(first.id, next)).toBeUndefined();

      expect(writes).toEqual([]);
      expect(await q.isRunning(first.id)).toBe(true);
      // As before: the release lets the waiter in, and the next item queues behind it.
      await q.release(first.id);
      expect((await q.admit()).map((x) => x.id)).toEqual([waiter.id]);
      expect(await q.offer(next)).toBe('queued');
    });

    it('does not apply to an item that holds no slot, or a next item that already runs or is queued', async () => {
      const { q, writes } = counted();
      const first = item();
      const next = item({ runId: first.runId, id: `${first.runId}.t2.1` });
      expect(await q.handOver(first.id, next)).toBeUndefined();
      await q.offer(first);
      await q.enqueue(next);
      writes.length = 0;

      expect(await q.handOver(first.id, next)).toBeUndefined();
      expect(writes).toEqual([]);
    });

    it('is refused, with nothing written, when the running sets changed after its read', async () => {
      const q = new AgentWorkQueue(store, { repoLimit: 10 });
      const first = item({ limit: 2 });
      const next = item({ limit: 2, runId: first.runId, id: `${first.runId}.t2.1` });
      await q.offer(first);
      const other = item({ limit: 2 });
      // Another worker admits `other` between this hand-over's read and its write.
      const racing: DynamoRunStore = Object.create(store);
      racing.kvSwap = async (group, key, swap) => {
        expect(await q.offer(other)).toBe('running');
        return store.kvSwap(group, key, swap);
      };

      expect(await new AgentWorkQueue(racing, { repoLimit: 10 }).handOver(first.id, next)).toBeUndefined();

      const { members, sets } = await store.kvMembers('work', RUNNING_KEY);
      expect(Object.keys(members).sort()).toEqual([first.id, other.id].sort());
      expect(sets['a:coder']).toEqual([first.id, other.id].sort());
    });

    it('keeps every limit while runs hand their slots over and others offer and release at once', async () => {
      const workers = Array.from({ length: 8 }, () => new AgentWorkQueue(store, { repoLimit: 3 }));
      const violations: string[] = [];
      const check = async () => {
        const { members, sets } = await store.kvMembers('work', RUNNING_KEY);
        if ((sets['r:acme/app']?.length ?? 0) > 3) violations.push('repository');
        if ((sets['a:coder']?.length ?? 0) > 2) violations.push('coder');
        const inSets = new Set(Object.values(sets).flat());
        if ([...inSets].some((id) => !(id in members))) violations.push('a set member without its note');
      };
      // Each run does three tasks in a row: the first offered, each next one handed over (or
      // released and offered, as execute does when the hand-over does not apply).
      const runs = Array.from({ length: 8 }, () => item({ limit: 2 }).runId);
      await Promise.all(
        runs.map(async (runId, n) => {
          const w = workers[n]!;
          let current: WorkItem | undefined;
          for (let t = 1; t <= 3; t++) {
            const next = item({ limit: 2, runId, id: `${runId}.t${t}.1`, task: `t${t}` });
            let where = current ? await w.handOver(current.id, next) : undefined;
            if (!where) {
              if (current) await w.release(current.id);
              for (let round = 0; round < 1000; round++) {
                where = (await w.offer(next)) === 'running' ? 'running' : undefined;
                if (where || (await w.admit()).some((a) => a.id === next.id) || (await w.isRunning(next.id)))
                  break;
                await new Promise((r) => setTimeout(r, 2));
              }
            }
            if (!where && !(await w.isRunning(next.id))) violations.push(`${next.id} never admitted`);
            await check();
            current = next;
          }
          if (current) await w.release(current.id);
          await w.admit();
        }),
      );
      expect(violations).toEqual([]);
    });
  });

  it('updates a dispatch record from the version the caller knows, and from a fresh read when it moved on', async () => {
    const q = new AgentWorkQueue(store);
    const rec = firstDispatch('r1');
    const written = await q.putDispatch(rec);
    expect(written).toEqual({ value: rec, version: 1 });
    expect(await q.putDispatch({ ...rec, startedAt: 'later' })).toEqual(written); // kept as it is

    const dispatched = await q.updateDispatch('r1', (d) => ({ ...d, state: 'dispatched' }), written);
    expect(dispatched?.state).toBe('dispatched');
    // `written` is stale now: the write at its version is refused, and the change is applied to
    // the record as it is.
    const linked = await q.updateDispatch(
      'r1',
      (d) => (d.state === 'dispatched' ? { ...d, workflowRunId: 7 } : undefined),
      written,
    );
    expect(linked).toMatchObject({ state: 'dispatched', workflowRunId: 7 });
    expect(await q.getDispatch('r1')).toEqual({ value: linked, version: 3 });
  });

  it('claims a dispatch in its record: kept by its own lease, taken over from an older one, refused to a stale one', async () => {
    const q = new AgentWorkQueue(store);
    const rec = firstDispatch('r2');
    // The first attempt, leased at version 4: the record is written with its claim.
    const claimed = await q.putDispatch(rec, { version: 4 });
    expect(claimed).toEqual({ value: { ...rec, claimVersion: 4 }, version: 1 });
    // Its own claim again (a retry of the same attempt): nothing written.
    const writes = vi.spyOn(store, 'kvPut');
    expect(await q.putDispatch({ ...rec, startedAt: 'later' }, { version: 4 })).toEqual(claimed);
    expect(writes).not.toHaveBeenCalled();
    // A takeover leased at version 6: the attempt at 4 never recorded the dispatch.
    const taken = await q.putDispatch({ ...rec, startedAt: 'later' }, { version: 6 });
    expect(taken).toEqual({ value: { ...rec, claimVersion: 6 }, version: 2, interrupted: true });
    // The stalled attempt at 4 comes back: refused, whatever it would write.
    await expect(q.putDispatch(rec, { version: 4 })).rejects.toBeInstanceOf(ConcurrencyError);
    // Once recorded, any attempt finds it done: no claim is written.
    await q.updateDispatch('r2', (d) => ({ ...d, state: 'dispatched' }), taken);
    writes.mockClear();
    expect((await q.putDispatch(rec, { version: 9 }))?.value).toMatchObject({
      state: 'dispatched',
      claimVersion: 6,
    });
    expect(writes).not.toHaveBeenCalled();
  });

  it('never replaces a later item record with a stale step claim: the run went on past that step', async () => {
    const q = new AgentWorkQueue(store);
    const first = firstDispatch('r3');
    const second = { ...first, item: 'r3.t2.1', correlation: 'r3.t2.1' };
    // Item 1 dispatched by the step leased at 4; item 2 by the step leased at 7.
    await q.putDispatch(first, { version: 4 });
    const later = await q.putDispatch(second, { version: 7 });
    // The step leased at 4 stalled past its lease (taken over, and the run went on) and comes back.
    const writes = vi.spyOn(store, 'kvPut');
    await expect(q.putDispatch({ ...first, startedAt: 'later' }, { version: 4 })).rejects.toBeInstanceOf(
      ConcurrencyError,
    );
    expect(writes).not.toHaveBeenCalled();
    expect(await q.getDispatch('r3')).toEqual(later);
    // A later step moves the record on as before.
    const third = { ...first, item: 'r3.t3.1', correlation: 'r3.t3.1' };
    expect((await q.putDispatch(third, { version: 9 }))?.value).toMatchObject({
      item: 'r3.t3.1',
      claimVersion: 9,
    });
  });

  it('binds a workflow run to the first item matched to it', async () => {
    const q = new AgentWorkQueue(store);
    expect(await q.bindWorkflowRun(41, 'r1', 'r1.t1.1')).toEqual({ runId: 'r1', item: 'r1.t1.1' });
    const reads = vi.spyOn(store, 'kvGet');
    expect(await q.bindWorkflowRun(41, 'r3', 'r3.t1.1')).toEqual({ runId: 'r1', item: 'r1.t1.1' });
    expect(reads).toHaveBeenCalledTimes(1);
  });

  it("remembers the earlier items' workflow runs when the next item replaces the record", async () => {
    const q = new AgentWorkQueue(store);
    const record = (n: number): DispatchRecord => ({
      runId: 'r9',
      item: `r9.t${n}.1`,
      correlation: `r9.t${n}.1`,
      agent: 'coder',
      executor: 'github-actions',
      state: 'dispatching',
      startedAt: '2026-01-01T00:00:00.000Z',
      expiresAt: '2026-01-01T01:00:00.000Z',
    });
    for (let n = 1; n <= EARLIER_RUNS + 2; n++) {
      const put = await q.putDispatch(record(n));
      // The dispatch named its workflow run (return_run_details): 100 + n.
      await q.updateDispatch('r9', (d) => ({ ...d, state: 'dispatched', workflowRunId: 100 + n }), put);
    }
    const last = (await q.getDispatch('r9'))!.value;
    expect(last).toMatchObject({ item: `r9.t${EARLIER_RUNS + 2}.1`, workflowRunId: 100 + EARLIER_RUNS + 2 });
    // Newest first, at most EARLIER_RUNS.
    expect(last.earlier).toEqual(Array.from({ length: EARLIER_RUNS }, (_, i) => 100 + EARLIER_RUNS + 1 - i));
    // The same item again (a retried step) keeps its record as it was.
    expect((await q.putDispatch(record(EARLIER_RUNS + 2)))?.value).toEqual(last);
  });

  it('reads the record a new item replaces eventually consistent, and strongly where that read was behind', async () => {
    // A replica a write behind: eventually consistent reads of the dispatch record see the one
    // before the last write.
    const seen: string[] = [];
    let behind: Record<string, unknown> | undefined;
    const lagging: DynamoRunStore = Object.create(store);
    lagging.kvGet = (async (group: string, key: string, opts?: { consistent?: boolean }) => {
      seen.push(opts?.consistent === false ? 'eventual' : 'strong');
      if (opts?.consistent === false && key.startsWith('d#')) return behind;
      return store.kvGet(group, key, opts);
    }) as DynamoRunStore['kvGet'];
    const q = new AgentWorkQueue(lagging);
    const record = (n: number, state: DispatchRecord['state'] = 'dispatching'): DispatchRecord => ({
      runId: 'r10',
      item: `r10.t${n}.1`,
      correlation: `r10.t${n}.1`,
      agent: 'coder',
      executor: 'github-actions',
      state,
      startedAt: '2026-01-01T00:00:00.000Z',
      expiresAt: '2026-01-01T01:00:00.000Z',
    });
    const first = await q.putDispatch(record(1));
    await q.updateDispatch('r10', (d) => ({ ...d, state: 'dispatched', workflowRunId: 101 }), first);
    expect(seen).toEqual(['eventual']); // nothing there yet: written at once

    // Up to date: one eventually consistent read, and the put.
    behind = (await store.kvGet('work', 'd#r10')) as typeof behind;
    seen.length = 0;
    const second = await q.putDispatch(record(2));
    expect(seen).toEqual(['eventual']);
    expect(second?.value.earlier).toEqual([101]);

    // Behind (it still shows the first item, the second having been written since): the put is
    // refused, and the record read strongly carries the second item's run over.
    await q.updateDispatch('r10', (d) => ({ ...d, state: 'dispatched', workflowRunId: 102 }), second);
    seen.length = 0;
    const third = await q.putDispatch(record(3));
    expect(seen).toEqual(['eventual', 'strong']);
    expect(third?.value.earlier).toEqual([102, 101]);

    // The item's own record (a retried step) is taken from a strong read only.
    behind = { value: record(3), version: 1 };
    seen.length = 0;
    expect((await q.putDispatch(record(3)))?.value).toEqual((await store.kvGet('work', 'd#r10'))?.value);
    expect(seen).toEqual(['eventual', 'strong']);
  });

  it('still shows, and releases, an item whose queue record a crash deleted before its slot was freed', async () => {
    const q = new AgentWorkQueue(store, { repoLimit: 10 });
    const a = item({ agent: 'coder', repo: 'Acme/App' });
    await q.enqueue(a);
    await q.admit();
    // The crash: a release deleted the queue record and died before leaving the sets.
    await store.kvDelete('work', queueKey(a));

    // The sweeper's reconcile finds it (by its run id) and can release it; the slot is free again.
    expect((await q.snapshot()).running).toEqual([
      expect.objectContaining({ id: a.id, runId: a.runId, agent: 'coder', repo: 'acme/app' }),
    ]);
    expect(await q.release(a.id)).toMatchObject({ id: a.id, runId: a.runId });
    expect(await q.offer(item({ agent: 'coder' }))).toBe('running');
  });

  it('adopts items a worker of the previous version admitted: they count against the limits and release as any other', async () => {
    const q = new AgentWorkQueue(store, { repoLimit: 10 });
    // What the previous layout left: a running record per admitted item, and counters.
    const old = item({ limit: 1, title: 'from before the deploy' });
    const ended = item({ limit: 1 });
    for (const i of [old, ended])
      await store.kvPut('work', `r#${i.id}`, { ...i, admittedAt: '2026-01-01T00:01:00.000Z' });
    await store.kvPut('work', 'c#a#coder', 2);
    // One of them ends before the sweeper adopts it: its release drops the old record.
    expect(await q.release(ended.id)).toBeUndefined();

    expect(await q.adoptLegacy()).toBe(1);

    const snap = await q.snapshot();
    expect(snap.running).toEqual([{ ...old, admittedAt: '2026-01-01T00:01:00.000Z' }]);
    // It holds its agent's one slot: a new item of the same agent waits.
    expect(await q.offer(item({ limit: 1 }))).toBe('queued');
    expect(await q.admit()).toEqual([]);
    expect(await q.release(old.id)).toMatchObject({ id: old.id, title: 'from before the deploy' });
    expect(await q.admit()).toHaveLength(1);
    // Nothing of the old layout is left once adopted, the counters included; a later pass finds nothing.
    expect(await q.adoptLegacy()).toBe(0);
    expect(await store.kvList('work', { prefix: 'r#' })).toEqual([]);
    expect(await store.kvList('work', { prefix: 'c#' })).toEqual([]);
  });

  it('undoes an adoption whose item was released while it was being adopted', async () => {
    const old = item({ limit: 1 });
    await store.kvPut('work', `r#${old.id}`, { ...old, admittedAt: '2026-01-01T00:01:00.000Z' });
    // The item's run releases it just as the sweeper joins it to the sets.
    const racing: DynamoRunStore = Object.create(store);
    racing.kvJoin = async (...args) => {
      await new AgentWorkQueue(store).release(old.id);
      return store.kvJoin(...args);
    };

    expect(await new AgentWorkQueue(racing).adoptLegacy()).toBe(0);

    expect((await new AgentWorkQueue(store).snapshot()).running).toEqual([]);
    expect(await store.kvList('work', { prefix: 'r#' })).toEqual([]);
  });

  it('keeps an adoption whose item was released between joining the sets and deleting its old record: nothing is left of it', async () => {
    const old = item({ limit: 1 });
    await store.kvPut('work', `r#${old.id}`, { ...old, admittedAt: '2026-01-01T00:01:00.000Z' });
    // The item's run releases it once the sweeper has joined it, before the old record goes.
    const racing: DynamoRunStore = Object.create(store);
    let released: unknown;
    racing.kvDelete = async (group, key, opts) => {
      if (key === `r#${old.id}` && released === undefined)
        released = await new AgentWorkQueue(store).release(old.id);
      return store.kvDelete(group, key, opts);
    };

    expect(await new AgentWorkQueue(racing).adoptLegacy()).toBe(1);

    expect(released).toMatchObject({ id: old.id });
    expect((await new AgentWorkQueue(store).snapshot()).running).toEqual([]);
    expect(await store.kvList('work', { prefix: 'r#' })).toEqual([]);
  });

  it('releases an item admitted at once with one write of the sets and no delete (an absent item is billed too)', async () => {
    const deleted: string[] = [];
    const counting: DynamoRunStore = Object.create(store);
    counting.kvDelete = async (group, key, opts) => {
      deleted.push(key);
      return store.kvDelete(group, key, opts);
    };
    const q = new AgentWorkQueue(counting, { repoLimit: 10 });
    const a = item({ agent: 'coder' });
    expect(await q.offer(a)).toBe('running');

    expect(await q.release(a.id)).toMatchObject({ id: a.id });

    expect(deleted).toEqual([]);
    expect(await q.isRunning(a.id)).toBe(false);
  });

  it('reports workloads: queue depth per agent and what each agent is doing', async () => {
    const config = parseConfig(`
agents:
  coder: { type: coder, concurrency: 1 }
  coverage: { type: coverage, concurrency: 2 }
`);
    const q = new AgentWorkQueue(store, { repoLimit: 10 });
    const a = item({ agent: 'coder', title: 'Fix the parser' });
    await q.enqueue(a);
    await q.enqueue(item({ agent: 'coder' }));
    await q.enqueue(item({ agent: 'coder' }));
    await q.admit();

    const w = await workloads(store, config);

    expect(w.queue).toEqual({ depth: 2, byAgent: { coder: 2 } });
    expect(w.agents).toEqual([
      {
        name: 'coder',
        type: 'coder',
        running: 1,
        limit: 1,
        queued: 2,
        items: [expect.objectContaining({ id: a.id, runId: a.runId, task: 't1', title: 'Fix the parser' })],
      },
      { name: 'coverage', type: 'coverage', running: 0, limit: 2, queued: 0, items: [] },
    ]);
    expect(formatWorkloads(w)).toContain('coder (coder): 1/1 running, 2 queued');
  });
});
