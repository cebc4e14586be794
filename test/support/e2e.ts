import { randomBytes, randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import type { LocalStack } from '../../scripts/local-stack.ts';
import { signedRequest, type TestKeys } from '../discord/support.ts';
import {
  type IssueText,
  issuePayload,
  readyToCoder,
  repository,
  startStack,
  until as untilWithin,
  webhookHeaders,
} from './stack-harness.ts';

/**
 * What every end-to-end test on the local stack shares: the stack itself (the real handlers behind
 * the local HTTP adapter, the in-process queue and worker, the sweeper on a fast timer), signed
 * webhooks, the run API, and waiting on events. The stack's setup is test/support/stack-harness.ts,
 * which the benches share; this file adds the suite's DynamoDB Local (vitest's `inject`).
 */

export { configFile, type IssueText } from './stack-harness.ts';

export const E2E_REPO = 'acme/app';

/**
 * The bound on one wait. Tests wait on events, never on the clock: this only turns a hang into a
 * clear failure naming what never happened. Under two busy loops on a loaded 2-core machine one
 * step took seconds and a whole agent test 130 s, so it is wide; e2e tests get a test timeout above it.
 */
export const E2E_WAIT_MS = 240_000;
export const E2E_TEST_TIMEOUT_MS = 300_000;

/** Polls `fn` (a read of the store, the run API or a stand-in's record) until it yields. */
export function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = E2E_WAIT_MS,
): Promise<T> {
  return untilWithin(what, fn, timeoutMs);
}

/** The agents most e2e configs route a `ready` label to: a planner and an Actions coder. */
export const READY_TO_CODER = readyToCoder();

export const REPOSITORY = repository(E2E_REPO);

/** The issue an e2e test labels: the default title names its number, the body names a file. */
export function issueText(number: number, text: Partial<IssueText> = {}): IssueText {
  return {
    title: text.title ?? `Fix the parser (${number})`,
    body: text.body ?? 'It breaks on `src/parser.ts`.',
  };
}

/** An `issues.labeled` payload in GitHub's shape. */
export function labeledPayload(number: number, opts: Partial<IssueText> & { label?: string } = {}) {
  return issuePayload(E2E_REPO, number, issueText(number, opts), opts.label ? { label: opts.label } : {});
}

export interface RunView {
  run: Record<string, unknown> & {
    id: string;
    status: string;
    gate?: { kind?: string; prompt?: string; correlation?: string; binding?: string };
  };
  events: Array<Record<string, unknown> & { type: string; detail: Record<string, unknown> }>;
}

/** One local stack per test (or per file), with the helpers every e2e test uses against it. */
export class E2EStack {
  stack: LocalStack | undefined;

  constructor(private readonly secret: string) {}

  get url(): string {
    return this.live.url;
  }
  get live(): LocalStack {
    if (!this.stack) throw new Error('the local stack is not started');
    return this.stack;
  }

  /** Starts a stack on a fresh table with GitHub played by `githubUrl`; `env` adds or overrides. */
  async start(opts: {
    config: string;
    githubUrl: string;
    env?: Record<string, string>;
    table?: string;
  }): Promise<LocalStack> {
    this.stack = await startStack({
      dynamoEndpoint: inject('dynamoEndpoint'),
      config: opts.config,
      githubUrl: opts.githubUrl,
      secret: this.secret,
      table: opts.table ?? `e2e-${randomBytes(6).toString('hex')}`,
      env: { GITHUB_TOKEN: 'e2e-github-token', ...opts.env },
      sweepIntervalMs: 100,
    });
    return this.stack;
  }

  async stop(): Promise<void> {
    await this.stack?.stop();
    this.stack = undefined;
  }

  /** Delivers a webhook signed with the stack's secret, as GitHub does. */
  async webhook(
    event: string,
    payload: unknown,
    delivery: string = randomUUID(),
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const body = JSON.stringify(payload);
    const res = await fetch(`${this.url}/github/webhook`, {
      method: 'POST',
      headers: webhookHeaders(this.secret, event, body, delivery),
      body,
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  /** A Discord interaction signed with `keys` (the stack's DISCORD_PUBLIC_KEY), as Discord sends it. */
  async interact(
    keys: TestKeys,
    payload: unknown,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const req = signedRequest(keys, payload);
    const res = await fetch(`${this.url}/discord/interactions`, {
      method: 'POST',
      headers: req.headers as Record<string, string>,
      body: req.body as string,
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  /** `GET /runs/{id}`: the run and its events. */
  async getRun(id: string): Promise<RunView> {
    return (await (await fetch(`${this.url}/runs/${id}`)).json()) as RunView;
  }

  /** The id of the run for an issue, once it exists. */
  runFor(issue: number, repo = E2E_REPO): Promise<string> {
    return until(`a run for #${issue}`, async () => {
      const runs = await this.live.store.listRuns({ subject: `${repo}#${issue}` });
      return runs[0]?.id;
    });
  }

  /** Waits until the run (as the API shows it) satisfies `pred`. */
  waitFor(id: string, pred: (run: RunView['run']) => boolean, what: string, ms?: number) {
    return until(
      what,
      async () => {
        const { run } = await this.getRun(id);
        return pred(run) ? run : undefined;
      },
      ms,
    );
  }

  /** Waits until the run has an event of this type (and matching `pred`, when given). */
  waitForEvent(id: string, type: string, pred: (e: RunView['events'][number]) => boolean = () => true) {
    return until(`a ${type} event`, async () =>
      (await this.getRun(id)).events.find((e) => e.type === type && pred(e)),
    );
  }
}
