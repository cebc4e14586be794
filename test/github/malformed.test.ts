import { beforeAll, describe, expect, it } from 'vitest';
import type { MetricName } from '../../lib/common/metric-names.ts';
import { Engine } from '../../lib/engine/engine.ts';
import { CHECKED_EVENTS } from '../../lib/github/payload.ts';
import { type Delivery, handleGitHubWebhook } from '../../lib/github/webhook.ts';
import { toRequest, type WireRequest as WebhookRequest } from '../../lib/http/request.ts';
import { InMemoryQueue } from '../../lib/queue/memory.ts';
import { parseConfigSource } from '../../lib/routing/config.ts';
import { createDeliveryHandler } from '../../lib/routing/deliveries.ts';
import { ConfigProvider } from '../../lib/routing/repo-config.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { buildRegistry } from '../../lib/workflows/index.ts';
import { createTestStore } from '../support/dynamo.ts';
import { example, signedRequest, TEST_SECRET } from './support.ts';

/**
 * Issue 15: a signature proves who sent a delivery, not that its shape is sane. Every handled
 * event, with each field it needs missing, null, of the wrong type or out of range, is signed
 * correctly and sent through the whole ingress: each gets a 2xx naming the field, is counted,
 * and never reaches the hub (no hook, no guard write, no run, nothing queued).
 */

/** Routes every issue, PR, comment and review event, so a delivery that gets through would start a run. */
const ROUTE_EVERYTHING = `
version: 1
routing:
  prRequiresLabel: false
  rules:
    - { name: any-issue, event: issues }
    - { name: any-pr, event: pull_request }
    - { name: any-comment, event: issue_comment }
    - { name: any-review, event: [pull_request_review, pull_request_review_comment] }
repoConfig: { enabled: false }
guards: { ci: { enabled: false } }
`;

type Kind = 'number' | 'repo' | 'login' | 'label' | 'action' | 'text' | 'ref';

/** Values a field of each kind must never be accepted with, by what is wrong with them. */
const BAD: Record<Kind, Array<[variant: string, value: unknown]>> = {
  number: [
    ['null', null],
    ['a string', '7'],
    ['zero', 0],
    ['negative', -3],
    ['a fraction', 1.5],
    ['beyond 2^53', 2 ** 53 + 2],
  ],
  repo: [
    ['null', null],
    ['a number', 42],
    ['without a slash', 'hello-world'],
    ['with two slashes', 'a/b/c'],
    ['a path segment', 'octo/..'],
    ['empty', ''],
  ],
  login: [
    ['null', null],
    ['a number', 1],
    ['empty', ''],
  ],
  label: [
    ['null', null],
    ['a number', 7],
    ['empty', ''],
    ['blank', '   '],
  ],
  action: [
    ['null', null],
    ['a number', 5],
    ['empty', ''],
  ],
  text: [
    ['null', null],
    ['a number', 5],
  ],
  ref: [
    ['null', null],
    ['a number', 5],
    ['not a ref', 'main'],
  ],
};

/** Each handled event (a real example of it) and the fields it needs. */
const HANDLED: Array<{ event: string; action?: string; fields: Array<[path: string, kind: Kind]> }> = [
  {
    event: 'issues',
    action: 'opened',
    fields: [
      ['action', 'action'],
      ['repository.full_name', 'repo'],
      ['sender.login', 'login'],
      ['issue.number', 'number'],
    ],
  },
  {
    event: 'issues',
    action: 'labeled',
    fields: [
      ['repository.full_name', 'repo'],
      ['sender.login', 'login'],
      ['issue.number', 'number'],
      ['label.name', 'label'],
    ],
  },
  {
    event: 'pull_request',
    action: 'opened',
    fields: [
      ['action', 'action'],
      ['repository.full_name', 'repo'],
      ['sender.login', 'login'],
      ['pull_request.number', 'number'],
    ],
  },
  {
    event: 'pull_request',
    action: 'labeled',
    fields: [
      ['repository.full_name', 'repo'],
      ['pull_request.number', 'number'],
      ['label.name', 'label'],
    ],
  },
  {
    event: 'issue_comment',
    action: 'created',
    fields: [
      ['repository.full_name', 'repo'],
      ['sender.login', 'login'],
      ['issue.number', 'number'],
      ['comment.id', 'number'],
      ['comment.body', 'text'],
    ],
  },
  {
    event: 'pull_request_review',
    action: 'submitted',
    fields: [
      ['repository.full_name', 'repo'],
      ['pull_request.number', 'number'],
    ],
  },
  {
    event: 'pull_request_review_comment',
    action: 'created',
    fields: [
      ['repository.full_name', 'repo'],
      ['pull_request.number', 'number'],
    ],
  },
  {
    event: 'workflow_run',
    action: 'completed',
    fields: [
      ['action', 'action'],
      ['repository.full_name', 'repo'],
      ['workflow_run.id', 'number'],
      ['workflow_run.workflow_id', 'number'],
    ],
  },
  {
    event: 'check_suite',
    action: 'completed',
    fields: [
      ['repository.full_name', 'repo'],
      ['check_suite.id', 'number'],
    ],
  },
  {
    event: 'check_run',
    action: 'completed',
    fields: [
      ['repository.full_name', 'repo'],
      ['check_run.id', 'number'],
    ],
  },
  {
    event: 'push',
    fields: [
      ['repository.full_name', 'repo'],
      ['ref', 'ref'],
    ],
  },
];

