import { randomBytes } from 'node:crypto';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import type { EventType } from '../../lib/engine/events.ts';
import { ConcurrencyError } from '../../lib/engine/store-errors.ts';
import type { NewEvent, Run } from '../../lib/engine/types.ts';
import { dynamoClient } from '../../lib/store/client.ts';
import { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { pack, unpack } from '../../lib/store/packing.ts';
import {
  createTestStore,
  previousLayoutRunKeys,
  recordingClient,
  storeTestRun,
  testEndpoint,
} from '../support/dynamo.ts';

/**
 * The run's history in DynamoDB: a commit's events are carried in the run item (pending) until a
 * later write would pay a write unit more to carry them, which flushes them to a history item
 * first (lib/store/dynamodb.ts commit). What the RunStore contract cannot see: where the events
 * are, that a stale worker's flush never loses any, and what a commit costs.
 */

const at = new Date().toISOString();

const aRun = () => storeTestRun('history', at);

const created: NewEvent = { type: 'run.created', node: 'a', detail: {} };
const small = (name: string): NewEvent => ({ type: name as EventType, node: 'a', detail: {} });
/**
 * An event of about 1 KB packed (it does not compress): with the small run item, carrying small
 * events beside it costs nothing more, and carrying another beside it always does.
 */
const large = (name: string): NewEvent => ({
  type: name as EventType,
  node: 'a',
  detail: { noise: randomBytes(1000).toString('base64') },
});

/** An event too large to carry in the run item (over 16 KB): it goes to history in its commit. */
const huge = (name: string): NewEvent => ({
  type: name as EventType,
  node: 'a',
  detail: { noise: randomBytes(15_000).toString('base64') },
});

async function created_(store: DynamoRunStore): Promise<Run> {
  const out = await store.createRun({ run: aRun(), events: [created] });
  if (out.outcome !== 'created') throw new Error(`expected a new run, got ${out.outcome}`);
  return out.run;
}

/** A new run, and its commits one version at a time. */
async function newRun(store: DynamoRunStore) {
  let run = await created_(store);
  return {
    id: run.id,
    commit: async (...events: NewEvent[]) => {
      run = await store.commit({
        run: { ...run, version: run.version + 1 },
        expectedVersion: run.version,
        events,
      });
    },
  };
}

async function runItem(store: DynamoRunStore, runId: string) {
  const out = await store.doc.send(
    new GetCommand({ TableName: store.tableName, Key: { pk: `RUN#${runId}`, sk: 'RUN' } }),
  );
  return out.Item!;
}

async function pendingSeqs(store: DynamoRunStore, runId: string): Promise<number[]> {
  const body = unpack<{ $events?: Array<{ seq: number }> }>((await runItem(store, runId)).body);
  return (body.$events ?? []).map((e) => e.seq);
}

/** The run's history items and audit events, as stored. */
async function eventItems(store: DynamoRunStore, runId: string) {
  const out = await store.doc.send(
    new QueryCommand({
      TableName: store.tableName,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :evt)',
      ExpressionAttributeValues: { ':pk': `RUN#${runId}`, ':evt': 'EVT#' },
      ConsistentRead: true,
    }),
  );
  return out.Items ?? [];
}

/** The history items (not audit events): sort key, first and last seq. */
async function historyItems(store: DynamoRunStore, runId: string) {
  return (await eventItems(store, runId))
    .filter((i) => i.audit !== true)
    .map((i) => ({ sk: i.sk, seq: i.seq, last: i.last }));
}

/** The audit events' items: sort key and the id their copies share. */
async function auditItems(store: DynamoRunStore, runId: string) {
  return (await eventItems(store, runId))
    .filter((i) => i.audit === true)
    .map((i) => ({ sk: i.sk, aid: i.aid }));
}

/** A second store over the same table: another worker, with nothing in memory. */
function otherWorker(store: DynamoRunStore): DynamoRunStore {
  return new DynamoRunStore(dynamoClient(testEndpoint()), { tableName: store.tableName });
}

