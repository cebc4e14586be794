import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import type { Lease, Run } from '../../lib/engine/types.ts';
import { dynamoClient } from '../../lib/store/client.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { createTestStore, recordingClient, storeTestRun, testEndpoint } from '../support/dynamo.ts';

/**
 * `leaseStep`: a step message's lease in one conditional UpdateItem, with no read of the run
 * first (lib/engine/steps.ts `leaseAtOnce`). What its condition refuses comes back as the run it
 * found, for the engine to judge as if it had read it.
 */

const T0 = Date.parse('2026-12-01T06:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
const at = iso(T0);

/** A queued run whose step 1 (node a) is due at `due`, committed by a real commit. */
async function pending(store: DynamoRunStore, due = T0, over: Partial<Run> = {}): Promise<Run> {
  const base = { ...storeTestRun('lease', at), status: 'queued' as const };
  const out = await store.createRun({
    run: { ...base, step: { node: 'a', seq: 1, attempt: 1, notBefore: iso(due) }, ...over },
    events: [{ type: 'run.created', node: 'a', detail: {} }],
  });
  if (out.outcome !== 'created') throw new Error(out.outcome);
  return out.run;
}

const leaseFor = (seq: number, owner = 'w-1.1'): Lease => ({ owner, seq, until: iso(T0 + 60_000) });
const ask = (seq: number, owner?: string) => ({
  seq,
  lease: leaseFor(seq, owner),
  at: iso(T0 + 5),
  dueBy: T0 + 1_000,
});

async function runItem(store: DynamoRunStore, runId: string) {
  const out = await store.doc.send(
    new GetCommand({ TableName: store.tableName, Key: { pk: `RUN#${runId}`, sk: 'RUN' } }),
  );
  return out.Item!;
}

describe('leaseStep', () => {
  it('leases a due step in one UpdateItem, and the run it returns is the run stored', async () => {
    const rec = recordingClient();
    const store = await createTestStore({ client: rec.client });
    const run = await pending(store);
    rec.commands.length = 0;

    const got = await store.leaseStep(run.id, ask(1));

    expect(rec.commands).toEqual(['UpdateItemCommand']);
    expect(got?.leased).toBe(true);
    expect(got!.run).toEqual({
      ...run,
      version: run.version + 1,
      status: 'running',
      updatedAt: iso(T0 + 5),
      lease: leaseFor(1),
    });
    expect(await store.getRun(run.id)).toEqual(got!.run);
  });

  it('keeps the pending step on the item as plain attributes, and not in the run', async () => {
    const store = await createTestStore();
    const run = await pending(store, T0 + 500);

    expect(await runItem(store, run.id)).toMatchObject({ ps: 1, pa: T0 + 500 });
    const read = (await store.getRun(run.id))!;
    expect(read).not.toHaveProperty('ps');
    expect(read).not.toHaveProperty('pa');
  });

  it('is followed by commits as any lease is: the next write is the whole item again', async () => {
    const store = await createTestStore();
    const run = await pending(store);
    const leased = (await store.leaseStep(run.id, ask(1)))!.run;

    await store.commit({
      run: { ...leased, version: leased.version + 1, status: 'succeeded', updatedAt: iso(T0 + 9) },
      expectedVersion: leased.version,
      events: [{ type: 'run.succeeded', node: 'a', detail: {} }],
    });

    const item = await runItem(store, run.id);
    expect(item.status).toBeUndefined(); // only in the packed body again
    expect(item.ps).toBeUndefined(); // a finished run has no pending step
    expect((await store.getRun(run.id))?.status).toBe('succeeded');
    expect((await store.listEvents(run.id)).map((e) => e.type)).toEqual(['run.created', 'run.succeeded']);
  });

  it('refuses what a first try may not lease, and gives the run as it found it', async () => {
    const store = await createTestStore();
    const early = await pending(store, T0 + 5_000);
    const stale = await pending(store);
    const underWay = await pending(store);
    const leasedOnce = (await store.leaseStep(underWay.id, ask(1, 'w-2.1')))!.run;
    const waiting = await pending(store, T0, { status: 'waiting' });

    for (const [run, seq] of [
      [early, 1],
      [stale, 2],
      [leasedOnce, 1],
      [waiting, 1],
    ] as const) {
      const got = await store.leaseStep(run.id, ask(seq));
      expect(got).toEqual({ leased: false, run });
    }
    expect(await store.leaseStep('run-none', ask(1))).toBeNull();
  });

  it('refuses a run written before the pending step was on the item: the engine reads it as before', async () => {
    const store = await createTestStore();
    const run = await pending(store);
    const { ps: _ps, pa: _pa, ...older } = await runItem(store, run.id);
    await store.doc.send(new PutCommand({ TableName: store.tableName, Item: older }));

    expect(await store.leaseStep(run.id, ask(1))).toEqual({ leased: false, run });
  });

  it('counts its own write as leased when DynamoDB applied it but the answer was lost', async () => {
    const client = dynamoClient(testEndpoint());
    let tries = 0;
    let armed = false;
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const command = String((context as { commandName?: string }).commandName);
        const input = args.input as { Key?: Record<string, AttributeValue> };
        if (!armed || command !== 'UpdateItemCommand' || input.Key?.sk?.S !== 'RUN') return next(args);
        tries++;
        const out = await next(args);
        if (tries > 1) return out;
        throw Object.assign(new Error('the answer was lost'), { name: 'TimeoutError', $metadata: {} });
      },
      { step: 'deserialize', name: 'loseAnswer' },
    );
    const store = await createTestStore({ client });
    const run = await pending(store);
    armed = true;

    const got = await store.leaseStep(run.id, ask(1));

    expect(tries).toBe(2);
    expect(got?.leased).toBe(true);
    expect(got!.run.version).toBe(run.version + 1);
    // Another lease of the same step, even in the same millisecond, is not taken for its own.
    expect((await store.leaseStep(run.id, ask(1, 'w-1.2')))?.leased).toBe(false);
  });
});
