import { createHash, randomUUID } from 'node:crypto';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { makeHandler } from '../../lib/app/worker-function.ts';
import type { Engine } from '../../lib/engine/engine.ts';
import type { WorkflowDefinition } from '../../lib/engine/workflow.ts';
import { INVOKED_SOURCE, type InvokedMessage } from '../../lib/queue/invoked.ts';
import type { WorkMessage } from '../../lib/queue/port.ts';
import { type Harness, harness } from '../support/harness.ts';

const QUEUE_ARN = 'arn:aws:sqs:eu-west-1:123456789012:switchyard-work';

/** A record as Lambda's SQS event source delivers it. */
function sqsRecord(body: string, receiveCount = 1): SQSRecord {
  const sent = Date.now() - 1_500;
  return {
    messageId: randomUUID(),
    receiptHandle: `AQEB${Buffer.from(randomUUID()).toString('base64')}`,
    body,
    attributes: {
      ApproximateReceiveCount: String(receiveCount),
      SentTimestamp: String(sent),
      SenderId: 'AROAEXAMPLEID:switchyard-worker',
      ApproximateFirstReceiveTimestamp: String(sent + 20),
    },
    messageAttributes: {},
    md5OfBody: createHash('md5').update(body, 'utf8').digest('hex'),
    eventSource: 'aws:sqs',
    eventSourceARN: QUEUE_ARN,
    awsRegion: 'eu-west-1',
  };
}

const sqsEvent = (records: SQSRecord[]): SQSEvent => ({ Records: records });

/** The event of a direct (asynchronous) invocation of the worker: lib/queue/invoke.ts. */
const invoked = (body: string): InvokedMessage => ({ source: INVOKED_SOURCE, message: JSON.parse(body) });

/**
 * The record Lambda's on-failure destination puts on the queue for a direct invocation that
 * failed (the shape of AWS's "Capturing records of Lambda asynchronous invocations" page).
 */
function destinationRecord(body: string, tries: number, receiveCount = 1): SQSRecord {
  return sqsRecord(
    JSON.stringify({
      version: '1.0',
      timestamp: new Date().toISOString(),
      requestContext: {
        requestId: randomUUID(),
        functionArn: `${context.invokedFunctionArn}:$LATEST`,
        condition: 'RetriesExhausted',
        approximateInvokeCount: tries,
      },
      requestPayload: invoked(body),
      responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
      responsePayload: { errorType: 'StoreError', errorMessage: 'Throughput exceeds the current capacity' },
    }),
    receiveCount,
  );
}

const context: Context = {
  callbackWaitsForEmptyEventLoop: true,
  functionName: 'switchyard-worker',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:switchyard-worker',
  memoryLimitInMB: '512',
  awsRequestId: randomUUID(),
  logGroupName: '/aws/lambda/switchyard-worker',
  logStreamName: '2026/01/01/[$LATEST]0123456789abcdef',
  getRemainingTimeInMillis: () => 60_000,
  done: () => {},
  fail: () => {},
  succeed: () => {},
};

/** first → second; counts how often `first` really ran. */
let firstRuns = 0;
const TWO_STEPS: WorkflowDefinition<unknown> = {
  name: 'two-steps',
  version: 1,
  start: 'first',
  nodes: {
    first: {
      handler: async () => {
        firstRuns++;
        return { output: { first: true } };
      },
    },
    second: { handler: async () => ({ output: { second: true } }) },
  },
  edges: [{ from: 'first', to: 'second' }],
};

