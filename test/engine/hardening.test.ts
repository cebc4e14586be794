/**
 * Issue #9 hardening of the engine (defects 2, 3, 8, 14, 17): DynamoDB cancellation reasons told
 * apart, the run size budget, a failed commit giving its lease back early, effects that never
 * start after a timeout or a cancel, the step's AbortSignal on outbound calls, a sweeper that
 * pages and survives a failing run, re-sends that back off, reporters that fail for good, the
 * report fence and incremental history reads. Real engine, DynamoDB Local; time through the clock.
 */
import { DynamoDBClient, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { ConfiguredRetryStrategy } from '@smithy/core/retry';
import { describe, expect, it, vi } from 'vitest';
import { DiscordRest } from '../../lib/discord/rest.ts';
import type { ReportContext, Reporter } from '../../lib/engine/engine.ts';
import { StepTimeoutError } from '../../lib/engine/errors.ts';
import type { WorkflowDefinition } from '../../lib/engine/workflow.ts';
import { GitHubApiError } from '../../lib/github/errors.ts';
import { InMemoryQueue } from '../../lib/queue/memory.ts';
import type { WorkMessage } from '../../lib/queue/port.ts';
import { RUN_ITEM_BUDGET_BYTES } from '../../lib/store/budget.ts';
import { createTestStore, testEndpoint } from '../support/dynamo.ts';
import { harness } from '../support/harness.ts';
import { deferred, testClock, throttlingClient, typesAndNodes } from './kit.ts';

const trigger = { source: 'test' as const };
const steps = (messages: WorkMessage[]) => messages.filter((m) => m.kind === 'step');

/** One node `a` running `handler`, then `b` that does nothing (or `last`). */
function twoNodes(
  handler: WorkflowDefinition['nodes'][string]['handler'],
  timeoutMs?: number,
  last: WorkflowDefinition['nodes'][string]['handler'] = async () => ({ output: { b: true } }),
): WorkflowDefinition {
  return {
    name: 'two',
    version: 1,
    start: 'a',
    nodes: {
      a: {
        handler,
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        retry: { maxAttempts: 2, initialDelayMs: 1 },
      },
      b: { handler: last },
    },
    edges: [{ from: 'a', to: 'b' }],
  };
}

/**
 * A last node whose event is too large to carry in the run item (over 16 KB): its commit writes
 * the event's history item with the run, in a transaction.
 */
const withLargeEvent: WorkflowDefinition['nodes'][string]['handler'] = async (ctx) => {
  ctx.emit({ type: 'report.summary', detail: { notes: 'n'.repeat(20_000) } });
  return { output: { b: true } };
};

/**
 * A real client for DynamoDB Local whose next N TransactWriteItems are cancelled with the given
 * per-item reasons, the way DynamoDB reports a throttled or invalid item inside a transaction,
 * and whose next PutItem can be refused as too large, the way DynamoDB refuses a single item.
 */
function cancellingClient() {
  const client = new DynamoDBClient({
    endpoint: testEndpoint(),
    region: 'local',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
    retryStrategy: new ConfiguredRetryStrategy(1, 1),
  });
  const plan: Array<Array<{ Code: string; Message?: string }>> = [];
  let refusePut: string | undefined;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = String((context as { commandName?: string }).commandName);
      if (command === 'PutItemCommand' && refusePut !== undefined) {
        const message = refusePut;
        refusePut = undefined;
        throw Object.assign(new Error(message), {
          name: 'ValidationException',
          $metadata: { httpStatusCode: 400 },
        });
      }
      if (command === 'TransactWriteItemsCommand' && plan.length > 0) {
        const reasons = plan.shift()!;
        throw new TransactionCanceledException({
          message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${reasons.map((r) => r.Code).join(', ')}]`,
          $metadata: { httpStatusCode: 400 },
          CancellationReasons: reasons,
        });
      }
      return next(args);
    },
    { step: 'deserialize', name: 'injectCancellation' },
  );
  return {
    client,
    cancelNext: (...reasons: Array<Array<{ Code: string; Message?: string }>>) => plan.push(...reasons),
    /** Cancellations planned and not yet sent. */
    planned: () => plan.length,
    refuseNextPut: (message: string) => {
      refusePut = message;
    },
  };
}

describe('a step commit that DynamoDB refuses or cancels', () => {
  it('fails the run with the validation reason, instead of reading it as a lost race', async () => {
    const c = cancellingClient();
    const store = await createTestStore({ client: c.client });
    // Refused once the step has run and holds its lease: the commit is the next PutItem.
    const wf = twoNodes(async () => {
      c.refuseNextPut('Item size has exceeded the maximum allowed size');
      return { output: { a: 1 } };
    });
    const h = await harness([wf], { store, autoConsume: false });
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#1', trigger });

    const outcome = await h.engine.executeStep(run.id, 1);

    expect(outcome).toBe('committed');
    const failed = await h.store.getRun(run.id);
    expect(failed).toMatchObject({
      status: 'failed',
      error: { name: 'StoreValidationError', retryable: false },
    });
    expect(failed?.reason).toContain('Item size has exceeded the maximum allowed size');
  });

  // A commit whose event is too large to carry is a transaction.
  it('fails the run with the validation reason when a transaction is cancelled for it', async () => {
    const c = cancellingClient();
    const store = await createTestStore({ client: c.client });
    const h = await harness([twoNodes(async () => ({ output: { a: 1 } }), undefined, withLargeEvent)], {
      store,
      autoConsume: false,
    });
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#6', trigger });
    await h.engine.executeStep(run.id, 1);
    c.cancelNext([
      { Code: 'ValidationError', Message: 'Item size has exceeded the maximum allowed size' },
      { Code: 'None' },
    ]);

    const outcome = await h.engine.executeStep(run.id, 2);

    expect(outcome).toBe('committed');
    const failed = await h.store.getRun(run.id);
    expect(failed).toMatchObject({
      status: 'failed',
      error: { name: 'StoreValidationError', retryable: false },
    });
    expect(failed?.reason).toContain('Item size has exceeded the maximum allowed size');
  });

  it('retries a throttled transaction with backoff and commits once', async () => {
    const c = cancellingClient();
    const store = await createTestStore({ client: c.client });
    const h = await harness([twoNodes(async () => ({ output: { a: 1 } }), undefined, withLargeEvent)], {
      store,
      autoConsume: false,
    });
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#2', trigger });
    await h.engine.executeStep(run.id, 1);
    c.cancelNext(
      [{ Code: 'ThrottlingError' }, { Code: 'None' }],
      [{ Code: 'None' }, { Code: 'ThrottlingError' }],
    );

    const outcome = await h.engine.executeStep(run.id, 2);

    expect(outcome).toBe('committed');
    expect(c.planned()).toBe(0);
    expect(await h.store.getRun(run.id)).toMatchObject({ status: 'succeeded', node: 'b' });
    expect(
      typesAndNodes(await h.store.listEvents(run.id)).filter(([type]) => type === 'run.succeeded'),
    ).toHaveLength(1);
  });

  it('fails a run whose step output is over the size budget, with the size in the reason', async () => {
    const h = await harness(
      [twoNodes(async () => ({ output: { huge: 'x'.repeat(RUN_ITEM_BUDGET_BYTES) } }))],
      {
        autoConsume: false,
      },
    );
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#3', trigger });

    const outcome = await h.engine.executeStep(run.id, 1);

    expect(outcome).toBe('committed');
    const failed = await h.store.getRun(run.id);
    expect(failed?.status).toBe('failed');
    expect(failed?.reason).toMatch(
      /a failed: the run of run \S+ is \d+ bytes, over the budget of 300000 bytes/,
    );
    expect(failed?.data.huge).toBeUndefined();
  });
});

describe('a step commit that keeps being throttled', () => {
  it('gives its lease back after a backoff instead of holding it until it lapses, and then finishes', async () => {
    const t = throttlingClient(3);
    const store = await createTestStore({ client: t.client });
    let throttled = false;
    // Armed once the step holds its lease: every SDK try of the commit (a PutItem) is throttled.
    const wf = twoNodes(async () => {
      if (!throttled) t.throttle('PutItemCommand', 3);
      throttled = true;
      return { output: { a: 1 } };
    }, 60_000);
    const h = await harness([wf], { store, autoConsume: false });
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#4', trigger });
    h.queue.pending.splice(0);

    const outcome = await h.engine.executeStep(run.id, 1);

    expect(outcome).toBe('deferred');
    const released = await h.store.getRun(run.id);
    const leaseLeftMs = Date.parse(released!.lease!.until) - Date.now();
    expect(leaseLeftMs).toBeLessThan(10_000); // the lease was node timeout (60 s) + grace
    expect(released!.lease!.error).toMatch(/throttled/);
    expect(h.queue.pending).toEqual([
      {
        kind: 'step',
        runId: run.id,
        seq: 1,
        workflow: 'two',
        node: 'a',
        version: released!.version,
        due: Date.parse(released!.step!.notBefore),
      },
    ]);
    h.queue.consume(async (m) => void (await h.engine.handle(m)));
    await h.settle();
    expect((await h.store.getRun(run.id))?.status).toBe('succeeded');
  });

  it('ends the run with the commit error once its attempts are exhausted', async () => {
    const t = throttlingClient(3);
    const store = await createTestStore({ client: t.client });
    // Both attempts of the step: each try of each commit (a PutItem, once the step has run).
    const wf = twoNodes(async () => {
      t.throttle('PutItemCommand', 3);
      return { output: { a: 1 } };
    }, 60_000);
    const h = await harness([wf], { store, autoConsume: false });
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#8', trigger });
    h.queue.consume(async (m) => void (await h.engine.handle(m)));
    await h.settle();

    const failed = await h.store.getRun(run.id);
    expect(failed?.status).toBe('failed');
    expect(failed?.reason).toMatch(/^a could not commit after 2 attempts: DynamoDB throttled/);
  });
});

describe('effects and outbound calls after a step ended', () => {
  it('does not start an effect once the step has timed out', async () => {
    const release = deferred();
    const effects: string[] = [];
    let attempt: Promise<unknown> | undefined;
    const h = await harness(
      [
        twoNodes(async (ctx) => {
          await release.promise;
          attempt = ctx.effect('send', async () => effects.push('sent')).catch((err: unknown) => err);
          await attempt;
          return {};
        }, 50),
      ],
      { autoConsume: false },
    );
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#5', trigger });

    await h.engine.executeStep(run.id, 1); // times out: the retry is committed
    release.resolve();
    await vi.waitUntil(() => attempt);

    expect(await attempt).toBeInstanceOf(StepTimeoutError);
    expect(effects).toEqual([]);
  });

  it('does not start an effect once the run was cancelled mid-step', async () => {
    const reached = deferred();
    const release = deferred();
    const effects: string[] = [];
    const h = await harness(
      [
        twoNodes(async (ctx) => {
          reached.resolve();
          await release.promise;
          await ctx.effect('send', async () => effects.push('sent'));
          return {};
        }),
      ],
      { autoConsume: false },
    );
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#6', trigger });

    const step = h.engine.executeStep(run.id, 1);
    await reached.promise;
    await h.engine.signal(run.id, { type: 'cancel', by: 'alice' });
    release.resolve();

    expect(await step).toBe('lost');
    expect(effects).toEqual([]);
    expect((await h.store.getRun(run.id))?.status).toBe('cancelled');
  });

  it('aborts an outbound call in flight when the step times out, and starts none after', async () => {
    const signals: AbortSignal[] = [];
    const inFlight = deferred();
    const release = deferred();
    const rest = new DiscordRest({
      botToken: 'test-token',
      maxRetries: 0,
      fetch: (async (_url: string | URL | Request, init?: RequestInit) => {
        signals.push(init!.signal!);
        inFlight.resolve();
        await new Promise((_, reject) =>
          init!.signal!.addEventListener('abort', () => reject(init!.signal!.reason)),
        );
        throw new Error('unreachable');
      }) as typeof fetch,
    });
    let second: Promise<unknown> | undefined;
    const h = await harness(
      [
        twoNodes(async () => {
          await rest.createMessage('c1', { content: 'one' }).catch(() => undefined);
          await release.promise;
          second = rest.createMessage('c1', { content: 'two' }).catch((err: unknown) => err);
          await second;
          return {};
        }, 50),
      ],
      { autoConsume: false },
    );
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#7', trigger });

    const step = h.engine.executeStep(run.id, 1);
    await inFlight.promise;
    await step; // the timeout committed a retry
    release.resolve();
    await vi.waitUntil(() => second);

    expect(signals).toHaveLength(1);
    expect(signals[0]!.aborted).toBe(true);
    expect(await second).toBeInstanceOf(StepTimeoutError);
  });
});

describe('the sweeper', () => {
  it('reaches every active run, page by page', async () => {
    const clock = testClock();
    const h = await harness([twoNodes(async () => ({}))], {
      autoConsume: false,
      now: clock.now,
      sweepPageSize: 2,
    });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await h.engine.startRun({ workflow: 'two', subject: `o/r#${10 + i}`, trigger })).run.id);
    }
    h.queue.pending.splice(0); // every start message lost
    clock.advance(120_000);

    const swept = await h.engine.sweep();

    expect(swept).toMatchObject({ examined: 5, reenqueued: 5 });
    expect(
      steps(h.queue.pending)
        .map((m) => m.runId)
        .sort(),
    ).toEqual([...ids].sort());
  });

  it('goes on with the other runs when one run cannot be swept', async () => {
    const clock = testClock();
    const t = throttlingClient(3);
    const store = await createTestStore({ client: t.client, now: clock.now });
    const h = await harness([twoNodes(async () => ({}))], { store, autoConsume: false, now: clock.now });
    const a = (await h.engine.startRun({ workflow: 'two', subject: 'o/r#20', trigger })).run;
    const b = (await h.engine.startRun({ workflow: 'two', subject: 'o/r#21', trigger })).run;
    h.queue.pending.splice(0);
    clock.advance(120_000);
    t.throttle('GetItemCommand', 3); // the first run's sweep exhausts its retries

    const swept = await h.engine.sweep();

    expect(swept).toMatchObject({ examined: 2, failed: 1, reenqueued: 1 });
    expect(steps(h.queue.pending).map((m) => m.runId)).toEqual([b.id]);
    expect(a.id).not.toBe(b.id);
  });

  it('backs off re-sending a step that was never picked up while the queue is behind', async () => {
    const clock = testClock();
    const h = await harness([twoNodes(async () => ({}))], { autoConsume: false, now: clock.now });
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#22', trigger });
    h.queue.pending.splice(0);

    clock.advance(61_000);
    const first = await h.engine.sweep();
    clock.advance(61_000);
    const second = await h.engine.sweep(); // within twice the grace of the first re-send
    clock.advance(61_000);
    const third = await h.engine.sweep();

    expect([first.reenqueued, second.reenqueued, third.reenqueued]).toEqual([1, 0, 1]);
    expect(second.backedOff).toBe(1);
    const again = {
      kind: 'step',
      runId: run.id,
      seq: 1,
      workflow: 'two',
      node: 'a',
      version: run.version,
      due: Date.parse(run.step!.notBefore),
    };
    expect(steps(h.queue.pending)).toEqual([again, again]);
  });
});