describe('the run history in DynamoDB', () => {
  it('carries commits in the run item, flushes them once carrying costs more, and lists each event once', async () => {
    const units: Array<[string, number]> = [];
    const store = await createTestStore({ onConsumedCapacity: (op, n) => units.push([op, n]) });
    const run = await newRun(store);
    const { commit } = run;
    await commit(small('s1'));
    await commit(small('s2'));
    expect(await pendingSeqs(store, run.id)).toEqual([0, 1, 2]);
    await commit(large('l3'));
    expect(await pendingSeqs(store, run.id)).toEqual([0, 1, 2, 3]);
    expect(await historyItems(store, run.id)).toEqual([]);

    await commit(large('l4'));
    expect(await pendingSeqs(store, run.id)).toEqual([4]);
    expect(await historyItems(store, run.id)).toEqual([{ sk: 'EVT#00000000', seq: 0, last: 3 }]);
    await commit(large('l5'));
    expect(await pendingSeqs(store, run.id)).toEqual([5]);
    expect((await historyItems(store, run.id)).map((i) => i.sk)).toEqual(['EVT#00000000', 'EVT#00000004']);

    expect((await store.listEvents(run.id)).map((e) => [e.seq, e.type])).toEqual([
      [0, 'run.created'],
      [1, 's1'],
      [2, 's2'],
      [3, 'l3'],
      [4, 'l4'],
      [5, 'l5'],
    ]);
    expect((await otherWorker(store).listEvents(run.id, { after: 2 })).map((e) => e.type)).toEqual([
      'l3',
      'l4',
      'l5',
    ]);
    // A small commit is one single-item write of the run, under a KB: one write unit, no transaction.
    expect(
      units
        .filter(([op]) => op === 'commit')
        .map(([, n]) => n)
        .slice(0, 2),
    ).toEqual([1, 1]);
    expect(units.filter(([op]) => op === 'flush')).toHaveLength(2);
  });

  /**
   * A run at s1, and another worker that read it there. A write flushes the pending events it
   * knows whenever its own events go straight to history (too large to carry): `staleFlush` makes
   * that worker flush what it saw at a chosen moment, then lose its race.
   */
  async function staleWorkerAfterS1() {
    const store = await createTestStore();
    const run = await newRun(store);
    await run.commit(small('s1'));
    const stale = otherWorker(store);
    const seen = (await stale.getRun(run.id))!;
    const staleFlush = () =>
      stale.commit({
        run: { ...seen, version: seen.version + 1 },
        expectedVersion: seen.version,
        events: [huge('x')],
      });
    return { store, run, commit: run.commit, staleFlush };
  }

  it('keeps the longer list when a stale worker flushes after the run moved on', async () => {
    const { store, run, commit, staleFlush } = await staleWorkerAfterS1();
    await commit(small('s2'));
    await commit(huge('h3'));
    expect(await historyItems(store, run.id)).toEqual([
      { sk: 'EVT#00000000', seq: 0, last: 2 },
      { sk: 'EVT#00000003', seq: 3, last: 3 },
    ]);

    // The stale worker flushes the two events it saw, then loses its race.
    await expect(staleFlush()).rejects.toBeInstanceOf(ConcurrencyError);

    expect((await historyItems(store, run.id))[0]).toEqual({ sk: 'EVT#00000000', seq: 0, last: 2 });
    expect((await store.listEvents(run.id)).map((e) => e.type)).toEqual(['run.created', 's1', 's2', 'h3']);
  });

  it('lets the run flush the longer list after a stale worker flushed a shorter one', async () => {
    const { store, run, commit, staleFlush } = await staleWorkerAfterS1();
    await commit(small('s2'));

    await expect(staleFlush()).rejects.toBeInstanceOf(ConcurrencyError);
    expect(await historyItems(store, run.id)).toEqual([{ sk: 'EVT#00000000', seq: 0, last: 1 }]);
    expect(await pendingSeqs(store, run.id)).toEqual([0, 1, 2]);
    expect((await store.listEvents(run.id)).map((e) => e.type)).toEqual(['run.created', 's1', 's2']);

    await commit(huge('h3'));
    expect((await historyItems(store, run.id))[0]).toEqual({ sk: 'EVT#00000000', seq: 0, last: 2 });
    expect((await store.listEvents(run.id)).map((e) => e.type)).toEqual(['run.created', 's1', 's2', 'h3']);
  });

  it('reads the pending events of a version it never saw before committing over it', async () => {
    const store = await createTestStore();
    let run = await created_(store);
    run = await store.commit({
      run: { ...run, version: run.version + 1 },
      expectedVersion: run.version,
      events: [small('s1')],
    });
    const other = otherWorker(store);

    const theirs = await other.commit({
      run: { ...run, version: run.version + 1 },
      expectedVersion: run.version,
      events: [small('s2')],
    });
    await other.update({ ...theirs, version: theirs.version + 1 }, theirs.version);

    expect(await pendingSeqs(store, run.id)).toEqual([0, 1, 2]);
    expect((await store.listEvents(run.id)).map((e) => e.type)).toEqual(['run.created', 's1', 's2']);
  });

  it('refuses a write whose run does not go on from the events of the version it replaces', async () => {
    const store = await createTestStore();
    const run = await created_(store);
    const next = await store.commit({
      run: { ...run, version: 2 },
      expectedVersion: 1,
      events: [small('s1')],
    });

    // `run` is a version behind: its events would start at 1 again, and take s1's seq.
    await expect(
      store.commit({ run: { ...run, version: 3 }, expectedVersion: 2, events: [small('s2')] }),
    ).rejects.toThrow(/starts its events at 1, not 2/);
    await expect(otherWorker(store).update({ ...run, version: 3 }, 2)).rejects.toThrow(/not 2/);
    expect((await store.getRun(run.id))?.version).toBe(next.version);
    expect((await store.listEvents(run.id)).map((e) => e.type)).toEqual(['run.created', 's1']);
  });

  it("writes a commit's events too large to carry in the commit's own transaction", async () => {
    const store = await createTestStore();
    let run = await created_(store);
    run = await store.commit({
      run: { ...run, version: run.version + 1 },
      expectedVersion: run.version,
      events: [huge('huge')],
    });

    expect(await pendingSeqs(store, run.id)).toEqual([]);
    expect(await historyItems(store, run.id)).toEqual([
      { sk: 'EVT#00000000', seq: 0, last: 0 },
      { sk: 'EVT#00000001', seq: 1, last: 1 },
    ]);
    expect((await store.listEvents(run.id)).map((e) => e.type)).toEqual(['run.created', 'huge']);
  });

  it('pages through a flushed list that spans audit events without skipping or repeating one', async () => {
    const store = await createTestStore();
    const run = await newRun(store);
    const { commit } = run;
    const audit = (name: string) => store.appendEvent(run.id, { type: name as EventType, detail: {} });
    await commit(small('s1'));
    await audit('audit.a');
    await commit(small('s2'));
    await audit('audit.b');
    await commit(large('l3'));
    await audit('audit.c');
    await commit(large('l4'));
    // Events 0 to 3 were flushed in one list (EVT#0), after which audits a, b and c sort.
    expect((await historyItems(store, run.id))[0]).toEqual({ sk: 'EVT#00000000', seq: 0, last: 3 });

    const all = (await store.listEvents(run.id)).map((e) => e.type);
    expect(all).toEqual(['run.created', 's1', 'audit.a', 's2', 'audit.b', 'l3', 'audit.c', 'l4']);
    for (const limit of [1, 2, 3]) {
      const paged: string[] = [];
      let after: number | undefined;
      for (;;) {
        const page = await otherWorker(store).listEvents(run.id, {
          limit,
          ...(after !== undefined ? { after } : {}),
        });
        if (page.length === 0) break;
        paged.push(...page.map((e) => e.type));
        after = page[page.length - 1]!.seq;
      }
      expect(paged, `limit ${limit}`).toEqual(all);
    }
  });
});

