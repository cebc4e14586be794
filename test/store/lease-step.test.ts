import { randomBytes } from 'node:crypto';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import type { Lease, Run } from '../../lib/engine/types.ts';
import { dynamoItemBytes } from '../../lib/store/budget.ts';
import { dynamoClient } from '../../lib/store/client.ts';
import { type DynamoRunStore, LEASE_BYTES } from '../../lib/store/dynamodb.ts';
import { unpack } from '../../lib/store/packing.ts';
import { createTestStore, recordingClient, storeTestRun, testEndpoint } from '../support/dynamo.ts';

/**
 * `leaseStep`: a step message's lease in one conditional UpdateItem, with no read of the run
 * first (lib/engine/steps.ts `leaseAtOnce`). What its condition refuses comes back as the run it
 * found, for the engine to judge as if it had read it.
 */

const T0 = Date.parse('2026-12-01T06:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
const at = iso(T0);

/** A queued run whose step 1 (node a) is pending, created as the engine creates one. */
async function pending(store: DynamoRunStore): Promise<Run> {
  const out = await store.createRun({
    run: {
      ...storeTestRun('lease', at),
      status: 'queued',
      step: { node: 'a', seq: 1, attempt: 1, notBefore: at },
    },
    events: [{ type: 'run.created', node: 'a', detail: {} }],
  });
  if (out.outcome !== 'created') throw new Error(out.outcome);
  return out.run;
}

const leaseFor = (seq: number, owner = 'w-1.1'): Lease => ({ owner, seq, until: iso(T0 + 60_000) });
const ask = (run: Run, owner?: string, seq = 1) => ({
  seq,
  version: run.version,
  lease: leaseFor(seq, owner),
  at: iso(T0 + 5),
});

async function runItem(store: DynamoRunStore, runId: string) {
  const out = await store.doc.send(
    new GetCommand({ TableName: store.tableName, Key: { pk: `RUN#${runId}`, sk: 'RUN' } }),
  );
  return out.Item!;
}

describe('leaseStep', () => {
  it('leases the step in one UpdateItem, and the run it returns is the run stored', async () => {
    const rec = recordingClient();
    const store = await createTestStore({ client: rec.client });
    const run = await pending(store);
    rec.commands.length = 0;

    const got = await store.leaseStep(run.id, ask(run));

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
    expect((await runItem(store, run.id)).la).toBe(T0 + 5);
  });

  it('is followed by commits as any lease is: the next write is the whole item again', async () => {
    const store = await createTestStore();
    const run = await pending(store);
    const leased = (await store.leaseStep(run.id, ask(run)))!.run;

    const { step: _step, lease: _lease, ...rest } = leased;
    await store.commit({
      run: { ...rest, version: leased.version + 1, status: 'succeeded', updatedAt: iso(T0 + 9) },
      expectedVersion: leased.version,
      events: [{ type: 'run.succeeded', node: 'a', detail: {} }],
    });

    expect((await runItem(store, run.id)).la).toBeUndefined();
    expect(await store.getRun(run.id)).toMatchObject({ status: 'succeeded', updatedAt: iso(T0 + 9) });
    expect((await store.listEvents(run.id)).map((e) => e.type)).toEqual(['run.created', 'run.succeeded']);
  });

  it('refuses what a first try of that version may not lease, and gives the run as it found it', async () => {
    const store = await createTestStore();
    const moved = await pending(store);
    const movedOn = await store.commit({
      run: { ...moved, version: moved.version + 1, status: 'cancelled' },
      expectedVersion: moved.version,
      events: [],
    });
    const underWay = await pending(store);
    const leased = (await store.leaseStep(underWay.id, ask(underWay, 'w-2.1')))!.run;

    // The run moved on since the message was sent (here: cancelled).
    expect(await store.leaseStep(moved.id, ask(moved))).toEqual({ leased: false, run: movedOn });
    // The step is leased already (under way, or lapsed: a takeover is onArrival's to judge).
    expect(await store.leaseStep(underWay.id, ask(leased))).toEqual({ leased: false, run: leased });
    expect(await store.leaseStep('run-none', ask(moved))).toBeNull();
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

    const got = await store.leaseStep(run.id, ask(run));

    expect(tries).toBe(2);
    expect(got?.leased).toBe(true);
    expect(got!.run.version).toBe(run.version + 1);
    // Another lease of the same version, even in the same millisecond, is not taken for its own.
    expect((await store.leaseStep(run.id, ask(run, 'w-1.2')))?.leased).toBe(false);
  });

  it('flushes the pending events of a run left with a step to lease when the lease would take its item over a KB', async () => {
    const units: Array<[string, number]> = [];
    const store = await createTestStore({ onConsumedCapacity: (op, n) => units.push([op, n]) });
    const unitsOf = (op: string) => units.filter(([o]) => o === op).map(([, n]) => n);
    let decidedByLease = 0;
    // A commit carrying one incompressible event of n bytes, over a run whose creation event is
    // still pending in its item: past some n, carrying both costs more than flushing the first.
    for (let n = 560; n <= 680; n += 4) {
      const noise = randomBytes(n).toString('base64');
      const commitOver = async (run: Run, next: Partial<Run>) => {
        const committed = await store.commit({
          run: { ...run, ...next, version: run.version + 1 },
          expectedVersion: run.version,
          events: [{ type: 'step.succeeded', node: 'a', detail: { noise } }],
        });
        const item = await runItem(store, run.id);
        const body = item.body as Uint8Array;
        return { committed, bytes: dynamoItemBytes(item), pending: pendingSeqs(body) };
      };
      // Left with a step that a message will lease.
      const queued = await pending(store);
      const step = { node: 'a', seq: 2, attempt: 1, notBefore: at };
      const a = await commitOver(queued, { status: 'queued', step });
      // The same commit leaving the run waiting: nothing adds to its item before the next write.
      const { step: _, ...created } = await pending(store);
      const b = await commitOver(created, { status: 'waiting', gate: gateOf() });
      if (!a.pending.includes(0) && b.pending.includes(0)) decidedByLease++;
      // Past here the commit's own events take the leased item over a KB: flushing would not help.
      if (a.bytes + LEASE_BYTES > 1024) continue;
      units.length = 0;
      const got = await store.leaseStep(queued.id, ask(a.committed, undefined, 2));
      expect(got?.leased).toBe(true);
      const leased = got!.run;
      await store.commit({
        run: { ...leased, version: leased.version + 1, status: 'waiting', gate: gateOf() },
        expectedVersion: leased.version,
        events: [],
      });
      expect([unitsOf('update'), unitsOf('commit')]).toEqual([[1], [1]]);
    }
    expect(decidedByLease).toBeGreaterThan(0);
  });
});

const gateOf = () => ({ node: 'a', kind: 'approval' as const, expiresAt: iso(T0 + 3_600_000) });

function pendingSeqs(body: Uint8Array): number[] {
  return (unpack<{ $events?: Array<{ seq: number }> }>(body).$events ?? []).map((e) => e.seq);
}