describe('worker function', () => {
  let h: Harness<unknown>;
  let handler: ReturnType<typeof makeHandler>;

  beforeEach(async () => {
    firstRuns = 0;
    // No consumer: what the engine enqueues waits in `pending`, to be handed to the function as SQS would.
    h = await harness<unknown>([TWO_STEPS], { autoConsume: false });
    handler = makeHandler(async () => h.engine as Engine<unknown>);
  });

  /** Start a run and take the step message the engine enqueued for it. */
  async function startedRun(issue: number): Promise<{ runId: string; body: string }> {
    const { run } = await h.engine.startRun({
      workflow: 'two-steps',
      subject: `acme/app#${issue}`,
      trigger: { source: 'test' },
    });
    const message = h.queue.pending.find((m) => m.runId === run.id);
    if (!message) throw new Error(`no message enqueued for ${run.id}`);
    return { runId: run.id, body: JSON.stringify(message) };
  }

  const nodeOf = async (runId: string) => (await h.store.getRun(runId))?.node;

  it('handles every step message of the batch and reports no failures', async () => {
    const a = await startedRun(1);
    const b = await startedRun(2);

    const response = await handler(sqsEvent([sqsRecord(a.body), sqsRecord(b.body)]), context);

    expect(response).toEqual({ batchItemFailures: [] });
    expect([await nodeOf(a.runId), await nodeOf(b.runId)]).toEqual(['second', 'second']);
  });

  it.each([
    ['text that is not JSON', 'hello from a stranger'],
    ['an empty body', ''],
    ['an unknown kind', '{"kind":"nudge","runId":"r1"}'],
    ['a step without its seq', '{"kind":"step","runId":"r1"}'],
    ['a report whose version is a string', '{"kind":"report","runId":"r1","version":"3"}'],
  ])(
    'reports only a record holding %s as a batch item failure; the others are handled',
    async (_what, bad) => {
      const a = await startedRun(1);
      const b = await startedRun(2);
      const malformed = sqsRecord(bad);

      const response = await handler(sqsEvent([sqsRecord(a.body), malformed, sqsRecord(b.body)]), context);

      expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: malformed.messageId }] });
      expect([await nodeOf(a.runId), await nodeOf(b.runId)]).toEqual(['second', 'second']);
    },
  );

  it('fails the whole batch when no record of it could be handled', async () => {
    const event = sqsEvent([sqsRecord('not json'), sqsRecord('{"kind":"step"}')]);

    await expect(handler(event, context)).rejects.toThrow(/All records failed processing/);
  });

  it('runs a step once when its message comes twice in one batch', async () => {
    const a = await startedRun(1);

    const response = await handler(sqsEvent([sqsRecord(a.body), sqsRecord(a.body, 2)]), context);

    expect(response).toEqual({ batchItemFailures: [] });
    expect(firstRuns).toBe(1);
    const events = await h.store.listEvents(a.runId);
    expect(events.filter((e) => e.type === 'step.succeeded').map((e) => e.node)).toEqual(['first']);
  });

  it('treats a message for a step already taken as a no-op, not a failure', async () => {
    const a = await startedRun(1);
    await handler(sqsEvent([sqsRecord(a.body)]), context);

    const response = await handler(sqsEvent([sqsRecord(a.body, 2)]), context);

    expect(response).toEqual({ batchItemFailures: [] });
    expect(firstRuns).toBe(1);
    expect(await nodeOf(a.runId)).toBe('second');
  });

  it('handles a direct invocation: its one message, nothing to report back to SQS', async () => {
    const a = await startedRun(1);

    expect(await handler(invoked(a.body), context)).toBeUndefined();

    expect(await nodeOf(a.runId)).toBe('second');
    expect(firstRuns).toBe(1);
  });

  it('fails a direct invocation it could not handle, so that Lambda sends the event on to the queue', async () => {
    const a = await startedRun(1);
    const failing = makeHandler(async () => {
      throw new Error('the app did not load');
    });

    await expect(failing(invoked(a.body), context)).rejects.toThrow(/did not load/);
    await expect(
      handler({ source: INVOKED_SOURCE, message: { kind: 'step', runId: a.runId } } as never, context),
    ).rejects.toThrow(/not a work message/);
    expect(firstRuns).toBe(0);
  });

  it('handles the destination record of a failed direct invocation as its message, once', async () => {
    const a = await startedRun(1);

    const response = await handler(
      sqsEvent([destinationRecord(a.body, 1), destinationRecord(a.body, 1, 2)]),
      context,
    );

    expect(response).toEqual({ batchItemFailures: [] });
    expect(firstRuns).toBe(1);
    expect(await nodeOf(a.runId)).toBe('second');
  });

  it('handles a report message of a finished run: the run leaves the active index', async () => {
    const a = await startedRun(1);
    await handler(sqsEvent([sqsRecord(a.body)]), context);
    const next = h.queue.pending.find((m) => m.runId === a.runId && m.kind === 'step' && m.seq === 2);
    await handler(sqsEvent([sqsRecord(JSON.stringify(next))]), context);
    const reportMessage: WorkMessage | undefined = h.queue.pending.find(
      (m) => m.runId === a.runId && m.kind === 'report',
    );

    const response = await handler(sqsEvent([sqsRecord(JSON.stringify(reportMessage))]), context);

    expect(response).toEqual({ batchItemFailures: [] });
    expect((await h.store.getRun(a.runId))?.status).toBe('succeeded');
    expect((await h.store.listActive()).map((r) => r.id)).not.toContain(a.runId);
  });
});