describe('an audit event', () => {
  /** A client that calls `before(command, input)` ahead of sending each command (marshalled). */
  function watchedClient(before: (command: string, input: Record<string, unknown>) => Promise<void> | void) {
    const client = dynamoClient(testEndpoint());
    client.middlewareStack.add(
      (next, context) => async (args) => {
        await before(
          String((context as { commandName?: string }).commandName),
          args.input as Record<string, unknown>,
        );
        return next(args);
      },
      { step: 'deserialize', name: 'watch' },
    );
    return client;
  }
  const isAuditPut = (command: string, input: Record<string, unknown>) =>
    command === 'PutItemCommand' &&
    (input.Item as { audit?: { BOOL?: boolean } } | undefined)?.audit?.BOOL === true;

  it('is one put of its own item: no transaction, nothing a commit could lose to', async () => {
    const commands: string[] = [];
    const store = await createTestStore({ client: watchedClient((c) => void commands.push(c)) });
    const run = await newRun(store);
    await run.commit(small('s1'));
    commands.length = 0;

    await store.appendEvent(run.id, { type: 'audit' as EventType, detail: {} });

    expect(commands.filter((c) => c !== 'GetItemCommand' && c !== 'QueryCommand')).toEqual([
      'PutItemCommand',
    ]);
    await run.commit(small('s2'));
    expect((await store.listEvents(run.id)).map((e) => e.type)).toEqual(['run.created', 's1', 'audit', 's2']);
  });

  it('is written again after a commit that landed between its read of the run and its put, and listed once', async () => {
    let run: Awaited<ReturnType<typeof newRun>> | undefined;
    let raced = false;
    const store = await createTestStore({
      client: watchedClient(async (command, input) => {
        if (!isAuditPut(command, input) || raced || !run) return;
        raced = true;
        await run.commit(small('c2'), small('c3'));
      }),
    });
    run = await newRun(store);
    await run.commit(small('s1'));

    await store.appendEvent(run.id, { type: 'audit' as EventType, detail: {} });

    const events = await store.listEvents(run.id);
    expect(events.map((e) => e.type)).toEqual(['run.created', 's1', 'c2', 'c3', 'audit']);
    // A reader that had listed through c3 before the event's first copy was written finds it.
    const c3 = events.find((e) => (e.type as string) === 'c3')!;
    expect((await otherWorker(store).listEvents(run.id, { after: c3.seq })).map((e) => e.type)).toEqual([
      'audit',
    ]);
    // The first copy (before c2) is gone.
    expect(await auditItems(store, run.id)).toHaveLength(1);
  });

  it('is listed once when its first copy is left behind (the delete failed, or the process died before it)', async () => {
    let run: Awaited<ReturnType<typeof newRun>> | undefined;
    let raced = false;
    const store = await createTestStore({
      client: watchedClient(async (command, input) => {
        if (command === 'DeleteItemCommand')
          throw Object.assign(new Error('the delete failed'), { name: 'Killed' });
        if (!isAuditPut(command, input) || raced || !run) return;
        raced = true;
        await run.commit(small('c2'));
      }),
    });
    run = await newRun(store);
    await run.commit(small('s1'));

    // Recorded all the same: failing would have the caller append it again, as a second event.
    await store.appendEvent(run.id, { type: 'audit' as EventType, detail: {} });

    const copies = await auditItems(store, run.id);
    expect(copies).toHaveLength(2);
    expect(copies[0]!.aid).toBe(copies[1]!.aid);
    const reader = otherWorker(store);
    expect((await reader.listEvents(run.id)).map((e) => e.type)).toEqual([
      'run.created',
      's1',
      'c2',
      'audit',
    ]);
    const s1 = (await reader.listEvents(run.id)).find((e) => (e.type as string) === 's1')!;
    expect((await reader.listEvents(run.id, { after: s1.seq })).map((e) => e.type)).toEqual(['c2', 'audit']);
  });
});

