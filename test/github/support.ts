import { createHmac, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import type { WireRequest as WebhookRequest } from '../../lib/http/request.ts';

/** One example payload of @octokit/webhooks-examples: real GitHub deliveries, contributed upstream. */
export interface ExamplePayload {
  event: string;
  action: string | undefined;
  index: number;
  payload: Record<string, unknown>;
}

const require = createRequire(import.meta.url);

/** Every example of every event type (api.github.com), flattened for `it.each`. */
export function webhookExamples(): ExamplePayload[] {
  const corpus = require('@octokit/webhooks-examples') as Array<{
    name: string;
    examples: Array<Record<string, unknown>>;
  }>;
  return corpus.flatMap((group) =>
    group.examples.map((payload, index) => ({
      event: group.name,
      action: typeof payload.action === 'string' ? payload.action : undefined,
      index,
      payload,
    })),
  );
}

/** The first example of `event` (with `action`), deep-copied so a test may change it. */
export function example(event: string, action?: string): Record<string, unknown> {
  const hit = webhookExamples().find(
    (e) => e.event === event && (action === undefined || e.action === action),
  );
  if (!hit) throw new Error(`no example of ${event}${action ? `.${action}` : ''}`);
  return structuredClone(hit.payload);
}

/**
 * Sign independently of the code under test (node:crypto directly, not @octokit/webhooks-methods),
 * so a shared bug cannot hide.
 */
export function sign(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export function signedRequest(
  secret: string,
  event: string,
  payload: unknown,
  opts: { delivery?: string; headerCase?: 'lower' | 'canonical'; base64?: boolean } = {},
): WebhookRequest & { delivery: string } {
  const body = JSON.stringify(payload);
  const delivery = opts.delivery ?? randomUUID();
  const names =
    opts.headerCase === 'canonical'
      ? { ct: 'Content-Type', sig: 'X-Hub-Signature-256', ev: 'X-GitHub-Event', id: 'X-GitHub-Delivery' }
      : { ct: 'content-type', sig: 'x-hub-signature-256', ev: 'x-github-event', id: 'x-github-delivery' };
  return {
    method: 'POST',
    headers: {
      [names.ct]: 'application/json',
      [names.sig]: sign(secret, body),
      [names.ev]: event,
      [names.id]: delivery,
    },
    body: opts.base64 ? Buffer.from(body).toString('base64') : body,
    isBase64Encoded: Boolean(opts.base64),
    delivery,
  };
}

// ----------------------------------------------------------------------------- a real ingress

import { Engine } from '../../lib/engine/engine.ts';
import { handleGitHubWebhook } from '../../lib/github/webhook.ts';
import { toRequest, type HttpResponse as WebhookResponse } from '../../lib/http/request.ts';
import { InMemoryQueue } from '../../lib/queue/memory.ts';
import { loadConfigSource, parseConfigSource } from '../../lib/routing/config.ts';
import { createDeliveryHandler } from '../../lib/routing/deliveries.ts';
import { ConfigProvider } from '../../lib/routing/repo-config.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { buildRegistry } from '../../lib/workflows/index.ts';
import { createTestStore } from '../support/dynamo.ts';

export const TEST_SECRET = 'webhook-test-secret';

export interface TestIngress {
  store: DynamoRunStore;
  queue: InMemoryQueue;
  engine: Engine<unknown>;
  config: ConfigProvider;
  send(req: WebhookRequest): Promise<WebhookResponse>;
}

/**
 * The webhook as deployed: core + hub + engine.startRun over DynamoDB Local and the in-process
 * queue (not consumed: ingress only records and enqueues). Config: the shipped default, or `yaml`.
 */
export async function testIngress(
  opts: { yaml?: string; store?: DynamoRunStore } = {},
): Promise<TestIngress> {
  const store = opts.store ?? (await createTestStore());
  const queue = new InMemoryQueue();
  const engine = new Engine<unknown>({ store, queue, workflows: buildRegistry(), services: {} });
  const central = opts.yaml
    ? parseConfigSource(opts.yaml, 'test.yml')
    : await loadConfigSource('config/switchyard.yml');
  const config = new ConfigProvider({ central, store });
  const onDelivery = createDeliveryHandler({ engine, queue, config, store });
  return {
    store,
    queue,
    engine,
    config,
    send: (req) => handleGitHubWebhook({ secrets: () => [TEST_SECRET], onDelivery }, toRequest(req)),
  };
}