describe('worker function, with steps run in a row (chainSteps)', () => {
  it("lets a step run the next one only while Lambda's remaining time covers it", async () => {
    const h = await harness<unknown>([TWO_STEPS], { autoConsume: false, chainSteps: 8 });
    const handler = makeHandler(async () => h.engine as Engine<unknown>);
    const start = async (issue: number) => {
      const { run } = await h.engine.startRun({
        workflow: 'two-steps',
        subject: `acme/app#${issue}`,
        trigger: { source: 'test' },
      });
      return { runId: run.id, body: JSON.stringify(h.queue.pending.find((m) => m.runId === run.id)) };
    };
    const roomy = await start(1);
    const tight = await start(2);

    // 60 s left covers `second` (30 s timeout, 5 s lease grace, 5 s margin); 20 s does not.
    await handler(sqsEvent([sqsRecord(roomy.body)]), context);
    await handler(sqsEvent([sqsRecord(tight.body)]), { ...context, getRemainingTimeInMillis: () => 20_000 });

    expect((await h.store.getRun(roomy.runId))?.status).toBe('succeeded');
    const waiting = await h.store.getRun(tight.runId);
    expect(waiting).toMatchObject({ status: 'running', node: 'second' });
    expect(waiting?.lease).toBeUndefined();
    expect(h.queue.pending).toContainEqual({
      kind: 'step',
      runId: tight.runId,
      seq: waiting!.step!.seq,
      workflow: 'two-steps',
      node: 'second',
      version: waiting!.version,
      due: Date.parse(waiting!.step!.notBefore),
    });
  });
});

describe('worker function, for a lazyLease node', () => {
  const LAZY: WorkflowDefinition<unknown> = {
    name: 'lazy-steps',
    version: 1,
    start: 'first',
    nodes: {
      first: { handler: async () => ({ output: { first: true } }), lazyLease: true },
      second: { handler: async () => ({ output: { second: true } }) },
    },
    edges: [{ from: 'first', to: 'second' }],
  };

  /** Two runs of LAZY, each at its first step, and the bodies of their messages (not yet handled). */
  async function twoLazyRuns() {
    const h = await harness<unknown>([LAZY], { autoConsume: false });
    const handler = makeHandler(async () => h.engine as Engine<unknown>);
    const bodies: string[] = [];
    for (const issue of [1, 2]) {
      const { run } = await h.engine.startRun({
        workflow: 'lazy-steps',
        subject: `acme/app#${issue}`,
        trigger: { source: 'test' },
      });
      bodies.push(JSON.stringify(h.queue.pending.find((m) => m.runId === run.id)));
    }
    return { h, handler, bodies };
  }

  it("runs a first delivery from the run item its body carries, and leases a redelivery first (SQS's ApproximateReceiveCount)", async () => {
    const { h, handler, bodies } = await twoLazyRuns();
    const leases = vi.spyOn(h.store, 'leaseStep');
    const reads = vi.spyOn(h.store, 'getRun');

    // Lambda's context leaves too little time to chain the next step: one step per record.
    const short = { ...context, getRemainingTimeInMillis: () => 1_000 };
    expect(await handler(sqsEvent([sqsRecord(bodies[0]!)]), short)).toEqual({ batchItemFailures: [] });
    expect([leases.mock.calls.length, reads.mock.calls.length]).toEqual([0, 0]);

    expect(await handler(sqsEvent([sqsRecord(bodies[1]!, 2)]), short)).toEqual({ batchItemFailures: [] });
    expect(leases).toHaveBeenCalledTimes(1);
    for (const body of bodies) {
      const { runId } = JSON.parse(body) as { runId: string };
      expect((await h.store.getRun(runId))?.node).toBe('second');
    }
  });

  it("runs a direct invocation as a first delivery, and leases its on-failure destination record's step first (a redelivery)", async () => {
    const { h, handler, bodies } = await twoLazyRuns();
    const leases = vi.spyOn(h.store, 'leaseStep');
    const short = { ...context, getRemainingTimeInMillis: () => 1_000 };

    expect(await handler(invoked(bodies[0]!), short)).toBeUndefined();
    expect(leases).not.toHaveBeenCalled();

    // Its first SQS receive, after one failed invocation: the second delivery.
    expect(await handler(sqsEvent([destinationRecord(bodies[1]!, 1)]), short)).toEqual({
      batchItemFailures: [],
    });
    expect(leases).toHaveBeenCalledTimes(1);
    for (const body of bodies) {
      const { runId } = JSON.parse(body) as { runId: string };
      expect((await h.store.getRun(runId))?.node).toBe('second');
    }
  });
});