describe('a list of events as of a version', () => {
  it('takes the events of a version this process knows without reading the run again', async () => {
    const { client, commands } = recordingClient();
    const store = await createTestStore({ client });
    const run = await newRun(store);
    await run.commit(small('s1'));
    const read = (await store.getRun(run.id))!;
    commands.length = 0;

    const events = await store.listEvents(run.id, { version: read.version });
    expect(events.map((e) => e.type)).toEqual(['run.created', 's1']);
    expect(commands).not.toContain('GetItemCommand');
    // A version it does not know (another worker's) is read as before, and lists the same.
    expect(await otherWorker(store).listEvents(run.id, { version: read.version })).toEqual(events);
  });

  it("leaves out a commit made since, and an audit event after it, for the reader's next read", async () => {
    const store = await createTestStore();
    const run = await newRun(store);
    await run.commit(small('s1'));
    const read = (await store.getRun(run.id))!;
    // After this reader's read: another worker commits, and an audit event follows that commit.
    const other = otherWorker(store);
    await other.commit({
      run: { ...read, version: read.version + 1 },
      expectedVersion: read.version,
      events: [small('c2')],
    });
    await other.appendEvent(run.id, { type: 'audit' as EventType, detail: {} });

    const first = await store.listEvents(run.id, { version: read.version });
    // Listing the audit event without c2 would have the next read, which goes on after it, skip c2.
    expect(first.map((e) => e.type)).toEqual(['run.created', 's1']);
    const now = (await store.getRun(run.id))!;
    const next = await store.listEvents(run.id, { after: first.at(-1)!.seq, version: now.version });
    expect(next.map((e) => e.type)).toEqual(['c2', 'audit']);
    // A reader that does not know the version reads the run as it is now.
    expect(
      (await otherWorker(store).listEvents(run.id, { version: read.version })).map((e) => e.type),
    ).toEqual(['run.created', 's1', 'c2', 'audit']);
  });
});

