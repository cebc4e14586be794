/**
 * Helpers for the engine's fault tests: a clock the test moves, a store that counts its writes
 * (through DynamoRunStore's own consumed-capacity hook, not a mock), a driver that plays the
 * sweeper until a run is done, and the history a healthy run must have.
 */
import {
  DynamoDBClient,
  ProvisionedThroughputExceededException,
  ThrottlingException,
} from '@aws-sdk/client-dynamodb';
import { ConfiguredRetryStrategy } from '@smithy/core/retry';
import { expect } from 'vitest';
import type { Reporter } from '../../lib/engine/engine.ts';
import { isTerminal, type Run, type RunEvent } from '../../lib/engine/types.ts';
import type { WorkflowDefinition } from '../../lib/engine/workflow.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { createTestStore, testEndpoint } from '../support/dynamo.ts';
import type { Harness } from '../support/harness.ts';

/** Real time plus an offset the test moves forward (leases, grace periods and gates read it). */
export interface TestClock {
  now: () => Date;
  advance(ms: number): void;
}

export function testClock(): TestClock {
  let offset = 0;
  return {
    now: () => new Date(Date.now() + offset),
    advance: (ms) => {
      offset += ms;
    },
  };
}

/** Successful writes by kind ('createRun' | 'commit' | 'update'), from the store's capacity hook. */
export interface CountingStore {
  store: DynamoRunStore;
  writes: string[];
  count(op: string): number;
}

export async function countingStore(opts: { client?: DynamoDBClient } = {}): Promise<CountingStore> {
  const writes: string[] = [];
  const store = await createTestStore({ ...opts, onConsumedCapacity: (op) => writes.push(op) });
  return { store, writes, count: (op) => writes.filter((w) => w === op).length };
}

/**
 * Let the queue drain, then play the sweeper with the clock moved past every lease and
 * enqueue grace, until the run is finished, reported and retired (or `rounds` runs out).
 */
export async function drive<S>(h: Harness<S>, clock: TestClock, runId: string, rounds = 8): Promise<Run> {
  await h.settle();
  for (let i = 0; i < rounds; i++) {
    const run = await h.store.getRun(runId);
    const active = await h.store.listActive();
    if (run && isTerminal(run.status) && !active.some((r) => r.id === runId)) return run;
    clock.advance(10 * 60_000);
    await h.engine.sweep();
    await h.settle();
  }
  const run = await h.store.getRun(runId);
  if (!run) throw new Error(`run ${runId} is gone`);
  return run;
}

/** [type, node] pairs of a history, for exact comparison. */
export const typesAndNodes = (events: RunEvent[]) => events.map((e) => [e.type, e.node]);

/** The exact history of a linear run over `nodes` that succeeded without a retry. */
export function linearHistory(nodes: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [['run.created', nodes[0]!]];
  nodes.forEach((n, i) => {
    out.push(['step.succeeded', n]);
    const next = nodes[i + 1];
    out.push(next ? ['step.scheduled', next] : ['run.succeeded', n]);
  });
  return out;
}

/** No event lost or doubled: sequence numbers run 0..n-1 without a gap or a repeat. */
export function expectContiguous(events: RunEvent[]): void {
  expect(events.map((e) => e.seq)).toEqual([...Array(events.length).keys()]);
}

/** `ask` opens an approval gate; approved, `ship` ends the run. */
export const approvalThenShip: WorkflowDefinition = {
  name: 'gated',
  version: 1,
  start: 'ask',
  nodes: {
    ask: { handler: async () => ({ wait: { kind: 'approval', expiresInMs: 60_000 } }) },
    ship: { handler: async () => ({ output: { shipped: true } }) },
  },
  edges: [{ from: 'ask', to: 'ship', on: 'approved' }],
};

/** A promise the test resolves by hand (to hold a handler mid-step). */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** A reporter that records what it was shown. */
export function recordingReporter(): Reporter & {
  seen: Array<Pick<Run, 'status' | 'version'> & { reason?: string }>;
} {
  const seen: Array<Pick<Run, 'status' | 'version'> & { reason?: string }> = [];
  return {
    name: 'recording',
    seen,
    report: async (run) => {
      seen.push({
        status: run.status,
        version: run.version,
        ...(run.reason !== undefined ? { reason: run.reason } : {}),
      });
    },
  };
}

export type ThrottleName = 'ThrottlingException' | 'ProvisionedThroughputExceededException';

/**
 * A real DynamoDB client for DynamoDB Local whose calls can be throttled: a middleware inside the
 * SDK's retry loop throws the service's own throttling exception the next N times a command is
 * sent. The SDK retries it (fast: 1 ms backoff) up to `maxAttempts`.
 */
export function throttlingClient(maxAttempts = 3) {
  const client = new DynamoDBClient({
    endpoint: testEndpoint(),
    region: 'local',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts,
    retryStrategy: new ConfiguredRetryStrategy(maxAttempts, 1),
  });
  const armed = new Map<string, { times: number; name: ThrottleName }>();
  /** Attempts per command name (every try, throttled or not). */
  const attempts = new Map<string, number>();
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = String((context as { commandName?: string }).commandName);
      attempts.set(command, (attempts.get(command) ?? 0) + 1);
      const plan = armed.get(command);
      if (plan && plan.times > 0) {
        plan.times--;
        throw throttlingError(plan.name);
      }
      return next(args);
    },
    { step: 'deserialize', name: 'injectThrottling' },
  );
  return {
    client,
    attempts: (command: string) => attempts.get(command) ?? 0,
    /** Throttle the next `times` sends of `command` (e.g. 'PutItemCommand'). */
    throttle(command: string, times: number, name: ThrottleName = 'ThrottlingException') {
      armed.set(command, { times, name });
      attempts.delete(command);
    },
  };
}

function throttlingError(name: ThrottleName): Error {
  const opts = {
    message: 'Rate of requests exceeds the allowed throughput.',
    $metadata: { httpStatusCode: 400 },
  };
  const err =
    name === 'ThrottlingException'
      ? new ThrottlingException(opts)
      : new ProvisionedThroughputExceededException(opts);
  return Object.assign(err, { $retryable: { throttling: true } });
}
