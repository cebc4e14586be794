import { randomBytes } from 'node:crypto';
import { brotliCompressSync, constants, deflateSync } from 'node:zlib';
import { GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import type { Run } from '../../lib/engine/types.ts';
import { itemBytes } from '../../lib/store/budget.ts';
import { dynamoClient } from '../../lib/store/client.ts';
import { PACK_DICTIONARY } from '../../lib/store/dictionary.ts';
import { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { dictionaryId, pack, unpack } from '../../lib/store/packing.ts';
import { createTestStore, previousLayoutRunKeys, testEndpoint } from '../support/dynamo.ts';

const at = new Date().toISOString();
const titles = ['Fix the parser in `src/parser.ts`', 'Update `docs/parser.md`', 'Tidy `src/lexer.ts`'];

/** A run shaped like an issue pipeline's after its plan: the same titles in the plan, work and results. */
function aRun(): Run {
  const id = `run-${randomBytes(5).toString('hex')}`;
  const tasks = titles.map((title, i) => ({
    id: `t${i + 1}`,
    title,
    files: [`src/f${i}.ts`],
    agent: 'coder',
  }));
  return {
    id,
    workflow: 'issue-pipeline',
    status: 'running',
    node: 'execute',
    subject: { repo: 'acme/widget', issue: 7, key: 'acme/widget#7' },
    trigger: { source: 'github', actor: 'alice', event: 'issues.labeled' },
    createdAt: at,
    updatedAt: at,
    version: 3,
    eventSeq: 12,
    data: {
      event: {
        subject: {
          title: 'Parser clean-up',
          body: ['The parser needs a clean-up:', ...titles.map((t) => `- [ ] ${t}`)].join('\n'),
        },
        repo: { owner: 'acme', name: 'widget', fullName: 'acme/widget', defaultBranch: 'main' },
      },
      plan: { summary: 'Parser clean-up', tasks },
      work: {
        tasks: tasks.map((t) => ({ ...t, status: 'done', result: { conclusion: 'success', by: 'coder' } })),
      },
      taskStatus: { t1: 'done', t2: 'done', t3: 'running' },
    },
    step: { node: 'execute', seq: 12, attempt: 1, notBefore: at },
    lease: { owner: 'worker-1', until: at, seq: 12 },
  };
}

describe('the packed run item', () => {
  it('round-trips any JSON value', () => {
    const value = { a: [1, 'two', { three: null }], unicode: 'é 🚀', nested: { deep: { er: true } } };
    expect(unpack(pack(value))).toEqual(value);
  });

  it('packs with the one dictionary stored values name, and reads what Brotli packed before', () => {
    // Stored values name their dictionary by this id: the dictionary must never change.
    expect(dictionaryId(Buffer.from(PACK_DICTIONARY, 'utf8'))).toBe(3649882292);
    const value = aRun();
    const packed = pack(value);
    expect([packed[0], packed[1]! & 0x20, Buffer.from(packed).readUInt32BE(2)]).toEqual([
      0x78, 0x20, 3649882292,
    ]);
    // Values of every size the previous encoder packed (Brotli, quality 5, with the size hint),
    // as the store holds them: their first byte is never a zlib stream's 0x78.
    for (let n = 0; n < 6_000; n += 97) {
      const json = Buffer.from(
        JSON.stringify({ ...value, pad: randomBytes(n).toString('base64').slice(0, n) }),
      );
      const before = new Uint8Array(
        brotliCompressSync(json, {
          params: {
            [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
            [constants.BROTLI_PARAM_QUALITY]: 5,
            [constants.BROTLI_PARAM_SIZE_HINT]: json.length,
          },
        }),
      );
      expect(before[0]! & 0x0f).toBe(0x0b);
      expect(unpack(before)).toEqual(JSON.parse(json.toString()));
    }
    // A dictionary this version does not have is named in the error, not read as garbage.
    const other = deflateSync(Buffer.from('{}'), { dictionary: Buffer.from('another dictionary') });
    expect(() => unpack(new Uint8Array(other))).toThrow(/dictionary this version does not have/);
  });

  it('stores the run smaller than its JSON, and reads back the same run', async () => {
    const store = await createTestStore();
    const run = aRun();
    await store.createRun({ run, events: [{ type: 'run.created', node: 'intake', detail: {} }] });

    const item = (
      await store.doc.send(
        new GetCommand({ TableName: store.tableName, Key: { pk: `RUN#${run.id}`, sk: 'RUN' } }),
      )
    ).Item!;
    // What conditions and DynamoDB read stays plain; the rest is one binary attribute.
    expect(item.version).toBe(3);
    expect(item.eventSeq).toBe(13);
    expect(item.lease).toEqual(run.lease);
    expect(item.body).toBeInstanceOf(Uint8Array);
    expect(item.data).toBeUndefined();
    // DynamoDB's size of the item: names and values, the binary attribute at its length.
    const { body, ...plain } = item;
    expect(itemBytes(plain) + 'body'.length + (body as Uint8Array).byteLength).toBeLessThan(1024);

    expect(await store.getRun(run.id)).toEqual({ ...run, eventSeq: 13 });
    // Read by a process that has not seen the run: its chunks come from the table.
    const cold = new DynamoRunStore(dynamoClient(testEndpoint()), { tableName: store.tableName });
    expect(await cold.getRun(run.id)).toEqual({ ...run, eventSeq: 13 });
    expect((await cold.listRuns({ subject: run.subject.key })).map((r) => r.data)).toEqual([run.data]);
  });

  it("keeps large data values in chunks, a write's new values in one, and never writes a stored value again", async () => {
    const puts: string[] = [];
    const client = dynamoClient(testEndpoint());
    client.middlewareStack.add(
      (next) => async (args) => {
        type Put = { Item?: { sk?: { S?: string } } };
        const input = args.input as Put & { TransactItems?: Array<{ Put?: Put }> };
        for (const put of [input, ...(input.TransactItems ?? []).map((t) => t.Put ?? {})])
          if (put.Item?.sk?.S) puts.push(put.Item.sk.S);
        return next(args);
      },
      { step: 'serialize', name: 'recordPuts', priority: 'low' },
    );
    const store = await createTestStore({ client });
    const run = aRun();
    await store.createRun({ run, events: [] });
    const chunks = () => puts.filter((sk) => sk.startsWith('DATA#'));
    // event, plan and work are large, and new together: one chunk (a write is billed per KB
    // however little it holds), in the listing item written with the run (no item of its own);
    // taskStatus is small and stays in the run item.
    expect(chunks()).toHaveLength(0);
    const listing = await store.doc.send(
      new GetCommand({ TableName: store.tableName, Key: { pk: `RUN#${run.id}`, sk: 'LIST' } }),
    );
    expect(listing.Item?.values).toBeInstanceOf(Uint8Array);

    // A lease and a commit that change only small fields write no chunk again.
    const leased = await store.update({ ...run, version: 4, lease: { owner: 'w2', until: at, seq: 13 } }, 3);
    await store.commit({
      run: { ...leased, version: 5, data: { ...leased.data, taskStatus: {} } },
      expectedVersion: 4,
      events: [],
    });
    expect(chunks()).toHaveLength(0);

    // A changed large value is a chunk of its own; the unchanged ones are not written again.
    const plan = { ...(run.data.plan as object), summary: 'Parser clean-up, revised' };
    await store.commit({
      run: { ...leased, version: 6, data: { ...leased.data, plan } },
      expectedVersion: 5,
      events: [],
    });
    expect(chunks()).toHaveLength(1);

    // Two changed at once share one; by a worker that never read the run, too (it reads what the
    // version it replaces has stored before writing).
    const cold = new DynamoRunStore(client, { tableName: store.tableName });
    const work = { tasks: [...(run.data.work as { tasks: unknown[] }).tasks].reverse() };
    const budget = {
      spent: { dispatches: 3 },
      notes: titles.map((t) => `${t}: reviewed and approved by the maintainers`),
    };
    const data = { ...leased.data, plan, work, budget };
    await cold.commit({ run: { ...leased, version: 7, data }, expectedVersion: 6, events: [] });
    expect(chunks()).toHaveLength(2);
    await cold.commit({ run: { ...leased, version: 8, data }, expectedVersion: 7, events: [] });
    expect(chunks()).toHaveLength(2);

    // A value too large to share with another is alone.
    const notes = randomBytes(1500).toString('base64');
    await cold.commit({
      run: {
        ...leased,
        version: 9,
        data: { ...data, notes, budget: { ...budget, spent: { dispatches: 4 } } },
      },
      expectedVersion: 8,
      events: [],
    });
    expect(chunks()).toHaveLength(4);

    const reader = new DynamoRunStore(dynamoClient(testEndpoint()), { tableName: store.tableName });
    const read = (await reader.getRun(run.id))!;
    expect(read.data).toEqual({ ...data, notes, budget: { ...budget, spent: { dispatches: 4 } } });
    // In the order the workflow wrote its keys.
    expect(Object.keys(read.data)).toEqual([...Object.keys(run.data), 'budget', 'notes']);
  });

  it('lists a new run from an item of its own, and a run created before from its run item, however often each is written', async () => {
    const store = await createTestStore();
    const fresh = aRun();
    await store.createRun({ run: fresh, events: [] });
    // A run written before listing items: the listing keys on its run item.
    const old = aRun();
    await store.doc.send(
      new PutCommand({
        TableName: store.tableName,
        Item: { ...old, ...previousLayoutRunKeys(old) },
      }),
    );
    const item = async (id: string, sk: string) =>
      (await store.doc.send(new GetCommand({ TableName: store.tableName, Key: { pk: `RUN#${id}`, sk } })))
        .Item;

    for (const run of [fresh, old]) {
      const leased = await store.update({ ...run, version: 4, lease: { owner: 'w', until: at, seq: 13 } }, 3);
      await store.commit({ run: { ...leased, version: 5 }, expectedVersion: 4, events: [] });
      // And by a worker that never read it.
      const cold = new DynamoRunStore(dynamoClient(testEndpoint()), { tableName: store.tableName });
      await cold.commit({ run: { ...leased, version: 6 }, expectedVersion: 5, events: [] });
    }

    expect((await item(fresh.id, 'RUN'))?.gsi2pk).toBeUndefined();
    expect((await item(fresh.id, 'LIST'))?.gsi2pk).toBe('SUBJ#acme/widget#7');
    expect((await item(old.id, 'RUN'))?.gsi2pk).toBe('SUBJ#acme/widget#7');
    expect(await item(old.id, 'LIST')).toBeUndefined();
    const listed = (runs: Run[]) => runs.map((r) => r.id).filter((id) => id === fresh.id || id === old.id);
    expect(listed(await store.listRuns({ subject: 'acme/widget#7' })).sort()).toEqual(
      [fresh.id, old.id].sort(),
    );
    expect(listed(await store.listRuns({ repo: 'acme/widget' }))).toHaveLength(2);
    expect(listed(await store.listRuns({}))).toHaveLength(2);
    expect(listed(await store.listRuns({ status: 'running' }))).toHaveLength(2);
  });

  it('reads a run item written before runs were packed (every attribute plain)', async () => {
    const store = await createTestStore();
    const run = aRun();
    const sortKey = `${run.createdAt}#${run.id}`;
    await store.doc.send(
      new PutCommand({
        TableName: store.tableName,
        Item: { ...run, pk: `RUN#${run.id}`, sk: 'RUN', gsi1pk: 'ACTIVE', gsi1sk: sortKey },
      }),
    );
    expect(await store.getRun(run.id)).toEqual(run);
    expect((await store.listActive()).map((r) => r.id)).toContain(run.id);

    // The next write packs it, and a condition on its version still holds.
    const { lease: _, ...rest } = run;
    await store.update({ ...rest, version: run.version + 1 }, run.version);
    const item = (
      await store.doc.send(
        new GetCommand({ TableName: store.tableName, Key: { pk: `RUN#${run.id}`, sk: 'RUN' } }),
      )
    ).Item!;
    expect(item.body).toBeInstanceOf(Uint8Array);
    expect(item.data).toBeUndefined();
    expect(item.lease).toBeUndefined();
    expect(await store.getRun(run.id)).toEqual({ ...rest, version: run.version + 1 });
  });

  it("packs a run's events with it, and reads events items written before they were packed", async () => {
    const store = await createTestStore();
    const run = aRun();
    await store.createRun({
      run: { ...run, eventSeq: 0 },
      events: [{ type: 'run.created', node: 'intake', detail: {} }],
    });
    // An item of the old shape: a commit's events as a plain list.
    await store.doc.send(
      new PutCommand({
        TableName: store.tableName,
        Item: {
          pk: `RUN#${run.id}`,
          sk: 'EVT#00000001',
          seq: 1,
          events: [{ seq: 1, at, type: 'step.succeeded', node: 'intake', detail: { ok: true } }],
        },
      }),
    );
    // ...committed by that version: the run goes on after it.
    await store.doc.send(
      new UpdateCommand({
        TableName: store.tableName,
        Key: { pk: `RUN#${run.id}`, sk: 'RUN' },
        UpdateExpression: 'SET eventSeq = :next',
        ExpressionAttributeValues: { ':next': 2 },
      }),
    );
    // The new run's events are pending in its packed run item: no history item of their own.
    const item = (
      await store.doc.send(
        new GetCommand({ TableName: store.tableName, Key: { pk: `RUN#${run.id}`, sk: 'RUN' } }),
      )
    ).Item!;
    expect(unpack<Record<string, unknown>>(item.body).$events).toEqual([
      { seq: 0, at, type: 'run.created', node: 'intake', detail: {} },
    ]);
    const history = await store.doc.send(
      new GetCommand({ TableName: store.tableName, Key: { pk: `RUN#${run.id}`, sk: 'EVT#00000000' } }),
    );
    expect(history.Item).toBeUndefined();
    expect((await store.listEvents(run.id)).map((e) => [e.seq, e.type])).toEqual([
      [0, 'run.created'],
      [1, 'step.succeeded'],
    ]);
  });

  it("writes a new run's chunks and listing item before its run item: a refused creation writes none, a crash leaves nothing listed", async () => {
    const store = await createTestStore();
    const items = async (id: string) =>
      (
        await store.doc.send(
          new QueryCommand({
            TableName: store.tableName,
            KeyConditionExpression: 'pk = :pk',
            ExpressionAttributeValues: { ':pk': `RUN#${id}` },
          }),
        )
      ).Items ?? [];
    const first = aRun();
    await store.createRun({ run: first, events: [], idempotencyKey: 'delivery-1', lockKey: 'acme/widget#7' });
    // Its one chunk is homed in the listing item (homeChunk).
    expect((await items(first.id)).map((i) => String(i.sk).replace(/#.*/, '#')).sort()).toEqual([
      'LIST',
      'RUN',
    ]);

    // Refused by the idempotency key, and by the subject's lock: nothing of either is left.
    const duplicate = aRun();
    expect(
      (await store.createRun({ run: duplicate, events: [], idempotencyKey: 'delivery-1' })).outcome,
    ).toBe('duplicate');
    const locked = aRun();
    expect((await store.createRun({ run: locked, events: [], lockKey: 'acme/widget#7' })).outcome).toBe(
      'locked',
    );
    expect(await items(duplicate.id)).toEqual([]);
    expect(await items(locked.id)).toEqual([]);

    // A process that died between those puts and the run's: a listing item (its chunk homed in
    // it) of a run that does not exist. Listings skip it, and still fill their page with runs that do.
    const crashed = aRun();
    const dying = new DynamoRunStore(dynamoClient(testEndpoint()), { tableName: store.tableName });
    dying.doc.middlewareStack.add(
      (next) => async (args) => {
        const put = (args.input as { Item?: { sk?: unknown } }).Item;
        if (put?.sk === 'RUN') throw Object.assign(new Error('the process died'), { name: 'Killed' });
        return next(args);
      },
      { step: 'initialize', name: 'die' },
    );
    await expect(dying.createRun({ run: crashed, events: [] })).rejects.toThrow('the process died');
    expect((await items(crashed.id)).map((i) => i.sk)).toEqual(['LIST']);
    const second = aRun();
    await store.createRun({ run: second, events: [] });
    for (const query of [{ subject: 'acme/widget#7' }, { repo: 'acme/widget' }, {}])
      expect((await store.listRuns({ ...query, limit: 2 })).map((r) => r.id).sort()).toEqual(
        [first.id, second.id].sort(),
      );
  });
});