describe('a run written by the version before pending events', () => {
  it('goes on: its history items read as they were, and new events follow them', async () => {
    const store = await createTestStore();
    const { version: _v, eventSeq: _e, data, ...rest } = aRun();
    const id = rest.id;
    const old = (seq: number, type: string) => ({ seq, at, type, node: 'a', detail: {} });
    const put = (Item: Record<string, unknown>) =>
      store.doc.send(new PutCommand({ TableName: store.tableName, Item }));
    // As the previous version wrote them: the listing keys on the run item, one history item per
    // commit (no `last`), an audit event after event 2.
    await put({
      ...previousLayoutRunKeys(rest),
      version: 3,
      eventSeq: 3,
      body: pack({ ...rest, data }),
    });
    await put({
      pk: `RUN#${id}`,
      sk: 'EVT#00000000',
      seq: 0,
      body: pack([old(0, 'run.created'), old(1, 'c1')]),
    });
    await put({ pk: `RUN#${id}`, sk: 'EVT#00000002', seq: 2, body: pack([old(2, 'c2')]) });
    await put({
      pk: `RUN#${id}`,
      sk: 'EVT#00000002#00000001',
      seq: 2.5,
      audit: true,
      at,
      type: 'audit',
      detail: {},
    });

    const run = (await otherWorker(store).getRun(id))!;
    const next = await store.commit({
      run: { ...run, version: 4 },
      expectedVersion: 3,
      events: [small('c3')],
    });
    const leased = await store.update({ ...next, version: 5, lease: { owner: 'w', until: at, seq: 1 } }, 4);
    const c4 = await store.commit({
      run: { ...leased, version: 6 },
      expectedVersion: 5,
      events: [large('c4')],
    });
    await store.commit({ run: { ...c4, version: 7 }, expectedVersion: 6, events: [large('c5')] });

    const types = ['run.created', 'c1', 'c2', 'audit', 'c3', 'c4', 'c5'];
    expect((await store.listEvents(id)).map((e) => e.type)).toEqual(types);
    expect((await otherWorker(store).listEvents(id, { after: 2 })).map((e) => e.type)).toEqual(
      types.slice(3),
    );
    const paged: string[] = [];
    let after: number | undefined;
    for (;;) {
      const page = await otherWorker(store).listEvents(id, {
        limit: 2,
        ...(after !== undefined ? { after } : {}),
      });
      if (page.length === 0) break;
      paged.push(...page.map((e) => e.type));
      after = page[page.length - 1]!.seq;
    }
    expect(paged).toEqual(types);
    expect((await runItem(store, id)).gsi2pk).toBe(`SUBJ#${rest.subject.key}`);
    expect((await store.listRuns({ subject: rest.subject.key })).map((r) => r.id)).toEqual([id]);
  });
});

