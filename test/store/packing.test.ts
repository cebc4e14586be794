import { randomBytes } from 'node:crypto';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import type { Run } from '../../lib/engine/types.ts';
import { itemBytes } from '../../lib/store/budget.ts';
import { pack, unpack } from '../../lib/store/packing.ts';
import { createTestStore } from '../support/dynamo.ts';

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
      event: { subject: { title: 'Parser clean-up', body: titles.map((t) => `- [ ] ${t}`).join('\n') } },
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
    expect((item.body as Uint8Array).byteLength).toBeLessThan(itemBytes(run) / 2);

    expect(await store.getRun(run.id)).toEqual({ ...run, eventSeq: 13 });
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
    await store.update({ ...run, version: run.version + 1, lease: undefined }, run.version);
    const item = (
      await store.doc.send(
        new GetCommand({ TableName: store.tableName, Key: { pk: `RUN#${run.id}`, sk: 'RUN' } }),
      )
    ).Item!;
    expect(item.body).toBeInstanceOf(Uint8Array);
    expect(item.data).toBeUndefined();
    expect(item.lease).toBeUndefined();
    const { lease: _, ...rest } = run;
    expect(await store.getRun(run.id)).toEqual({ ...rest, version: run.version + 1 });
  });
});