const MISSING = Symbol('missing');

/** The example with the field at `path` set to `value` (or removed). */
function withField(event: string, action: string | undefined, path: string, value: unknown) {
  const payload = example(event, action);
  const keys = path.split('.');
  let at = payload as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) at = at[k] as Record<string, unknown>;
  const last = keys.at(-1) as string;
  if (value === MISSING) delete at[last];
  else at[last] = value;
  return payload;
}

const name = (e: { event: string; action?: string }) => (e.action ? `${e.event}.${e.action}` : e.event);

const CASES = HANDLED.flatMap((h) =>
  h.fields.flatMap(([path, kind]) =>
    [['missing', MISSING] as [string, unknown], ...BAD[kind]].map(
      ([variant, value]) => [name(h), path, variant, { ...h, path, value }] as const,
    ),
  ),
);

describe('signed but malformed deliveries never start runs', () => {
  let store: DynamoRunStore;
  let queue: InMemoryQueue;
  let engine: Engine<unknown>;
  const reachedHub: Delivery[] = [];
  const counted: MetricName[] = [];
  let send: (r: WebhookRequest) => ReturnType<typeof handleGitHubWebhook>;

  beforeAll(async () => {
    store = await createTestStore();
    queue = new InMemoryQueue();
    engine = new Engine<unknown>({ store, queue, workflows: buildRegistry(), services: {} });
    const central = parseConfigSource(ROUTE_EVERYTHING, 'test.yml');
    const config = new ConfigProvider({ central, store });
    const hub = createDeliveryHandler({ engine, queue, config, store });
    send = (r) =>
      handleGitHubWebhook(
        {
          secrets: () => [TEST_SECRET],
          onDelivery: (d) => {
            reachedHub.push(d);
            return hub(d);
          },
          metrics: { count: (metric) => void counted.push(metric) },
        },
        toRequest(r),
      );
  });

  it('covers every event whose payload is checked, with every kind of bad value', () => {
    expect(new Set(HANDLED.map((h) => h.event))).toEqual(new Set(CHECKED_EVENTS));
    expect(CASES.length).toBeGreaterThan(150);
  });

  it.each(HANDLED.map((h) => [name(h), h] as const))(
    'a well-formed %s reaches the hub (the table below is not refusing everything)',
    async (_name, h) => {
      const res = await send(signedRequest(TEST_SECRET, h.event, example(h.event, h.action)));
      const body = JSON.parse(res.body) as { status: string; field?: string; run?: string };
      expect(res.statusCode).toBeLessThan(300);
      expect(body.field, res.body).toBeUndefined();
      expect(reachedHub.at(-1)?.name).toBe(h.event);
      // Issue and PR events under this config start a run.
      if (['issues', 'pull_request', 'issue_comment', 'pull_request_review'].includes(h.event))
        expect(body).toMatchObject({ status: 'accepted' });
    },
  );

  it.each(CASES)('%s with %s %s: 2xx, logged and counted, no run', async (_event, path, _variant, c) => {
    const hubBefore = reachedHub.length;
    const sentBefore = queue.sent.length;
    const countedBefore = counted.length;

    const res = await send(signedRequest(TEST_SECRET, c.event, withField(c.event, c.action, path, c.value)));

    expect(res.statusCode).toBe(202);
    expect(JSON.parse(res.body)).toMatchObject({ status: 'ignored', field: path });
    expect(JSON.parse(res.body).reason).toMatch(
      new RegExp(`^malformed payload: ${path.replace('.', '\\.')}: `),
    );
    expect(counted.slice(countedBefore)).toEqual(['DeliveriesMalformed']);
    expect(reachedHub.length).toBe(hubBefore);
    expect(queue.sent.length).toBe(sentBefore);
  });

  it('leaves only the well-formed deliveries’ runs in the table', async () => {
    const runs = await engine.listRuns({ limit: 100 });
    const starts = queue.sent.filter((o) => o.message.kind === 'step');
    expect(runs.length).toBe(starts.length);
    expect(runs.every((r) => r.subject.issue !== undefined && r.subject.issue > 0)).toBe(true);
  });
});

describe('a well-formed event routed to a workflow that needs more than it carries', () => {
  it('gets a 2xx naming the missing subject field, and no run', async () => {
    const store = await createTestStore();
    const queue = new InMemoryQueue();
    const engine = new Engine<unknown>({ store, queue, workflows: buildRegistry(), services: {} });
    // A config mistake: pushes sent to the issue pipeline, which needs an issue.
    const central = parseConfigSource(
      'version: 1\nrouting:\n  rules:\n    - { name: pushes, event: push, workflow: issue-pipeline }\nrepoConfig: { enabled: false }\nguards: { ci: { enabled: false } }\n',
      'test.yml',
    );
    const onDelivery = createDeliveryHandler({
      engine,
      queue,
      config: new ConfigProvider({ central, store }),
      store,
    });

    const res = await handleGitHubWebhook(
      { secrets: () => [TEST_SECRET], onDelivery },
      toRequest(signedRequest(TEST_SECRET, 'push', example('push'))),
    );

    expect(res.statusCode).toBe(202);
    expect(JSON.parse(res.body)).toMatchObject({ status: 'ignored', field: 'subject.issue' });
    expect(JSON.parse(res.body).reason).toContain('issue-pipeline needs subject.issue');
    expect(queue.sent).toEqual([]);
    expect(await engine.listRuns({ limit: 10 })).toEqual([]);
  });
});
