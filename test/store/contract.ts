import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { EventType } from '../../lib/engine/events.ts';
import type { EffectRef, RunStore } from '../../lib/engine/ports.ts';
import {
  ConcurrencyError,
  RunNotFoundError,
  RunTooLargeError,
  SubjectLockedError,
} from '../../lib/engine/store-errors.ts';
import type { NewEvent, Run, RunStatus } from '../../lib/engine/types.ts';
import { EVENTS_ITEM_BUDGET_BYTES, RUN_ITEM_BUDGET_BYTES } from '../../lib/store/budget.ts';

/** Makes a fresh, empty store; `now` is the store's clock (TTL checks read it). */
export type MakeStore = (opts?: { now?: () => Date }) => Promise<RunStore>;

const DAY_MS = 86_400_000;
const unique = (prefix: string) => `${prefix}-${randomBytes(5).toString('hex')}`;
const epochSeconds = (ms: number) => Math.floor(ms / 1000);

/** Runs are created a few minutes in the past, one second apart, so "newest first" has an answer. */
let createdClock = Date.now() - 10 * 60_000;

function aRun(opts: { subject?: string; repo?: string; status?: RunStatus; createdAt?: string } = {}): Run {
  createdClock += 1000;
  const at = opts.createdAt ?? new Date(createdClock).toISOString();
  const repo = opts.repo ?? unique('owner/repo');
  const status = opts.status ?? 'queued';
  return {
    id: unique('run'),
    workflow: 'contract',
    status,
    node: 'a',
    subject: { repo, issue: 1, key: opts.subject ?? `${repo}#1` },
    trigger: { source: 'test' },
    createdAt: at,
    updatedAt: at,
    version: 1,
    data: {},
    ...(status === 'queued' || status === 'running'
      ? { step: { node: 'a', seq: 1, attempt: 1, notBefore: at } }
      : {}),
    eventSeq: 0,
  };
}

const created: NewEvent = { type: 'run.created', node: 'a', detail: {} };
/** The store keeps an event's type as given: these tests name their events for what they check. */
const named = (type: string) => type as EventType;
const ev = (type: string): NewEvent => ({ type: named(type), node: 'a', detail: { type } });

/** The next version of `run` (what a commit or update writes). */
function bumped(run: Run, patch: Partial<Run> = {}): Run {
  return { ...run, ...patch, version: run.version + 1, updatedAt: new Date().toISOString() };
}

function finished(run: Run, status: RunStatus = 'succeeded', patch: Partial<Run> = {}): Run {
  const next = bumped(run, {
    status,
    reason: `${status} in a test`,
    finishedAt: new Date().toISOString(),
    ...patch,
  });
  delete next.step;
  return next;
}

async function createOrFail(
  store: RunStore,
  run: Run,
  extra: { idempotencyKey?: string; lockKey?: string } = {},
) {
  const res = await store.createRun({ run, events: [created], ...extra });
  if (res.outcome !== 'created') throw new Error(`expected ${run.id} to be created, got ${res.outcome}`);
  return res.run;
}

/** A run created and moved to `status` through a commit (terminal runs get there the way the engine does it). */
async function runWithStatus(
  store: RunStore,
  status: RunStatus,
  opts: { repo?: string; subject?: string } = {},
) {
  const run = await createOrFail(store, aRun(opts));
  if (status === 'queued') return run;
  const next = status === 'running' || status === 'waiting' ? bumped(run, { status }) : finished(run, status);
  return store.commit({ run: next, expectedVersion: run.version, events: [ev(`run.${status}`)] });
}

/**
 * The RunStore contract. Every adapter runs it (STYLE.md: one contract suite per port); the
 * DynamoDB adapter runs it against DynamoDB Local.
 */
