import { randomBytes } from 'node:crypto';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { queueFromEnv } from '../../lib/app/core.ts';
import { QueueError } from '../../lib/queue/errors.ts';
import { InvokeQueue } from '../../lib/queue/invoke.ts';
import { INVOKED_SOURCE, invokedMessage, messageOfRecord } from '../../lib/queue/invoked.ts';
import { InMemoryQueue } from '../../lib/queue/memory.ts';
import {
  MAX_CARRIED_ITEM_BYTES,
  type Outgoing,
  parseWorkMessage,
  type WorkMessage,
} from '../../lib/queue/port.ts';
import { SqsQueue } from '../../lib/queue/sqs.ts';
import { FakeLambda } from '../support/fake-lambda.ts';
import { FakeSqs } from '../support/fake-sqs.ts';
import type { Arrival } from './contract.ts';
import { stepQueueContract } from './contract.ts';

const step = (runId: string, seq: number): WorkMessage => ({ kind: 'step', runId, seq });

/** A promise the test resolves by hand, to hold a consumer mid-delivery. */
function latch(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** Fails the test instead of hanging it when `promise` does not settle within `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ------------------------------------------------------------------------------ the contract

/** 900 s of delay is 90 ms here. */
const TIME_SCALE = 0.0001;

stepQueueContract('InMemoryQueue', async () => {
  const queue = new InMemoryQueue({ timeScale: TIME_SCALE });
  const seen: WorkMessage[] = [];
  queue.consume(async (m) => {
    seen.push(m);
  });
  return {
    queue,
    arrivals: async () => {
      await queue.idle();
      // The consumer gets the very object that was sent; its entry in `sent` has the delay it was given.
      return seen.map((message): Arrival => {
        const out = queue.sent.find((o) => o.message === message);
        return { message, delaySeconds: out?.delaySeconds ?? 0 };
      });
    },
    close: async () => queue.stop(),
  };
});

const fake = new FakeSqs();
beforeAll(async () => {
  await fake.start();
});
afterAll(async () => {
  await fake.stop();
});

function sqsClient(): SQSClient {
  return new SQSClient({
    endpoint: fake.url,
    region: 'local',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
  });
}

stepQueueContract('SqsQueue against a loopback SQS', async () => {
  const client = sqsClient();
  const queueUrl = fake.createQueue(`work-${randomBytes(4).toString('hex')}`);
  return {
    queue: new SqsQueue(client, queueUrl),
    // The worker reads bodies with parseWorkMessage: arriving means surviving that round trip.
    arrivals: async () =>
      fake.accepted
        .filter((m) => m.queueUrl === queueUrl)
        .map((m) => ({ message: parseWorkMessage(m.body), delaySeconds: m.delaySeconds })),
    close: async () => client.destroy(),
  };
});

const lambda = new FakeLambda();
beforeAll(async () => {
  await lambda.start();
});
afterAll(async () => {
  await lambda.stop();
});

/** A Lambda client on the loopback Invoke API; `maxAttempts` 1 where a test refuses invocations. */
function lambdaClient(maxAttempts = 3): LambdaClient {
  return new LambdaClient({
    endpoint: lambda.url,
    region: 'local',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts,
  });
}

/** What reached the worker: the events it was invoked with, and the SQS messages of `queueUrl`. */
function reachedWorker(functionName: string, queueUrl: string): Arrival[] {
  return [
    ...lambda.invoked
      .filter((i) => i.functionName === functionName)
      .map((i) => ({ message: invokedMessage(JSON.parse(i.payload)), delaySeconds: 0 })),
    ...fake.accepted
      .filter((m) => m.queueUrl === queueUrl)
      .map((m) => ({ message: parseWorkMessage(m.body), delaySeconds: m.delaySeconds })),
  ];
}

stepQueueContract('InvokeQueue against a loopback Lambda and SQS', async () => {
  const client = lambdaClient();
  const sqs = sqsClient();
  const functionName = lambda.createFunction(`worker-${randomBytes(4).toString('hex')}`);
  const queueUrl = fake.createQueue(`work-${randomBytes(4).toString('hex')}`);
  return {
    queue: new InvokeQueue(client, functionName, new SqsQueue(sqs, queueUrl)),
    arrivals: async () => reachedWorker(functionName, queueUrl),
    close: async () => {
      client.destroy();
      sqs.destroy();
    },
  };
});

// ------------------------------------------------------------------------------ InvokeQueue specifics

describe('InvokeQueue', () => {
  let client: LambdaClient;
  let sqs: SQSClient;
  let functionName: string;
  let queueUrl: string;

  beforeEach(() => {
    fake.reset();
    lambda.reset();
    client = lambdaClient(1);
    sqs = sqsClient();
    functionName = lambda.createFunction(`worker-${randomBytes(4).toString('hex')}`);
    queueUrl = fake.createQueue(`work-${randomBytes(4).toString('hex')}`);
  });
  afterEach(() => {
    client.destroy();
    sqs.destroy();
  });

  const queueTo = (name: string) => new InvokeQueue(client, name, new SqsQueue(sqs, queueUrl));

  it('invokes the worker asynchronously once per message due now, and sends only the delayed ones to SQS', async () => {
    await queueTo(functionName).send([
      { message: step('r-now', 1) },
      { message: step('r-later', 2), delaySeconds: 30 },
      { message: step('r-now', 3), delaySeconds: 0 },
    ]);

    expect(lambda.requests.map((r) => [r.functionName, r.invocationType])).toEqual([
      [functionName, 'Event'],
      [functionName, 'Event'],
    ]);
    expect(lambda.invoked.map((i) => JSON.parse(i.payload))).toEqual([
      { source: INVOKED_SOURCE, message: step('r-now', 1) },
      { source: INVOKED_SOURCE, message: step('r-now', 3) },
    ]);
    expect(fake.batches()).toEqual([
      {
        QueueUrl: queueUrl,
        Entries: [{ Id: '0', MessageBody: JSON.stringify(step('r-later', 2)), DelaySeconds: 30 }],
      },
    ]);
  });

  it('makes no SQS request when every message is due now', async () => {
    await queueTo(functionName).send([
      { message: step('r-only-now', 1) },
      { message: step('r-only-now', 2) },
    ]);

    expect(lambda.invoked).toHaveLength(2);
    expect(fake.requests).toEqual([]);
  });

  it.each([
    ['throttled', { status: 429, type: 'TooManyRequestsException', message: 'Rate Exceeded.' }],
    ['failing', { status: 500, type: 'ServiceException', message: 'internal' }],
  ])(
    'sends a message to SQS instead when Lambda is %s, and still invokes for the others',
    async (_, refusal) => {
      lambda.refuse = (request) => (request.payload.includes('r-refused') ? refusal : undefined);

      await queueTo(functionName).send([{ message: step('r-refused', 1) }, { message: step('r-taken', 1) }]);

      expect(lambda.invoked.map((i) => invokedMessage(JSON.parse(i.payload)))).toEqual([step('r-taken', 1)]);
      expect(fake.accepted.map((m) => parseWorkMessage(m.body))).toEqual([step('r-refused', 1)]);
    },
  );

  it('sends every message to SQS when the function does not exist', async () => {
    const batch: Outgoing[] = [{ message: step('r-nofn', 1) }, { message: step('r-nofn', 2) }];

    await queueTo('no-such-worker').send(batch);

    expect(lambda.invoked).toEqual([]);
    expect(fake.accepted.map((m) => parseWorkMessage(m.body))).toEqual(batch.map((o) => o.message));
  });

  it('sends a message too large for an asynchronous invocation to SQS without trying Lambda', async () => {
    const big = step(`r-${'x'.repeat(260 * 1024)}`, 1);

    await queueTo(functionName)
      .send([{ message: big }])
      .catch(() => {});

    expect(lambda.requests).toEqual([]);
    expect(fake.batches()).toHaveLength(1);
  });

  it('throws a retryable QueueError only when SQS refuses too: nothing is dropped silently', async () => {
    lambda.refuse = () => ({ status: 429, type: 'TooManyRequestsException', message: 'Rate Exceeded.' });
    fake.refuse = () => 'ServiceUnavailable';

    const sending = queueTo(functionName).send([{ message: step('r-nowhere', 1) }]);

    await expect(sending).rejects.toBeInstanceOf(QueueError);
    await expect(sending).rejects.toMatchObject({ retryable: true });
  });
});

describe('queueFromEnv (the deployed composition)', () => {
  /** Run `fn` with the AWS SDK pointed at the loopback fakes through its own environment settings. */
  async function withAwsEnv<T>(fn: () => Promise<T>): Promise<T> {
    const saved = { ...process.env };
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_LAMBDA: lambda.url,
      AWS_ENDPOINT_URL_SQS: fake.url,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'x',
      AWS_SECRET_ACCESS_KEY: 'y',
    });
    try {
      return await fn();
    } finally {
      process.env = saved;
    }
  }

  beforeEach(() => {
    fake.reset();
    lambda.reset();
  });

  it('invokes the worker named by WORKER_FUNCTION_NAME for what is due now, and sends the rest to QUEUE_URL', async () => {
    const functionName = lambda.createFunction(`worker-${randomBytes(4).toString('hex')}`);
    const queueUrl = fake.createQueue(`work-${randomBytes(4).toString('hex')}`);

    await withAwsEnv(() =>
      queueFromEnv({ QUEUE_URL: queueUrl, WORKER_FUNCTION_NAME: functionName }).send([
        { message: step('r-env', 1) },
        { message: step('r-env', 2), delaySeconds: 5 },
      ]),
    );

    expect(lambda.invoked.map((i) => [i.functionName, invokedMessage(JSON.parse(i.payload))])).toEqual([
      [functionName, step('r-env', 1)],
    ]);
    expect(fake.accepted.map((m) => [m.queueUrl, parseWorkMessage(m.body)])).toEqual([
      [queueUrl, step('r-env', 2)],
    ]);
  });

  it('sends everything to QUEUE_URL without WORKER_FUNCTION_NAME', async () => {
    const queueUrl = fake.createQueue(`work-${randomBytes(4).toString('hex')}`);

    await withAwsEnv(() => queueFromEnv({ QUEUE_URL: queueUrl }).send([{ message: step('r-sqs-only', 1) }]));

    expect(lambda.requests).toEqual([]);
    expect(fake.accepted.map((m) => parseWorkMessage(m.body))).toEqual([step('r-sqs-only', 1)]);
  });
});

describe('messageOfRecord', () => {
  it('reads an SQS body as the message, with the receive count SQS gave', () => {
    expect(messageOfRecord(JSON.stringify(step('r-body', 2)), 3)).toEqual({
      message: step('r-body', 2),
      receiveCount: 3,
    });
  });

  it('reads an on-failure destination record as the invocation it records: its tries count as deliveries', () => {
    const record = {
      version: '1.0',
      timestamp: '2026-12-01T10:00:00.000Z',
      requestContext: {
        requestId: 'e4b46cbf-b738-xmpl-8880-a18cdf61200e',
        functionArn: 'arn:aws:lambda:us-east-1:123456789012:function:worker:$LATEST',
        condition: 'EventAgeExceeded',
        approximateInvokeCount: 2,
      },
      requestPayload: { source: INVOKED_SOURCE, message: step('r-failed', 4) },
      responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
      responsePayload: { errorMessage: 'Task timed out after 300.00 seconds' },
    };

    expect(messageOfRecord(JSON.stringify(record), 1)).toEqual({
      message: step('r-failed', 4),
      receiveCount: 3,
    });
  });

  it('refuses a destination record of anything but a step-queue invocation', () => {
    const record = {
      requestContext: { approximateInvokeCount: 1 },
      requestPayload: { Records: [] },
    };

    expect(() => messageOfRecord(JSON.stringify(record), 1)).toThrow(/not a work message/);
  });
});

// ------------------------------------------------------------------------------ SQS specifics

describe('SqsQueue', () => {
  let client: SQSClient;
  let queueUrl: string;
  let queue: SqsQueue;

  beforeEach(() => {
    fake.reset();
    client = sqsClient();
    queueUrl = fake.createQueue(`work-${randomBytes(4).toString('hex')}`);
    queue = new SqsQueue(client, queueUrl);
  });
  afterEach(() => {
    client.destroy();
  });

  it('sends one SendMessageBatch in AWS JSON 1.0 to the queue it was given', async () => {
    await queue.send([{ message: step('r1', 1) }, { message: step('r2', 4), delaySeconds: 3 }]);

    expect(fake.requests).toHaveLength(1);
    const [request] = fake.requests;
    expect(request?.headers['x-amz-target']).toBe('AmazonSQS.SendMessageBatch');
    expect(request?.headers['content-type']).toBe('application/x-amz-json-1.0');
    expect(request?.body).toEqual({
      QueueUrl: queueUrl,
      Entries: [
        { Id: '0', MessageBody: '{"kind":"step","runId":"r1","seq":1}' },
        { Id: '1', MessageBody: '{"kind":"step","runId":"r2","seq":4}', DelaySeconds: 3 },
      ],
    });
  });

  it.each([
    [1200, 900],
    [900, 900],
    [30.2, 31],
    [0.4, 1],
  ])('sends a delay of %s s as DelaySeconds %s', async (delaySeconds, wire) => {
    await queue.send([{ message: step('r-delay', 1), delaySeconds }]);

    expect(fake.batches()[0]?.Entries[0]?.DelaySeconds).toBe(wire);
    expect(fake.accepted.map((m) => m.delaySeconds)).toEqual([wire]);
  });

  it('leaves DelaySeconds out for a message without a delay, or with a delay of zero', async () => {
    await queue.send([{ message: step('r-now', 1) }, { message: step('r-now', 2), delaySeconds: 0 }]);

    expect(fake.batches()[0]?.Entries.map((e) => 'DelaySeconds' in e)).toEqual([false, false]);
  });

  it('splits 25 messages into SendMessageBatch calls of 10, 10 and 5, in order', async () => {
    const batch: Outgoing[] = Array.from({ length: 25 }, (_, i) => ({ message: step('r-split', i + 1) }));

    await queue.send(batch);

    expect(fake.batches().map((b) => b.Entries.length)).toEqual([10, 10, 5]);
    expect(fake.accepted.map((m) => parseWorkMessage(m.body))).toEqual(batch.map((o) => o.message));
  });

  it('resends only the entries SQS refused, until they are accepted', async () => {
    fake.refuse = (entry, call) => (call === 0 && entry.Id === '1' ? 'InternalError' : undefined);
    const batch: Outgoing[] = [
      { message: step('r-partial', 1) },
      { message: step('r-partial', 2), delaySeconds: 7 },
      { message: step('r-partial', 3) },
    ];

    await queue.send(batch);

    const [first, second] = fake.batches();
    expect(first?.Entries).toHaveLength(3);
    expect(second?.Entries).toEqual([
      { Id: '1', MessageBody: JSON.stringify(step('r-partial', 2)), DelaySeconds: 7 },
    ]);
    expect(fake.accepted.map((m) => parseWorkMessage(m.body))).toEqual([
      step('r-partial', 1),
      step('r-partial', 3),
      step('r-partial', 2),
    ]);
  });

  it('throws a retryable QueueError naming the code when SQS keeps refusing an entry', async () => {
    fake.refuse = (entry) => (entry.Id === '0' ? 'ServiceUnavailable' : undefined);

    const sending = queue.send([{ message: step('r-refused', 1) }, { message: step('r-ok', 1) }]);

    await expect(sending).rejects.toBeInstanceOf(QueueError);
    await expect(sending).rejects.toMatchObject({ retryable: true, message: /ServiceUnavailable/ });
  });

  it('turns a whole-request SQS error (a missing queue) into a retryable QueueError', async () => {
    const missing = new SqsQueue(client, `${queueUrl}-gone`);

    const sending = missing.send([{ message: step('r-nowhere', 1) }]);

    await expect(sending).rejects.toBeInstanceOf(QueueError);
    await expect(sending).rejects.toMatchObject({
      retryable: true,
      message: /NonExistentQueue|QueueDoesNotExist/,
    });
  });

  it('tries a refused entry four times in all, and never resends the accepted ones', async () => {
    fake.refuse = (entry) => (entry.Id === '0' ? 'ServiceUnavailable' : undefined);

    await queue.send([{ message: step('r-refused', 1) }, { message: step('r-ok', 1) }]).catch(() => {});

    expect(fake.batches().map((b) => b.Entries.map((e) => e.Id))).toEqual([['0', '1'], ['0'], ['0'], ['0']]);
    expect(fake.accepted.map((m) => parseWorkMessage(m.body))).toEqual([step('r-ok', 1)]);
  });
});

// ------------------------------------------------------------------------- in-memory specifics

describe('InMemoryQueue', () => {
  let queue: InMemoryQueue;

  afterEach(() => {
    queue.stop();
  });

  it('holds a delayed message back: one sent after it without a delay arrives first', async () => {
    queue = new InMemoryQueue({ timeScale: 0.01 }); // 5 s is 50 ms
    const seen: Array<{ message: WorkMessage; at: number }> = [];
    queue.consume(async (message) => {
      seen.push({ message, at: performance.now() });
    });
    const sentAt = performance.now();

    await queue.send([{ message: step('r-late', 1), delaySeconds: 5 }]);
    await queue.send([{ message: step('r-early', 1) }]);
    await queue.idle();

    expect(seen.map((s) => s.message)).toEqual([step('r-early', 1), step('r-late', 1)]);
    // Timers may fire up to a millisecond early.
    expect(seen[1]!.at - sentAt).toBeGreaterThanOrEqual(49);
  });

  it('keeps what is sent before a consumer attaches, and delivers it once one does', async () => {
    queue = new InMemoryQueue({ timeScale: TIME_SCALE });
    await queue.send([{ message: step('r-waiting', 1) }, { message: step('r-waiting', 2) }]);
    const seen: WorkMessage[] = [];

    queue.consume(async (m) => {
      seen.push(m);
    });
    await queue.idle();

    expect(seen).toEqual([step('r-waiting', 1), step('r-waiting', 2)]);
    expect(queue.pending).toEqual([]);
  });

  it('redelivers a message whose consumer threw, and stops once it succeeds', async () => {
    queue = new InMemoryQueue({ redeliveryMs: 5, maxReceives: 5 });
    let receives = 0;
    queue.consume(async () => {
      receives++;
      if (receives < 3) throw new Error(`transient failure ${receives}`);
    });

    await queue.send([{ message: step('r-flaky', 1) }]);
    await queue.idle();

    expect(receives).toBe(3);
    expect(queue.deadLetters).toEqual([]);
  });

  it('parks a message in deadLetters, with the last error, after maxReceives failed receives', async () => {
    queue = new InMemoryQueue({ redeliveryMs: 5, maxReceives: 3 });
    let receives = 0;
    queue.consume(async () => {
      receives++;
      throw new Error(`failure ${receives}`);
    });

    await queue.send([{ message: step('r-poison', 1) }]);
    await queue.idle();

    expect(receives).toBe(3);
    expect(queue.deadLetters).toEqual([{ message: step('r-poison', 1), error: new Error('failure 3') }]);
  });

  it('resolves idle() at once when nothing is scheduled', async () => {
    queue = new InMemoryQueue();
    queue.consume(async () => {});

    await expect(within(queue.idle(), 100, 'idle()')).resolves.toBeUndefined();
  });

  it('resolves idle() only once a delivery in progress has finished', async () => {
    queue = new InMemoryQueue({ timeScale: TIME_SCALE });
    const hold = latch();
    let finished = false;
    queue.consume(async () => {
      await hold.promise;
      finished = true;
    });
    await queue.send([{ message: step('r-slow', 1) }]);

    const idle = queue.idle().then(() => finished);
    hold.open();

    await expect(within(idle, 1_000, 'idle()')).resolves.toBe(true);
  });

  it('releases idle() when stopped during a delivery, and delivers nothing afterwards', async () => {
    queue = new InMemoryQueue({ timeScale: TIME_SCALE, redeliveryMs: 1 });
    const hold = latch();
    const seen: WorkMessage[] = [];
    const entered = latch();
    queue.consume(async (m) => {
      seen.push(m);
      entered.open();
      await hold.promise;
      throw new Error('fails after stop: must not be redelivered');
    });
    await queue.send([{ message: step('r-stopped', 1) }]);
    await entered.promise;
    const idle = queue.idle();

    queue.stop();
    await within(idle, 1_000, 'idle() after stop()');
    hold.open();
    await queue.send([{ message: step('r-after-stop', 1) }]);
    await new Promise((r) => setTimeout(r, 20));

    expect(seen).toEqual([step('r-stopped', 1)]);
    await expect(within(queue.idle(), 100, 'idle() after the held delivery ended')).resolves.toBeUndefined();
  });
});

describe('parseWorkMessage', () => {
  it('keeps the run item a step message carries, and drops one over the limit', () => {
    const step = { kind: 'step', runId: 'r1', seq: 2, workflow: 'w', node: 'n', version: 3, due: 1 } as const;
    const item = JSON.stringify({ a: { pk: 'RUN#r1' }, b: 'AAAA' });
    expect(parseWorkMessage(JSON.stringify({ ...step, item }))).toEqual({ ...step, item });
    const large = 'x'.repeat(MAX_CARRIED_ITEM_BYTES + 1);
    expect(parseWorkMessage(JSON.stringify({ ...step, item: large }))).toEqual(step);
    expect(parseWorkMessage(JSON.stringify({ ...step, item: 42 }))).toEqual(step);
  });
});