describe('reporters', () => {
  function failingReporter(status: number): Reporter & { calls: number } {
    const r = {
      name: 'github',
      calls: 0,
      report: async () => {
        r.calls++;
        throw new GitHubApiError(`GitHub PATCH /x failed: ${status}`, {
          status,
          method: 'PATCH',
          path: '/x',
        });
      },
    };
    return r;
  }

  it.each([403, 404, 410, 422])(
    'end their work on a permanent %i with a report.failed event, and the finished run retires',
    async (status) => {
      const reporter = failingReporter(status);
      const h = await harness([twoNodes(async () => ({}))], { reporters: [reporter] });
      const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#30', trigger });
      await h.settle();

      const done = await h.store.getRun(run.id);
      expect(done?.status).toBe('succeeded');
      expect((await h.store.listActive()).map((r) => r.id)).not.toContain(run.id);
      const failures = (await h.store.listEvents(run.id)).filter((e) => e.type === 'report.failed');
      expect(failures).toHaveLength(1);
      expect(failures[0]).toMatchObject({ by: 'github', detail: { reporter: 'github', status } });
      expect(reporter.calls).toBe(1); // never called again for the later versions
    },
  );

  it('keep retrying a transient failure (a 502) and leave the run active', async () => {
    const reporter = failingReporter(502);
    const queue = new InMemoryQueue({ timeScale: 0.001, redeliveryMs: 1, maxReceives: 2 });
    const h = await harness([twoNodes(async () => ({}))], { reporters: [reporter], queue });
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#31', trigger });
    await h.settle();

    expect((await h.store.listActive()).map((r) => r.id)).toContain(run.id);
    expect((await h.store.listEvents(run.id)).some((e) => e.type === 'report.failed')).toBe(false);
  });

  it('drop the update of a writer whose claim lapsed, and the latest state is reported again', async () => {
    const clock = testClock();
    const stalled = deferred();
    const resume = deferred();
    const shown: number[] = [];
    let stall = true;
    const reporter: Reporter = {
      name: 'shown',
      report: async (run, ctx: ReportContext) => {
        if (stall) {
          stall = false;
          stalled.resolve();
          await resume.promise;
        }
        if (await ctx.current?.()) shown.push(run.version);
      },
    };
    const h = await harness([twoNodes(async () => ({}))], {
      reporters: [reporter],
      now: clock.now,
      autoConsume: false,
    });
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#32', trigger });
    h.queue.pending.splice(0);

    const late = h.engine.report(run.id); // claims version 1 and stalls
    await stalled.promise;
    clock.advance(31_000); // its claim lapses
    await h.engine.report(run.id); // another worker reports version 1
    resume.resolve();
    await late;

    expect(shown).toEqual([1]); // the late writer dropped its update
    // It lost its claim, so it marked the state unreported and asked for the latest report again.
    expect(h.queue.pending).toEqual([{ kind: 'report', runId: run.id, version: 1 }]);
  });

  it('answer current() without a read while most of the claim is left, and read the claim near its end', async () => {
    const clock = testClock();
    const answers: boolean[] = [];
    const reporter: Reporter = {
      name: 'fenced',
      report: async (_run, ctx: ReportContext) => {
        answers.push((await ctx.current?.()) ?? false);
        clock.advance(25_000); // 5 s of the 30 s claim left: no longer sure without a read
        answers.push((await ctx.current?.()) ?? false);
      },
    };
    const h = await harness([twoNodes(async () => ({}))], {
      reporters: [reporter],
      now: clock.now,
      autoConsume: false,
    });
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#34', trigger });
    const spy = vi.spyOn(h.store, 'getReportState');
    await h.engine.report(run.id);

    expect(answers).toEqual([true, true]);
    // One read to claim, one for the second answer; none for the first.
    expect(spy.mock.calls.filter(([id]) => id === run.id)).toHaveLength(2);
  });

  it('read only the events after those already read when reporting the next version', async () => {
    const reporter: Reporter = { name: 'quiet', report: async () => {} };
    // Reports beside their steps (no wait): a quick step's carried report would otherwise leave
    // it to its successor, and only the final version would be reported.
    const h = await harness([twoNodes(async () => ({}))], { reporters: [reporter], carriedReportWaitMs: 0 });
    const spy = vi.spyOn(h.store, 'listEvents');
    const { run } = await h.engine.startRun({ workflow: 'two', subject: 'o/r#33', trigger });
    await h.settle();

    const reads = spy.mock.calls.filter(([id]) => id === run.id).map(([, opts]) => opts?.after);
    // At least the first version and a later one (how many versions are reported one by one
    // depends on timing: a report skips while another worker's claim is live, and that worker
    // reports the newest version when it is done).
    expect(reads.length).toBeGreaterThanOrEqual(2);
    expect(reads[0]).toBeUndefined();
    expect(reads.slice(1).every((after) => typeof after === 'number')).toBe(true);
  });
});