export function runStoreContract(name: string, makeStore: MakeStore): void {
  describe(`RunStore contract: ${name}`, () => {
    describe('createRun', () => {
      it('creates the run with its events and counts them in eventSeq', async () => {
        const store = await makeStore();
        const run = aRun();

        const res = await store.createRun({ run, events: [created, ev('extra')] });

        expect(res).toEqual({ outcome: 'created', run: { ...run, eventSeq: 2 } });
        expect(await store.getRun(run.id)).toEqual({ ...run, eventSeq: 2 });
        expect((await store.listEvents(run.id)).map((e) => [e.seq, e.type])).toEqual([
          [0, 'run.created'],
          [1, 'extra'],
        ]);
      });

      it('returns the existing run as a duplicate for an idempotency key seen before', async () => {
        const store = await makeStore();
        const first = await createOrFail(store, aRun(), { idempotencyKey: 'delivery-1' });
        const second = aRun();

        const res = await store.createRun({ run: second, events: [created], idempotencyKey: 'delivery-1' });

        expect(res).toEqual({ outcome: 'duplicate', run: first });
        expect(await store.getRun(second.id)).toBeNull();
      });

      it('reports the active run id when the lock key is held', async () => {
        const store = await makeStore();
        const first = await createOrFail(store, aRun(), { lockKey: 'o/r#1#wf' });
        const second = aRun();

        const res = await store.createRun({ run: second, events: [created], lockKey: 'o/r#1#wf' });

        expect(res).toEqual({ outcome: 'locked', activeRunId: first.id });
        expect(await store.getRun(second.id)).toBeNull();
        expect(await store.listEvents(second.id)).toEqual([]);
      });

      it.each([
        { key: 'idempotency key', losers: 'duplicate', input: { idempotencyKey: 'same-delivery' } },
        { key: 'lock key', losers: 'locked', input: { lockKey: 'o/r#7#wf' } },
      ] as const)(
        'creates exactly one of 10 concurrent runs with the same $key; the others are $losers',
        async ({ input, losers }) => {
          const store = await makeStore();
          const runs = Array.from({ length: 10 }, () => aRun({ subject: 'o/r#7' }));

          const results = await Promise.all(
            runs.map((run) => store.createRun({ run, events: [created], ...input })),
          );

          const winners = results.filter((r) => r.outcome === 'created');
          expect(winners).toHaveLength(1);
          const winnerId = winners[0]!.run.id;
          const others = results.filter((r) => r.outcome !== 'created');
          expect(others.map((r) => r.outcome)).toEqual(Array(9).fill(losers));
          for (const r of others)
            expect('run' in r ? r.run.id : 'activeRunId' in r ? r.activeRunId : undefined).toBe(winnerId);
          const stored = await Promise.all(runs.map((r) => store.getRun(r.id)));
          expect(stored.filter(Boolean).map((r) => r!.id)).toEqual([winnerId]);
        },
      );
    });

    describe('rememberKey', () => {
      it('maps a new key to the run given and keeps the first mapping afterwards', async () => {
        const store = await makeStore();

        const first = await store.rememberKey('interaction-1', 'run-a');
        const second = await store.rememberKey('interaction-1', 'run-b');

        expect([first, second]).toEqual(['run-a', 'run-a']);
      });
    });

    describe('getRun', () => {
      it('returns null for a run that does not exist', async () => {
        const store = await makeStore();

        expect(await store.getRun('no-such-run')).toBeNull();
      });
    });

    describe('carriedRun and runFromCarried', () => {
      it('carry the run item a commit wrote, read back as getRun reads it', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        const saved = await store.commit({
          run: bumped(run, { status: 'running', data: { a: 1, text: 'x'.repeat(2000) } }),
          expectedVersion: 1,
          events: [ev('step.succeeded')],
        });

        const carried = store.carriedRun(run.id, saved.version, 64 * 1024);
        expect(carried).toEqual(expect.any(String));
        const read = await store.runFromCarried(run.id, carried!);
        expect(read).toEqual(await store.getRun(run.id));
        const next = await store.commit({
          run: bumped(read!),
          expectedVersion: saved.version,
          events: [ev('y')],
        });
        expect(await store.getRun(run.id)).toEqual(next);
        expect((await store.listEvents(run.id)).map((e) => e.type)).toEqual([
          'run.created',
          'step.succeeded',
          'y',
        ]);
      });

      it('carry nothing for a version not written here, or over the size given', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());

        expect(store.carriedRun(run.id, 7, 64 * 1024)).toBeUndefined();
        expect(store.carriedRun(run.id, 1, 10)).toBeUndefined();
      });

      it("refuse an item that is not the run's, or not an item at all", async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        const other = await createOrFail(store, aRun());
        const carried = store.carriedRun(other.id, 1, 64 * 1024)!;

        expect(await store.runFromCarried(run.id, carried)).toBeNull();
        expect(await store.runFromCarried(run.id, 'not json')).toBeNull();
      });
    });

    describe('commit', () => {
      it('writes the new state and appends its events after the existing ones', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        const next = bumped(run, { status: 'running', data: { a: 1 } });

        const saved = await store.commit({
          run: next,
          expectedVersion: 1,
          events: [ev('step.succeeded'), ev('x')],
        });

        expect(saved).toEqual({ ...next, eventSeq: 3 });
        expect(await store.getRun(run.id)).toEqual(saved);
        expect((await store.listEvents(run.id)).map((e) => e.seq)).toEqual([0, 1, 2]);
      });

      it('throws ConcurrencyError and writes nothing when the version moved on', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        const winner = await store.commit({
          run: bumped(run, { data: { w: 1 } }),
          expectedVersion: 1,
          events: [ev('win')],
        });

        const loser = store.commit({
          run: bumped(run, { data: { l: 1 } }),
          expectedVersion: 1,
          events: [ev('lose')],
        });

        await expect(loser).rejects.toBeInstanceOf(ConcurrencyError);
        expect(await store.getRun(run.id)).toEqual(winner);
        expect((await store.listEvents(run.id)).map((e) => e.type)).toEqual(['run.created', 'win']);
      });

      it('refuses a new state whose version is not above the expected version, and takes one of a fused commit', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());

        const same = store.commit({ run: { ...run, version: 1 }, expectedVersion: 1, events: [] });
        await expect(same).rejects.toThrow(/must raise version 1/);

        // Two chained steps in one commit (transitions.ts fused): up by two.
        const saved = await store.commit({ run: { ...run, version: 3 }, expectedVersion: 1, events: [] });
        expect(saved.version).toBe(3);
        expect((await store.getRun(run.id))?.version).toBe(3);
      });

      it('gives a terminal run a ttl so DynamoDB TTL removes it later', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());

        const saved = await store.commit({
          run: finished(run),
          expectedVersion: 1,
          events: [ev('run.succeeded')],
        });

        expect(saved.ttl).toBeGreaterThan(epochSeconds(Date.now()));
        expect((await store.getRun(run.id))?.ttl).toBe(saved.ttl);
      });

      it('releases the subject lock so a new run can take it', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun(), { lockKey: 'L' });
        await store.commit({
          run: finished(run),
          expectedVersion: 1,
          events: [ev('run.succeeded')],
          releaseLock: 'L',
        });

        const res = await store.createRun({ run: aRun(), events: [created], lockKey: 'L' });

        expect(res.outcome).toBe('created');
      });

      it('frees the lock of an ended run that never released it (a crash between its end and the release)', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun(), { lockKey: 'L' });
        await store.commit({ run: finished(run), expectedVersion: 1, events: [ev('run.succeeded')] });

        const res = await store.createRun({ run: aRun(), events: [created], lockKey: 'L' });

        expect(res.outcome).toBe('created');
        // The new run holds it now.
        expect((await store.createRun({ run: aRun(), events: [created], lockKey: 'L' })).outcome).toBe(
          'locked',
        );
      });

      it('keeps the subject lock while the run commits without releasing it', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun(), { lockKey: 'L' });
        await store.commit({
          run: bumped(run, { status: 'running' }),
          expectedVersion: 1,
          events: [ev('step')],
        });

        const res = await store.createRun({ run: aRun(), events: [created], lockKey: 'L' });

        expect(res).toEqual({ outcome: 'locked', activeRunId: run.id });
      });

      it('acquires a free subject lock for a run that becomes active again', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun(), { lockKey: 'L' });
        const done = await store.commit({
          run: finished(run, 'failed'),
          expectedVersion: 1,
          events: [],
          releaseLock: 'L',
        });
        const again = bumped(done, { status: 'running' });

        await store.commit({
          run: again,
          expectedVersion: done.version,
          events: [ev('retry')],
          acquireLock: 'L',
        });

        const res = await store.createRun({ run: aRun(), events: [created], lockKey: 'L' });
        expect(res).toEqual({ outcome: 'locked', activeRunId: run.id });
      });

      it('refuses to acquire a lock another run holds, naming it, and writes nothing', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun(), { lockKey: 'L' });
        const done = await store.commit({
          run: finished(run, 'failed'),
          expectedVersion: 1,
          events: [],
          releaseLock: 'L',
        });
        const other = await createOrFail(store, aRun(), { lockKey: 'L' });
        const again = bumped(done, { status: 'running' });

        const attempt = store.commit({
          run: again,
          expectedVersion: done.version,
          events: [ev('retry')],
          acquireLock: 'L',
        });

        await expect(attempt).rejects.toMatchObject({ name: SubjectLockedError.name, activeRunId: other.id });
        expect(await store.getRun(run.id)).toEqual(done);
        expect((await store.listEvents(run.id)).map((e) => e.type)).toEqual(['run.created']);
      });
    });

    describe('update', () => {
      it('writes the new state without any history', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        const leased = bumped(run, {
          lease: { owner: 'w1', seq: 1, until: new Date(Date.now() + 60_000).toISOString() },
        });

        await store.update(leased, 1);

        expect(await store.getRun(run.id)).toEqual(leased);
        expect(await store.listEvents(run.id)).toHaveLength(1);
      });

      it('throws ConcurrencyError when the version moved on', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        await store.update(bumped(run, { data: { first: true } }), 1);

        const second = store.update(bumped(run, { data: { second: true } }), 1);

        await expect(second).rejects.toBeInstanceOf(ConcurrencyError);
        expect((await store.getRun(run.id))?.data).toEqual({ first: true });
      });
    });

    describe('listActivePage', () => {
      it('pages through every active run, oldest first, with no run twice', async () => {
        const store = await makeStore();
        const made: string[] = [];
        for (let i = 0; i < 7; i++) made.push((await createOrFail(store, aRun())).id);

        const seen: string[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const page = await store.listActivePage({ limit: 3, ...(cursor ? { cursor } : {}) });
          seen.push(...page.runs.map((r) => r.id));
          cursor = page.cursor;
          pages++;
        } while (cursor && pages < 10);

        expect(seen).toEqual(made);
      });
    });

    describe('listActive and retire', () => {
      it('lists runs until they are retired, finished ones included', async () => {
        const store = await makeStore();
        const live = await runWithStatus(store, 'running');
        const done = await runWithStatus(store, 'succeeded');

        const active = await store.listActive();

        expect(active.map((r) => r.id).sort()).toEqual([live.id, done.id].sort());
      });

      it('removes a retired run from the active list but keeps it readable', async () => {
        const store = await makeStore();
        const done = await runWithStatus(store, 'succeeded');

        await store.retire(done);

        expect(await store.listActive()).toEqual([]);
        expect(await store.getRun(done.id)).toEqual(done);
      });

      it('does not retire a run that moved on since the version given', async () => {
        const store = await makeStore();
        const done = await runWithStatus(store, 'failed');
        const again = await store.commit({
          run: bumped(done, { status: 'running' }),
          expectedVersion: done.version,
          events: [],
        });

        await store.retire(done);

        expect((await store.listActive()).map((r) => r.id)).toEqual([again.id]);
      });

      it('puts a retired run back in the active list when it is committed again', async () => {
        const store = await makeStore();
        const done = await runWithStatus(store, 'failed');
        await store.retire(done);

        await store.commit({
          run: bumped(done, { status: 'running' }),
          expectedVersion: done.version,
          events: [],
        });

        expect((await store.listActive()).map((r) => r.id)).toEqual([done.id]);
      });

      it('counts a retired run as reported up to its version, with no claim, until it is unretired', async () => {
        const store = await makeStore();
        const done = await runWithStatus(store, 'succeeded');
        // Claimed, and never completed: retiring completes the report of a final state.
        const until = new Date(Date.now() + 60_000).toISOString();
        expect(await store.claimReport(done.id, done.version, 'w1', until, new Date().toISOString())).toBe(
          true,
        );
        expect(await store.getReportState(done.id)).toMatchObject({ reported: 0, claimOwner: 'w1' });

        await store.retire(done);
        expect(await store.getReportState(done.id)).toEqual({ reported: done.version, retired: true });

        // A late report of an older version landed over it: reopened, and back in the active index.
        await store.reopenReport(done.id, done.version - 1);
        await store.unretire(done);
        expect((await store.listActive()).map((r) => r.id)).toEqual([done.id]);
        expect(await store.getReportState(done.id)).toEqual({ reported: done.version - 1 });
        // Unretiring an active run, or a version it moved on from, writes nothing.
        await store.unretire(done);
        await store.unretire({ ...done, version: done.version - 1 });
        expect((await store.listActive()).map((r) => r.id)).toEqual([done.id]);
      });
    });

    describe('listEvents', () => {
      async function runWithHistory(store: RunStore, count: number): Promise<Run> {
        let run = await createOrFail(store, aRun());
        for (let i = 1; i < count; i++) {
          run = await store.commit({ run: bumped(run), expectedVersion: run.version, events: [ev(`e${i}`)] });
        }
        return run;
      }

      it('returns the history in sequence order', async () => {
        const store = await makeStore();
        const run = await runWithHistory(store, 12);

        const events = await store.listEvents(run.id);

        expect(events.map((e) => e.seq)).toEqual([...Array(12).keys()]);
        expect(events.map((e) => e.type)).toEqual([
          'run.created',
          ...Array.from({ length: 11 }, (_, i) => `e${i + 1}`),
        ]);
      });

      it.each([
        { after: 0, expected: [1, 2, 3, 4] },
        { after: 3, expected: [4] },
        { after: 4, expected: [] },
      ])('returns only the events after seq $after', async ({ after, expected }) => {
        const store = await makeStore();
        const run = await runWithHistory(store, 5);

        const events = await store.listEvents(run.id, { after });

        expect(events.map((e) => e.seq)).toEqual(expected);
      });

      it('returns at most `limit` events, the oldest first', async () => {
        const store = await makeStore();
        const run = await runWithHistory(store, 5);

        const events = await store.listEvents(run.id, { limit: 2, after: 1 });

        expect(events.map((e) => e.seq)).toEqual([2, 3]);
      });

      it('keeps events of one run out of another', async () => {
        const store = await makeStore();
        const a = await runWithHistory(store, 3);
        const b = await runWithHistory(store, 2);

        expect(await store.listEvents(a.id)).toHaveLength(3);
        expect(await store.listEvents(b.id)).toHaveLength(2);
      });
    });

    describe('appendEvent', () => {
      it('places an audit event after the last committed event and before the next', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        const first = await store.commit({
          run: bumped(run),
          expectedVersion: 1,
          events: [ev('committed.1')],
        });

        await store.appendEvent(run.id, { type: named('audit.1'), by: 'alice', detail: { why: 'refused' } });
        await store.appendEvent(run.id, { type: named('audit.2'), detail: {} });
        await store.commit({
          run: bumped(first),
          expectedVersion: first.version,
          events: [ev('committed.2')],
        });

        const events = await store.listEvents(run.id);
        expect(events.map((e) => e.type)).toEqual([
          'run.created',
          'committed.1',
          'audit.1',
          'audit.2',
          'committed.2',
        ]);
        expect(events[2]).toMatchObject({ by: 'alice', detail: { why: 'refused' } });
      });

      it('does not touch the run, so a commit at the version read before still wins', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());

        await store.appendEvent(run.id, { type: named('audit'), detail: {} });

        await expect(
          store.commit({ run: bumped(run), expectedVersion: 1, events: [] }),
        ).resolves.toBeDefined();
      });

      it('throws RunNotFoundError for a run that does not exist', async () => {
        const store = await makeStore();

        await expect(
          store.appendEvent('no-such-run', { type: named('audit'), detail: {} }),
        ).rejects.toBeInstanceOf(RunNotFoundError);
      });

      it('gives audit events sequence numbers of their own, so listing after the last committed event finds them', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        const committed = await store.commit({ run: bumped(run), expectedVersion: 1, events: [ev('c1')] });
        const lastCommitted = committed.eventSeq - 1;

        await store.appendEvent(run.id, { type: named('audit.1'), detail: {} });
        const afterCommit = await store.listEvents(run.id, { after: lastCommitted });
        await store.appendEvent(run.id, { type: named('audit.2'), detail: {} });
        const afterFirstAudit = await store.listEvents(run.id, { after: afterCommit[0]!.seq });

        expect(afterCommit.map((e) => e.type)).toEqual(['audit.1']);
        expect(afterFirstAudit.map((e) => e.type)).toEqual(['audit.2']);
        const seqs = (await store.listEvents(run.id)).map((e) => e.seq);
        expect(new Set(seqs).size).toBe(seqs.length);
        expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
      });

      it('keeps every audit event written concurrently, each with its own sequence number', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());

        await Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            store.appendEvent(run.id, { type: named(`audit.${i}`), detail: {} }),
          ),
        );

        const audits = (await store.listEvents(run.id, { after: 0 })).map((e) => e.seq);
        expect(audits).toHaveLength(8);
        expect(new Set(audits).size).toBe(8);
      });
    });

    describe('listEvents after a cursor', () => {
      it('finds events inside a commit that wrote several, after an audit event', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        await store.appendEvent(run.id, { type: named('audit'), detail: {} });
        const [audit] = await store.listEvents(run.id, { after: 0 });
        await store.commit({
          run: bumped(run),
          expectedVersion: 1,
          events: [ev('c1'), ev('c2'), ev('c3')],
        });

        expect((await store.listEvents(run.id, { after: audit!.seq })).map((e) => e.type)).toEqual([
          'c1',
          'c2',
          'c3',
        ]);
        expect((await store.listEvents(run.id, { after: 2 })).map((e) => e.type)).toEqual(['c3']);
      });

      it('finds audit events written after what a reader read, once a commit has followed them', async () => {
        // A reporter read up to the last committed event; a /hold decision (an audit event) is then
        // written, and the next commit lands before the reporter reads again: its next read must
        // hold the decision (it sorts between the event read and the new commit's item).
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        const first = await store.commit({
          run: bumped(run),
          expectedVersion: 1,
          events: [ev('c1'), ev('c2'), ev('c3')],
        });
        const read = await store.listEvents(run.id);
        const cursor = read[read.length - 1]!.seq;
        await store.appendEvent(run.id, { type: named('audit.1'), detail: {} });
        await store.appendEvent(run.id, { type: named('audit.2'), detail: {} });
        await store.commit({
          run: bumped(first),
          expectedVersion: first.version,
          events: [ev('c4'), ev('c5')],
        });

        const next = await store.listEvents(run.id, { after: cursor });
        expect(next.map((e) => e.type)).toEqual(['audit.1', 'audit.2', 'c4', 'c5']);
        // From a cursor on an audit event, and inside a commit, too.
        expect((await store.listEvents(run.id, { after: next[0]!.seq })).map((e) => e.type)).toEqual([
          'audit.2',
          'c4',
          'c5',
        ]);
        expect((await store.listEvents(run.id, { after: next[2]!.seq })).map((e) => e.type)).toEqual(['c5']);
        expect(
          (await store.listEvents(run.id, { after: next[2]!.seq, limit: 0 })).map((e) => e.type),
        ).toEqual([]);
        expect((await store.listEvents(run.id, { after: cursor, limit: 1 })).map((e) => e.type)).toEqual([
          'audit.1',
        ]);
      });
    });

    describe('size budget', () => {
      it('refuses a commit whose run is over budget, naming the size, and writes nothing', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());

        const attempt = store.commit({
          run: bumped(run, { data: { blob: 'x'.repeat(RUN_ITEM_BUDGET_BYTES) } }),
          expectedVersion: 1,
          events: [ev('big')],
        });

        await expect(attempt).rejects.toBeInstanceOf(RunTooLargeError);
        await expect(attempt).rejects.toMatchObject({ retryable: false, limit: RUN_ITEM_BUDGET_BYTES });
        expect((await store.getRun(run.id))?.version).toBe(1);
        expect(await store.listEvents(run.id)).toHaveLength(1);
      });

      it('refuses a commit whose events are over budget', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());

        const attempt = store.commit({
          run: bumped(run),
          expectedVersion: 1,
          events: [{ type: named('big'), detail: { text: 'y'.repeat(EVENTS_ITEM_BUDGET_BYTES) } }],
        });

        await expect(attempt).rejects.toBeInstanceOf(RunTooLargeError);
        expect((await store.getRun(run.id))?.version).toBe(1);
      });
    });

    describe('listRuns', () => {
      it.each(['queued', 'running', 'waiting', 'succeeded', 'failed', 'cancelled'] as const)(
        'lists only %s runs when asked for that status',
        async (status) => {
          const store = await makeStore();
          const all = ['queued', 'running', 'waiting', 'succeeded', 'failed', 'cancelled'] as const;
          const runs = new Map<RunStatus, Run>();
          for (const s of all) runs.set(s, await runWithStatus(store, s));

          const listed = await store.listRuns({ status });

          expect(listed.map((r) => r.id)).toEqual([runs.get(status)!.id]);
        },
      );

      it('lists retired terminal runs by status too', async () => {
        const store = await makeStore();
        const done = await runWithStatus(store, 'succeeded');
        await store.retire(done);

        const listed = await store.listRuns({ status: 'succeeded' });

        expect(listed.map((r) => r.id)).toEqual([done.id]);
      });

      it('lists the runs of one repository, newest first', async () => {
        const store = await makeStore();
        const a1 = await runWithStatus(store, 'running', { repo: 'o/a', subject: 'o/a#1' });
        await runWithStatus(store, 'running', { repo: 'o/b', subject: 'o/b#1' });
        const a2 = await runWithStatus(store, 'succeeded', { repo: 'o/a', subject: 'o/a#2' });

        const listed = await store.listRuns({ repo: 'o/a' });

        expect(listed.map((r) => r.id)).toEqual([a2.id, a1.id]);
      });

      it('lists the runs of one subject, newest first', async () => {
        const store = await makeStore();
        const s1 = await runWithStatus(store, 'failed', { repo: 'o/a', subject: 'o/a#1' });
        await runWithStatus(store, 'running', { repo: 'o/a', subject: 'o/a#2' });
        const s2 = await runWithStatus(store, 'running', { repo: 'o/a', subject: 'o/a#1' });

        const listed = await store.listRuns({ subject: 'o/a#1' });

        expect(listed.map((r) => r.id)).toEqual([s2.id, s1.id]);
      });

      it('combines a subject with a status', async () => {
        const store = await makeStore();
        await runWithStatus(store, 'failed', { repo: 'o/a', subject: 'o/a#1' });
        const live = await runWithStatus(store, 'running', { repo: 'o/a', subject: 'o/a#1' });

        const listed = await store.listRuns({ subject: 'o/a#1', status: 'running' });

        expect(listed.map((r) => r.id)).toEqual([live.id]);
      });

      it('lists every run newest first when nothing narrows it', async () => {
        const store = await makeStore();
        const runs: Run[] = [];
        for (const s of ['running', 'succeeded', 'waiting', 'failed'] as const)
          runs.push(await runWithStatus(store, s));

        const listed = await store.listRuns({});

        expect(listed.map((r) => r.id)).toEqual(runs.map((r) => r.id).reverse());
      });

      it.each([
        { query: {}, label: 'all runs' },
        { query: { repo: 'o/a' }, label: 'a repository' },
        { query: { subject: 'o/a#1' }, label: 'a subject' },
        { query: { status: 'running' }, label: 'a status' },
      ] as const)('returns at most `limit` of $label, the newest', async ({ query }) => {
        const store = await makeStore();
        const runs: Run[] = [];
        for (let i = 0; i < 5; i++)
          runs.push(await runWithStatus(store, 'running', { repo: 'o/a', subject: 'o/a#1' }));

        const listed = await store.listRuns({ ...query, limit: 2 });

        expect(listed.map((r) => r.id)).toEqual([runs[4]!.id, runs[3]!.id]);
      });
    });

    describe('TTL', () => {
      it('stops returning a run once its ttl has passed, before DynamoDB deletes it', async () => {
        let clock = Date.now();
        const store = await makeStore({ now: () => new Date(clock) });
        const run = await createOrFail(store, aRun({ subject: 'o/ttl#1' }));
        const done = finished(run, 'succeeded', { ttl: epochSeconds(clock) + 60 });
        await store.commit({ run: done, expectedVersion: 1, events: [] });

        clock += 120_000;

        expect(await store.getRun(run.id)).toBeNull();
        expect(await store.listRuns({ subject: 'o/ttl#1' })).toEqual([]);
        expect(await store.listRuns({ status: 'succeeded' })).toEqual([]);
        expect(await store.listActive()).toEqual([]);
      });

      it('keeps returning a run whose ttl has not passed', async () => {
        let clock = Date.now();
        const store = await makeStore({ now: () => new Date(clock) });
        const run = await createOrFail(store, aRun());
        await store.commit({
          run: finished(run, 'succeeded', { ttl: epochSeconds(clock) + 60 }),
          expectedVersion: 1,
          events: [],
        });

        clock += 30_000;

        expect(await store.getRun(run.id)).not.toBeNull();
      });

      it('stops returning the history of a run once its retention has passed', async () => {
        let clock = Date.now();
        const store = await makeStore({ now: () => new Date(clock) });
        const run = await createOrFail(store, aRun());
        await store.commit({ run: finished(run), expectedVersion: 1, events: [ev('run.succeeded')] });

        clock += 10 * 365 * DAY_MS;

        expect(await store.listEvents(run.id)).toEqual([]);
      });
    });

    describe('reports', () => {
      const t0 = Date.parse('2030-01-01T00:00:00.000Z');
      const at = (ms: number) => new Date(t0 + ms).toISOString();

      it('starts with nothing reported and no claim', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());

        expect(await store.getReportState(run.id)).toEqual({ reported: 0 });
      });

      it('grants a claim to one reporter at a time', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());

        const first = await store.claimReport(run.id, 1, 'w1', at(30_000), at(0));
        const second = await store.claimReport(run.id, 1, 'w2', at(31_000), at(1_000));

        expect([first, second]).toEqual([true, false]);
        expect(await store.getReportState(run.id)).toEqual({
          reported: 0,
          claimUntil: at(30_000),
          claimOwner: 'w1',
        });
      });

      it('lets another reporter take a claim that has lapsed', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        await store.claimReport(run.id, 1, 'w1', at(30_000), at(0));

        const taken = await store.claimReport(run.id, 1, 'w2', at(61_000), at(31_000));

        expect(taken).toBe(true);
      });

      it('marks the version reported and drops the claim on completion', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        await store.claimReport(run.id, 3, 'w1', at(30_000), at(0));

        await store.completeReport(run.id, 3, 'w1');

        expect(await store.getReportState(run.id)).toEqual({ reported: 3 });
      });

      it.each([
        { version: 2, granted: false },
        { version: 3, granted: false },
        { version: 4, granted: true },
      ])(
        'after version 3 is reported, a claim on version $version is granted: $granted',
        async ({ version, granted }) => {
          const store = await makeStore();
          const run = await createOrFail(store, aRun());
          await store.claimReport(run.id, 3, 'w1', at(30_000), at(0));
          await store.completeReport(run.id, 3, 'w1');

          expect(await store.claimReport(run.id, version, 'w2', at(40_000), at(10_000))).toBe(granted);
        },
      );

      it('ignores a completion from a reporter whose claim was taken over', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        await store.claimReport(run.id, 1, 'w1', at(30_000), at(0));
        await store.claimReport(run.id, 1, 'w2', at(61_000), at(31_000));

        const completed = await store.completeReport(run.id, 1, 'w1');

        expect(completed).toBe(false);
        expect(await store.getReportState(run.id)).toEqual({
          reported: 0,
          claimUntil: at(61_000),
          claimOwner: 'w2',
        });
      });

      it('reopens a newer reported version back to the one given, dropping any claim', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        await store.claimReport(run.id, 6, 'w2', at(30_000), at(0));
        await store.completeReport(run.id, 6, 'w2');

        await store.reopenReport(run.id, 5);

        expect(await store.getReportState(run.id)).toEqual({ reported: 5 });
        expect(await store.claimReport(run.id, 6, 'w3', at(40_000), at(10_000))).toBe(true);
      });

      it('never reopens upwards', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        await store.claimReport(run.id, 3, 'w1', at(30_000), at(0));
        await store.completeReport(run.id, 3, 'w1');

        await store.reopenReport(run.id, 5);

        expect(await store.getReportState(run.id)).toEqual({ reported: 3 });
      });

      it('remembers reporters that failed for good, alongside the claim state', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        await store.claimReport(run.id, 1, 'w1', at(30_000), at(0));

        await store.markReporterFailed(run.id, 'github');
        await store.markReporterFailed(run.id, 'github');
        await store.completeReport(run.id, 1, 'w1');

        expect(await store.getReportState(run.id)).toEqual({ reported: 1, failedReporters: ['github'] });
      });

      it('completes a version and claims a newer one in the same write, the claim never free', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        await store.claimReport(run.id, 3, 'w1', at(30_000), at(0));

        const moved = await store.completeReport(run.id, 3, 'w1', {
          next: { version: 5, until: at(50_000) },
        });

        expect(moved).toBe(true);
        expect(await store.getReportState(run.id)).toEqual({
          reported: 3,
          claimUntil: at(50_000),
          claimOwner: 'w1',
        });
        expect(await store.claimReport(run.id, 5, 'w2', at(60_000), at(40_000))).toBe(false);
        expect(await store.completeReport(run.id, 5, 'w1')).toBe(true);
        expect(await store.getReportState(run.id)).toEqual({ reported: 5 });
      });

      it('moves a claim only forward', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        await store.claimReport(run.id, 3, 'w1', at(30_000), at(0));

        await expect(
          store.completeReport(run.id, 3, 'w1', { next: { version: 3, until: at(50_000) } }),
        ).rejects.toThrow(/forward/);
      });

      it('keeps the notes given with a completion until the next completion replaces them', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        await store.claimReport(run.id, 1, 'w1', at(30_000), at(0));
        await store.completeReport(run.id, 1, 'w1', { notes: { github: 'a', discord: 'b' } });
        expect(await store.getReportState(run.id)).toEqual({
          reported: 1,
          notes: { github: 'a', discord: 'b' },
        });

        await store.claimReport(run.id, 2, 'w1', at(30_000), at(0));
        await store.completeReport(run.id, 2, 'w1', { notes: { github: 'c' } });
        expect((await store.getReportState(run.id)).notes).toEqual({ github: 'c' });

        // A completion without notes leaves them; an empty map removes them.
        await store.claimReport(run.id, 3, 'w1', at(30_000), at(0));
        await store.completeReport(run.id, 3, 'w1');
        expect((await store.getReportState(run.id)).notes).toEqual({ github: 'c' });
        await store.claimReport(run.id, 4, 'w1', at(30_000), at(0));
        await store.completeReport(run.id, 4, 'w1', { notes: {} });
        expect(await store.getReportState(run.id)).toEqual({ reported: 4 });
      });

      it('drops the notes on a reopen: a stalled writer may have replaced what they describe', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        await store.claimReport(run.id, 6, 'w2', at(30_000), at(0));
        await store.completeReport(run.id, 6, 'w2', { notes: { github: 'shown at 6' } });

        await store.reopenReport(run.id, 5);

        expect(await store.getReportState(run.id)).toEqual({ reported: 5 });
      });

      it('grants a claim with ifReported only while nothing was claimed or completed since that read', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        await store.claimReport(run.id, 1, 'w1', at(30_000), at(0));
        await store.completeReport(run.id, 1, 'w1', { notes: { github: 'x' } });

        // Another worker completed version 2 after our read of version 1.
        await store.claimReport(run.id, 2, 'w2', at(30_000), at(0));
        await store.completeReport(run.id, 2, 'w2');
        expect(await store.claimReport(run.id, 3, 'w1', at(30_000), at(0), { ifReported: 1 })).toBe(false);

        // A claim that lapsed is still on the item: its worker may have shown something.
        await store.claimReport(run.id, 3, 'w2', at(30_000), at(0));
        expect(await store.claimReport(run.id, 3, 'w1', at(70_000), at(40_000), { ifReported: 2 })).toBe(
          false,
        );
        expect(await store.claimReport(run.id, 3, 'w1', at(70_000), at(40_000))).toBe(true);
        await store.completeReport(run.id, 3, 'w1');

        expect(await store.claimReport(run.id, 4, 'w1', at(30_000), at(0), { ifReported: 3 })).toBe(true);
      });

      it('completes a report claimed in the run’s commit only while the item is as read', async () => {
        const store = await makeStore();
        const run = await createOrFail(store, aRun());
        // The claim rides in the run item, and is read back with the run.
        const claimed = bumped(run, {
          reporting: { owner: 'w1', until: at(30_000), version: run.version + 1 },
        });
        await store.update(claimed, run.version);
        expect((await store.getRun(run.id))!.reporting).toEqual(claimed.reporting);

        // No report item yet: it is written, and expires as a claimed one does.
        expect(
          await store.completeReport(run.id, 2, 'w1', { unclaimed: { reported: 0 }, notes: { github: 'a' } }),
        ).toBe(true);
        expect(await store.getReportState(run.id)).toEqual({ reported: 2, notes: { github: 'a' } });
        // Read at 2, but another worker completed 3 since.
        await store.claimReport(run.id, 3, 'w2', at(30_000), at(0));
        await store.completeReport(run.id, 3, 'w2');
        expect(await store.completeReport(run.id, 4, 'w1', { unclaimed: { reported: 2 } })).toBe(false);
        // A claim on the item, even one that lapsed: its worker may have shown something.
        await store.claimReport(run.id, 4, 'w2', at(30_000), at(0));
        expect(await store.completeReport(run.id, 4, 'w1', { unclaimed: { reported: 3 } })).toBe(false);
        await store.completeReport(run.id, 4, 'w2');
        // Going on to a newer version claims it on the item, in the same write.
        expect(
          await store.completeReport(run.id, 5, 'w1', {
            unclaimed: { reported: 4 },
            next: { version: 7, until: at(60_000) },
          }),
        ).toBe(true);
        expect(await store.getReportState(run.id)).toEqual({
          reported: 5,
          claimOwner: 'w1',
          claimUntil: at(60_000),
          notes: { github: 'a' },
        });
        expect(await store.completeReport(run.id, 7, 'w1', { notes: {} })).toBe(true);
        expect(await store.getReportState(run.id)).toEqual({ reported: 7 });
      });
    });

    describe('effects', () => {
      const KEY: EffectRef = { scope: 'step', node: 'a', firstSeq: 1, name: 'mail' };

      /** A run whose step `owner` holds the lease on: the fence its journal writes carry. */
      async function leased(store: RunStore, owner = 'w1') {
        const run = await createOrFail(store, aRun());
        const until = new Date(Date.now() + 60_000).toISOString();
        const lease = bumped(run, { status: 'running', lease: { owner, seq: 1, until } });
        await store.update(lease, run.version);
        return { run: lease, fence: { version: lease.version, owner, now: new Date().toISOString() } };
      }

      it('has no record of an effect not done yet', async () => {
        const store = await makeStore();

        expect(await store.getEffect('run-1', KEY)).toBeUndefined();
      });

      it.each([
        { label: 'an object', result: { id: 42, url: 'https://example.test/1' } },
        { label: 'a string', result: 'done' },
        { label: 'null', result: null },
      ])('records $label and answers it to a later claim instead of a new claim', async ({ result }) => {
        const store = await makeStore();
        const { run, fence } = await leased(store);

        const first = await store.claimEffect(run.id, KEY, fence, 'c1');
        await store.recordEffect(run.id, KEY, 'c1', result);
        const again = await store.claimEffect(run.id, KEY, fence, 'c2');

        expect(first).toEqual({ outcome: 'claimed', interrupted: false });
        expect(again).toEqual({ outcome: 'done', result });
        expect(await store.getEffect(run.id, KEY)).toEqual({ result });
      });

      it('tells a claim that replaces an unrecorded one that it was interrupted', async () => {
        const store = await makeStore();
        const { run, fence } = await leased(store);
        await store.claimEffect(run.id, KEY, fence, 'c1');

        expect(await store.getEffect(run.id, KEY)).toBeUndefined();
        expect(await store.claimEffect(run.id, KEY, fence, 'c2')).toEqual({
          outcome: 'claimed',
          interrupted: true,
        });
        await expect(store.recordEffect(run.id, KEY, 'c1', 'late')).rejects.toBeInstanceOf(ConcurrencyError);
      });

      it.each([
        { label: 'another owner', owner: 'w2', versionsBack: 0, laterMs: 0 },
        { label: 'an older version', owner: 'w1', versionsBack: 1, laterMs: 0 },
        { label: 'a lease that lapsed', owner: 'w1', versionsBack: 0, laterMs: 120_000 },
      ])('refuses to claim under $label', async ({ owner, versionsBack, laterMs }) => {
        const store = await makeStore();
        const { run, fence } = await leased(store);
        const stale = {
          owner,
          version: fence.version - versionsBack,
          now: new Date(Date.now() + laterMs).toISOString(),
        };

        await expect(store.claimEffect(run.id, KEY, stale, 'c1')).rejects.toBeInstanceOf(ConcurrencyError);
        expect(await store.getEffect(run.id, KEY)).toBeUndefined();
      });

      it("never lets an older lease's claim replace a newer lease's claim", async () => {
        const store = await makeStore();
        const { run, fence } = await leased(store);
        // The lease is taken over (a newer version, another owner), and the takeover claims.
        const until = new Date(Date.now() + 60_000).toISOString();
        const takeover = { ...run, version: run.version + 1, lease: { owner: 'w2', seq: 1, until } };
        await store.update(takeover, run.version);
        const newer = { version: takeover.version, owner: 'w2', now: new Date().toISOString() };
        expect(await store.claimEffect(run.id, KEY, newer, 'c2')).toEqual({
          outcome: 'claimed',
          interrupted: false,
        });

        await expect(store.claimEffect(run.id, KEY, fence, 'c1')).rejects.toBeInstanceOf(ConcurrencyError);
        await store.recordEffect(run.id, KEY, 'c2', 'by the takeover');
        expect(await store.getEffect(run.id, KEY)).toEqual({ result: 'by the takeover' });
      });

      it('tells the takeover of a claim whose lease was lost before acting that it was interrupted', async () => {
        const store = await makeStore();
        const { run } = await leased(store);
        // A claim under a lease that had already moved on is refused, and its worker never acts...
        const lapsed = {
          version: run.version,
          owner: 'w1',
          now: new Date(Date.now() + 120_000).toISOString(),
        };
        await expect(store.claimEffect(run.id, KEY, lapsed, 'c1')).rejects.toBeInstanceOf(ConcurrencyError);
        // ...and the next lease's claim is told so, conservatively: the effect may have been started.
        const until = new Date(Date.now() + 60_000).toISOString();
        const next = { ...run, version: run.version + 1, lease: { owner: 'w2', seq: 1, until } };
        await store.update(next, run.version);
        const fence = { version: next.version, owner: 'w2', now: new Date().toISOString() };
        expect(await store.claimEffect(run.id, KEY, fence, 'c2')).toEqual({
          outcome: 'claimed',
          interrupted: true,
        });
        await expect(store.recordEffect(run.id, KEY, 'c1', 'late')).rejects.toBeInstanceOf(ConcurrencyError);
      });

      it('records what a worker did after it lost only its lease: the claim is the fence', async () => {
        const store = await makeStore();
        const { run, fence } = await leased(store);
        await store.claimEffect(run.id, KEY, fence, 'c1');
        // The lease moves on (another worker leases the step) but nobody claims the effect again.
        await store.update(
          { ...run, version: run.version + 1, lease: { owner: 'w2', until: run.lease!.until, seq: 1 } },
          run.version,
        );

        await store.recordEffect(run.id, KEY, 'c1', 'sent');
        expect(await store.getEffect(run.id, KEY)).toEqual({ result: 'sent' });
      });

      it('keeps effects of different keys and runs apart', async () => {
        const store = await makeStore();
        const { run, fence } = await leased(store);
        await store.claimEffect(run.id, KEY, fence, 'c1');
        await store.recordEffect(run.id, KEY, 'c1', 'one');

        expect(await store.claimEffect(run.id, { ...KEY, firstSeq: 2 }, fence, 'c1')).toEqual({
          outcome: 'claimed',
          interrupted: false,
        });
        expect(await store.claimEffect(run.id, { scope: 'run', name: 'mail' }, fence, 'c1')).toEqual({
          outcome: 'claimed',
          interrupted: false,
        });
        expect(await store.getEffect('run-2', KEY)).toBeUndefined();
      });
    });

    describe('kv', () => {
      const nowSeconds = () => epochSeconds(Date.now());

      it('returns undefined for a missing key', async () => {
        const store = await makeStore();

        expect(await store.kvGet('guards', 'missing')).toBeUndefined();
      });

      it('stores a value at version 1 with an unconditional put', async () => {
        const store = await makeStore();

        expect(await store.kvPut('guards', 'k', { n: 1 })).toBe(true);

        expect(await store.kvGet('guards', 'k')).toEqual({ value: { n: 1 }, version: 1 });
      });

      it('keeps the ttl given', async () => {
        const store = await makeStore();
        const ttl = nowSeconds() + 600;

        await store.kvPut('tokens', 'k', 'v', { ttl });

        expect(await store.kvGet('tokens', 'k')).toEqual({ value: 'v', version: 1, ttl });
      });

      it.each([
        {
          label: 'creates a missing item when it must not exist',
          existing: undefined,
          expected: 0,
          ok: true,
          version: 1,
        },
        {
          label: 'refuses to overwrite when it must not exist',
          existing: 1,
          expected: 0,
          ok: false,
          version: 1,
        },
        {
          label: 'overwrites at the expected version and bumps it',
          existing: 1,
          expected: 1,
          ok: true,
          version: 2,
        },
        { label: 'refuses a stale expected version', existing: 2, expected: 1, ok: false, version: 2 },
        {
          label: 'refuses an expected version for a missing item',
          existing: undefined,
          expected: 1,
          ok: false,
          version: undefined,
        },
      ])('conditional put $label', async ({ existing, expected, ok, version }) => {
        const store = await makeStore();
        for (let v = 0; v < (existing ?? 0); v++)
          await store.kvPut('work', 'k', `old${v}`, { expectedVersion: v });

        const written = await store.kvPut('work', 'k', 'new', { expectedVersion: expected });

        expect(written).toBe(ok);
        expect((await store.kvGet('work', 'k'))?.version).toBe(version);
        if (ok) expect((await store.kvGet('work', 'k'))?.value).toBe('new');
      });

      it('treats an item past its ttl as missing for a must-not-exist put', async () => {
        const store = await makeStore();
        await store.kvPut('guards', 'k', 'stale', { ttl: nowSeconds() - 10 });

        const written = await store.kvPut('guards', 'k', 'fresh', {
          expectedVersion: 0,
          ttl: nowSeconds() + 60,
        });

        expect(written).toBe(true);
        expect((await store.kvGet('guards', 'k'))?.value).toBe('fresh');
      });

      it('does not return an item past its ttl', async () => {
        const store = await makeStore();

        await store.kvPut('guards', 'k', 'v', { ttl: nowSeconds() - 1 });

        expect(await store.kvGet('guards', 'k')).toBeUndefined();
      });

      it('stops returning an item once the clock passes its ttl', async () => {
        let clock = Date.now();
        const store = await makeStore({ now: () => new Date(clock) });
        await store.kvPut('guards', 'k', 'v', { ttl: epochSeconds(clock) + 60 });

        clock += 61_000;

        expect(await store.kvGet('guards', 'k')).toBeUndefined();
        expect(await store.kvList('guards')).toEqual([]);
      });

      it.each([
        { label: 'unconditionally', opts: {}, deleted: true },
        { label: 'at the expected version', opts: { expectedVersion: 1 }, deleted: true },
        { label: 'at a stale version', opts: { expectedVersion: 7 }, deleted: false },
      ])('deletes $label: $deleted', async ({ opts, deleted }) => {
        const store = await makeStore();
        await store.kvPut('work', 'k', 'v');

        const res = await store.kvDelete('work', 'k', opts);

        expect(res).toBe(deleted);
        expect(await store.kvGet('work', 'k')).toEqual(deleted ? undefined : { value: 'v', version: 1 });
      });

      it('lists a group in key order, without other groups', async () => {
        const store = await makeStore();
        for (const k of ['b', 'c', 'a']) await store.kvPut('g1', k, k.toUpperCase());
        await store.kvPut('g2', 'a', 'other');

        const items = await store.kvList<string>('g1');

        expect(items).toEqual([
          { key: 'a', value: 'A', version: 1 },
          { key: 'b', value: 'B', version: 1 },
          { key: 'c', value: 'C', version: 1 },
        ]);
      });

      it('lists only keys with the prefix given', async () => {
        const store = await makeStore();
        for (const k of ['WORK#1', 'WORK#2', 'CB#1', 'WORKER']) await store.kvPut('g', k, k);

        const items = await store.kvList('g', { prefix: 'WORK#' });

        expect(items.map((i) => i.key)).toEqual(['WORK#1', 'WORK#2']);
      });

      it('leaves expired items out of a list', async () => {
        const store = await makeStore();
        await store.kvPut('g', 'a', 1, { ttl: nowSeconds() - 5 });
        await store.kvPut('g', 'b', 2, { ttl: nowSeconds() + 600 });
        await store.kvPut('g', 'c', 3);

        const items = await store.kvList('g');

        expect(items.map((i) => i.key)).toEqual(['b', 'c']);
      });

      it('lists at most `limit` items', async () => {
        const store = await makeStore();
        for (const k of ['a', 'b', 'c', 'd']) await store.kvPut('g', k, k);

        const items = await store.kvList('g', { limit: 3 });

        expect(items.map((i) => i.key)).toEqual(['a', 'b', 'c']);
      });

      it('applies a KV transaction whole: put, delete, and counters that start at 0', async () => {
        const store = await makeStore();
        await store.kvPut('work', 'q#1', 'waiting');

        const out = await store.kvTransact([
          { op: 'put', group: 'work', key: 'r#1', value: { id: 1 }, expectedVersion: 0 },
          { op: 'delete', group: 'work', key: 'q#1', mustExist: true },
          { op: 'add', group: 'work', key: 'c#a', by: 1, below: 2 },
        ]);

        expect(out).toEqual({ ok: true });
        expect(await store.kvGet('work', 'r#1')).toEqual({ value: { id: 1 }, version: 1 });
        expect(await store.kvGet('work', 'q#1')).toBeUndefined();
        expect(await store.kvGet('work', 'c#a')).toEqual({ value: 1, version: 1 });
      });

      it('keys a KV transaction the way kvGet does (the repository part in any case is one key)', async () => {
        const store = await makeStore();

        await store.kvTransact([
          { op: 'put', group: 'work', key: 'Acme/Widget#1', value: 'x', expectedVersion: 0 },
          { op: 'add', group: 'work', key: 'Acme/Widget#n', by: 1 },
        ]);

        expect(await store.kvGet('work', 'acme/widget#1')).toEqual({ value: 'x', version: 1 });
        expect(await store.kvGet('work', 'ACME/widget#n')).toEqual({ value: 1, version: 1 });
      });

      it('writes nothing when a condition fails, and names the writes that failed', async () => {
        const store = await makeStore();
        await store.kvTransact([{ op: 'add', group: 'work', key: 'c#a', by: 2 }]);

        const out = await store.kvTransact([
          { op: 'put', group: 'work', key: 'r#1', value: 'x', expectedVersion: 0 },
          { op: 'delete', group: 'work', key: 'q#missing', mustExist: true },
          { op: 'add', group: 'work', key: 'c#a', by: 1, below: 2 },
          { op: 'add', group: 'work', key: 'c#b', by: 1, below: 2 },
        ]);

        expect(out).toEqual({ ok: false, failed: [1, 2] });
        expect(await store.kvGet('work', 'r#1')).toBeUndefined();
        expect(await store.kvGet('work', 'c#a')).toEqual({ value: 2, version: 1 });
        expect(await store.kvGet('work', 'c#b')).toBeUndefined();
      });

      it('counts down as well as up, and a put at a stale version fails the transaction', async () => {
        const store = await makeStore();
        await store.kvPut('work', 'k', 'v1');
        await store.kvTransact([{ op: 'add', group: 'work', key: 'c', by: 3 }]);

        expect(await store.kvTransact([{ op: 'add', group: 'work', key: 'c', by: -1 }])).toEqual({
          ok: true,
        });
        expect(
          await store.kvTransact([
            { op: 'add', group: 'work', key: 'c', by: -1 },
            { op: 'put', group: 'work', key: 'k', value: 'v2', expectedVersion: 7 },
          ]),
        ).toEqual({ ok: false, failed: [1] });
        expect((await store.kvGet('work', 'c'))?.value).toBe(2);
      });

      it('lets exactly `below` of many concurrent guarded increments through', async () => {
        const store = await makeStore();

        const outs = await Promise.all(
          Array.from({ length: 12 }, (_, i) =>
            store.kvTransact([
              { op: 'add', group: 'work', key: 'c', by: 1, below: 5 },
              { op: 'put', group: 'work', key: `r#${i}`, value: i, expectedVersion: 0 },
            ]),
          ),
        );

        expect(outs.filter((o) => o.ok)).toHaveLength(5);
        expect((await store.kvGet('work', 'c'))?.value).toBe(5);
        expect(await store.kvList('work', { prefix: 'r#' })).toHaveLength(5);
      });

      it('joins a member to bounded sets once, keeps its note, and leaves them empty again', async () => {
        const store = await makeStore();
        const sets = [
          { name: 'a:coder', below: 2 },
          { name: 'r:acme/app', below: 5 },
        ];

        expect(await store.kvJoin('work', 'n', 'i1', sets, 'at1')).toBe(true);
        expect(await store.kvJoin('work', 'n', 'i1', sets, 'at2')).toBe(false); // already a member
        expect(await store.kvJoin('work', 'n', 'i2', sets)).toBe(true);
        expect(await store.kvJoin('work', 'n', 'i3', sets)).toBe(false); // a:coder is full
        expect(await store.kvJoin('work', 'n', 'i3', [{ name: 'r:acme/app', below: 3 }])).toBe(true);
        expect(await store.kvMembers('work', 'n')).toEqual({
          members: { i1: 'at1', i2: '1', i3: '1' },
          sets: { 'a:coder': ['i1', 'i2'], 'r:acme/app': ['i1', 'i2', 'i3'] },
        });

        expect(await store.kvLeave('work', 'n', 'i1', ['a:coder', 'r:acme/app'])).toBe(true);
        expect(await store.kvLeave('work', 'n', 'i1', ['a:coder', 'r:acme/app'])).toBe(false);
        await store.kvLeave('work', 'n', 'i2', ['a:coder', 'r:acme/app']);
        await store.kvLeave('work', 'n', 'i3', ['r:acme/app']);
        expect(await store.kvMembers('work', 'n')).toEqual({ members: {}, sets: {} });
        expect(await store.kvMembers('work', 'missing')).toEqual({ members: {}, sets: {} });
      });

      it('swaps one member for another in one write, the sets written whole, only while they are as read', async () => {
        const store = await makeStore();
        await store.kvJoin('work', 'n', 'i1', [{ name: 'a:coder' }, { name: 'r:acme/app' }], 'at1');
        await store.kvJoin('work', 'n', 'j1', [{ name: 'r:acme/app' }]);
        const swap = (
          from: string,
          to: string,
          was: Record<string, string[]>,
          now: Record<string, string[]>,
        ) =>
          store.kvSwap('work', 'n', {
            from,
            to,
            note: `note of ${to}`,
            sets: Object.keys({ ...was, ...now }).map((name) => ({
              name,
              was: was[name] ?? [],
              now: now[name] ?? [],
            })),
          });

        // The same agent and repository: the sets keep their size; another agent's set is new.
        expect(
          await swap(
            'i1',
            'i2',
            { 'a:coder': ['i1'], 'r:acme/app': ['i1', 'j1'], 'a:tester': [] },
            { 'a:coder': ['i2'], 'r:acme/app': ['i2', 'j1'] },
          ),
        ).toBe(true);
        expect(await store.kvMembers('work', 'n')).toEqual({
          members: { i2: 'note of i2', j1: '1' },
          sets: { 'a:coder': ['i2'], 'r:acme/app': ['i2', 'j1'] },
        });

        // Refused, nothing written: a set not as read (j1 left, or a set that is no longer absent),
        // `from` no member, `to` a member already.
        await store.kvLeave('work', 'n', 'j1', ['r:acme/app']);
        const stale = { 'a:coder': ['i2'], 'r:acme/app': ['i2', 'j1'] };
        expect(await swap('i2', 'i3', stale, { 'a:coder': ['i3'], 'r:acme/app': ['i3', 'j1'] })).toBe(false);
        expect(
          await swap('i2', 'i3', { 'a:coder': [], 'r:acme/app': ['i2'] }, { 'r:acme/app': ['i3'] }),
        ).toBe(false);
        const current = { 'a:coder': ['i2'], 'r:acme/app': ['i2'] };
        expect(await swap('i9', 'i3', current, { 'a:coder': ['i3'], 'r:acme/app': ['i3'] })).toBe(false);
        expect(await swap('i2', 'i2', current, current)).toBe(false);
        expect(await store.kvMembers('work', 'n')).toEqual({
          members: { i2: 'note of i2' },
          sets: current,
        });

        // A set emptied by the swap goes, as kvLeave's does.
        expect(await swap('i2', 'k1', current, { 'a:tester': ['k1'], 'r:acme/app': ['k1'] })).toBe(true);
        expect(await store.kvMembers('work', 'n')).toEqual({
          members: { k1: 'note of k1' },
          sets: { 'a:tester': ['k1'], 'r:acme/app': ['k1'] },
        });
      });

      it('lets one of two swaps racing from the same read win, and the loser writes nothing', async () => {
        const store = await makeStore();
        await store.kvJoin('work', 'n', 'i1', [{ name: 'a' }]);
        await store.kvJoin('work', 'n', 'j1', [{ name: 'a' }]);
        const was = ['i1', 'j1'];

        const outs = await Promise.all([
          store.kvSwap('work', 'n', {
            from: 'i1',
            to: 'i2',
            note: 'x',
            sets: [{ name: 'a', was, now: ['i2', 'j1'] }],
          }),
          store.kvSwap('work', 'n', {
            from: 'j1',
            to: 'j2',
            note: 'y',
            sets: [{ name: 'a', was, now: ['i1', 'j2'] }],
          }),
        ]);

        expect(outs.filter(Boolean)).toHaveLength(1);
        const { members, sets } = await store.kvMembers('work', 'n');
        expect(sets.a).toEqual(Object.keys(members).sort());
        expect(sets.a).toHaveLength(2);
      });

      it('lets exactly `below` of many concurrent joins into a set, each member once', async () => {
        const store = await makeStore();

        const outs = await Promise.all(
          Array.from({ length: 12 }, (_, i) =>
            store.kvJoin('work', 'n', `i${i % 8}`, [
              { name: 'a', below: 5 },
              { name: 'b', below: 9 },
            ]),
          ),
        );

        expect(outs.filter(Boolean)).toHaveLength(5);
        const { members, sets } = await store.kvMembers('work', 'n');
        expect(Object.keys(members)).toHaveLength(5);
        expect(sets.a).toEqual(Object.keys(members).sort());
        expect(sets.b).toEqual(sets.a);
      });
    });
  });
}