describe('a run write whose answer is lost after DynamoDB applied it', () => {
  /**
   * A client whose next PutItem of a run item reaches DynamoDB Local and is applied, and whose
   * answer is then lost (a timeout): the SDK tries again, and the condition the first try made
   * false refuses the second.
   */
  function losingClient(
    which: (item: Record<string, AttributeValue>) => boolean = (item) => item.sk?.S === 'RUN',
  ) {
    const client = dynamoClient(testEndpoint());
    let armed = false;
    let tries = 0;
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const command = String((context as { commandName?: string }).commandName);
        const input = args.input as { Item?: Record<string, AttributeValue> };
        if (command !== 'PutItemCommand' || !input.Item || !which(input.Item) || !armed) return next(args);
        tries++;
        const out = await next(args);
        if (tries > 1) {
          armed = false;
          return out;
        }
        throw Object.assign(new Error('the answer was lost'), { name: 'TimeoutError', $metadata: {} });
      },
      { step: 'deserialize', name: 'loseAnswer' },
    );
    return {
      client,
      arm: () => {
        armed = true;
        tries = 0;
      },
      tries: () => tries,
    };
  }

  it('is the commit: the refused retry finds its own item, not a lost race', async () => {
    const l = losingClient();
    const store = await createTestStore({ client: l.client });
    let run = await created_(store);
    l.arm();

    run = await store.commit({
      run: { ...run, version: run.version + 1 },
      expectedVersion: run.version,
      events: [small('s1')],
    });

    expect(l.tries()).toBe(2);
    expect(run.version).toBe(2);
    expect((await store.listEvents(run.id)).map((e) => e.type)).toEqual(['run.created', 's1']);
    // The store goes on from it as from any commit.
    await store.commit({ run: { ...run, version: 3 }, expectedVersion: 2, events: [small('s2')] });
    expect((await store.listEvents(run.id)).map((e) => e.type)).toEqual(['run.created', 's1', 's2']);
  });

  it('is the lease write', async () => {
    const l = losingClient();
    const store = await createTestStore({ client: l.client });
    const run = await created_(store);
    l.arm();

    const leased = await store.update({ ...run, version: 2, lease: { owner: 'w', until: at, seq: 1 } }, 1);

    expect(l.tries()).toBe(2);
    expect(await store.getRun(run.id)).toEqual(leased);
  });

  it("is the audit event's put: one event, not a second after the first", async () => {
    const l = losingClient((item) => item.audit?.BOOL === true);
    const store = await createTestStore({ client: l.client });
    const run = await created_(store);
    l.arm();

    await store.appendEvent(run.id, { type: 'audit' as EventType, detail: {} });

    expect(l.tries()).toBe(2);
    expect((await store.listEvents(run.id)).map((e) => e.type)).toEqual(['run.created', 'audit']);
    expect(await auditItems(store, run.id)).toHaveLength(1);
  });

  it('still loses to another writer of the same version', async () => {
    const l = losingClient();
    const store = await createTestStore({ client: l.client });
    const run = await created_(store);
    await otherWorker(store).commit({
      run: { ...run, version: 2 },
      expectedVersion: 1,
      events: [small('theirs')],
    });

    await expect(
      store.commit({ run: { ...run, version: 2 }, expectedVersion: 1, events: [small('ours')] }),
    ).rejects.toBeInstanceOf(ConcurrencyError);
    await expect(store.update({ ...run, version: 2 }, 1)).rejects.toBeInstanceOf(ConcurrencyError);
  });
});

describe('a chunk homed in the history item its commit flushes', () => {
  /** About 450 bytes packed (random bytes do not compress): two of them pass a KB with the run. */
  const medium = (name: string): NewEvent => ({
    type: name as EventType,
    node: 'a',
    detail: { noise: randomBytes(450).toString('base64') },
  });
  /** A data value large enough to be a chunk (over 200 bytes of JSON), about 230 bytes packed. */
  const value = (n: number) => ({ n, text: randomBytes(160).toString('base64') });

  async function partition(store: DynamoRunStore, runId: string) {
    const out = await store.doc.send(
      new QueryCommand({
        TableName: store.tableName,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': `RUN#${runId}` },
      }),
    );
    return out.Items ?? [];
  }

  it('writes the flushed events and a new value as one item, which another process reads the run from', async () => {
    const writes: string[] = [];
    const store = await createTestStore({ onConsumedCapacity: (op) => writes.push(op) });
    let run = await created_(store);
    run = await store.commit({ run: { ...run, version: 2 }, expectedVersion: 1, events: [medium('m1')] });
    const result = value(1);
    writes.length = 0;
    // Carrying m1 beside m2 would pass a KB, so m1 is flushed; the new value goes with it.
    run = await store.commit({
      run: { ...run, version: 3, data: { result } },
      expectedVersion: 2,
      events: [medium('m2')],
    });

    expect(writes).toEqual(['flush', 'commit']);
    const items = await partition(store, run.id);
    expect(items.filter((i) => String(i.sk).startsWith('DATA#'))).toEqual([]);
    const history = items.filter((i) => String(i.sk).startsWith('EVT#'));
    expect(history).toHaveLength(1);
    expect(history[0]!.values).toBeInstanceOf(Uint8Array);
    const refs = unpack<{ $chunks: Record<string, string> }>((await runItem(store, run.id)).body).$chunks;
    expect(refs.result).toMatch(/^~[0-9a-z]+:/);

    // Another worker (nothing cached) reads the run and its whole history.
    const other = new DynamoRunStore(dynamoClient(testEndpoint()), {
      tableName: store.tableName,
      onConsumedCapacity: (op) => writes.push(op),
    });
    expect((await other.getRun(run.id))?.data).toEqual({ result });
    expect((await other.listEvents(run.id)).map((e) => e.type)).toEqual(['run.created', 'm1', 'm2']);

    // A later write keeps the value where it is: nothing is written for it again.
    writes.length = 0;
    const after = await other.commit({
      run: { ...(await other.getRun(run.id))!, version: 4, data: { result, more: 1 } },
      expectedVersion: 3,
      events: [small('s4')],
    });
    expect(writes).toEqual(['commit']);
    expect((await store.getRun(after.id))?.data).toEqual({ result, more: 1 });
  });

  it('writes the value as a chunk of its own when another write of the version flushed the same events', async () => {
    const store = await createTestStore();
    let run = await created_(store);
    run = await store.commit({ run: { ...run, version: 2 }, expectedVersion: 1, events: [medium('m1')] });
    // A worker that loses the race to this commit flushed m1 first (with nothing homed).
    const other = new DynamoRunStore(dynamoClient(testEndpoint()), { tableName: store.tableName });
    await expect(
      other.commit({
        run: { ...(await other.getRun(run.id))!, version: 3, data: { result: value(0) } },
        expectedVersion: 2,
        events: [medium('x2')],
      }),
    ).resolves.toBeDefined();
    // This store never saw version 3: its own write of version 3 loses, and it tries again over it.
    const mine = value(2);
    await expect(
      store.commit({
        run: { ...run, version: 3, data: { result: mine } },
        expectedVersion: 2,
        events: [medium('m2')],
      }),
    ).rejects.toBeInstanceOf(ConcurrencyError);
    // Its flush of m1 was refused (the other's is there, holding the other's value), so its value
    // went to a chunk of its own before the run write that lost.
    const items = await partition(store, run.id);
    expect(items.filter((i) => String(i.sk).startsWith('DATA#'))).toHaveLength(1);
    expect(items.filter((i) => String(i.sk).startsWith('EVT#') && i.values)).toHaveLength(1);
    const latest = (await store.getRun(run.id))!;
    const next = await store.commit({
      run: { ...latest, version: 4, data: { result: mine } },
      expectedVersion: 3,
      events: [medium('m3')],
    });
    const fresh = new DynamoRunStore(dynamoClient(testEndpoint()), { tableName: store.tableName });
    expect((await fresh.getRun(next.id))?.data).toEqual({ result: mine });
    expect((await fresh.listEvents(next.id)).map((e) => e.type)).toEqual(['run.created', 'm1', 'x2', 'm3']);
  });
});
