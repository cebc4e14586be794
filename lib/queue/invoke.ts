import type { LambdaClient } from '@aws-sdk/client-lambda';
import { logger } from '../common/observability.ts';
import { INVOKED_SOURCE, type InvokedMessage } from './invoked.ts';
import type { Outgoing, StepQueue, WorkMessage } from './port.ts';

/**
 * The step queue in AWS: a message due now goes to the worker as an asynchronous invocation of
 * the worker function (`Invoke`, `InvocationType: Event`); a delayed one, and any the Invoke API
 * does not take, goes to SQS (the `fallback`).
 *
 * Why: through SQS a message is three billed requests (send, the event source's receive, its
 * delete) besides the invocation it causes; invoked, it is the invocation alone. Lambda keeps an
 * asynchronous event in its own queue until the function takes it (throttles included), and the
 * worker's asynchronous invoke config (infra) sends an event whose invocation failed, or that
 * waited too long, to the SQS queue as an on-failure destination record: from there it is
 * received like any other message (`messageOfRecord`), redelivered by SQS and dead-lettered
 * after its receives. So a message is never only in a place where nothing retries it, and the
 * sweeper still re-sends whatever a crash kept from being sent at all.
 *
 * Delays stay with SQS: an asynchronous invocation cannot be delayed.
 */
export class InvokeQueue implements StepQueue {
  private readonly client: Promise<LambdaClient>;

  /**
   * `client` may still be loading (`lambdaClient`): the SDK's module is then evaluated while the
   * caller does its first reads, not at its cold start, and awaited on the first send.
   */
  constructor(
    client: LambdaClient | Promise<LambdaClient>,
    private readonly functionName: string,
    private readonly fallback: StepQueue,
  ) {
    this.client = Promise.resolve(client);
    // A client that failed to load fails each send (to SQS); it is no unhandled rejection meanwhile.
    this.client.catch(() => {});
  }

  async send(batch: Outgoing[]): Promise<void> {
    const queued = batch.filter((o) => !invokesDirectly(o));
    const refused = await Promise.all(
      batch.filter(invokesDirectly).map(async (o) => ((await this.invoke(o.message)) ? undefined : o)),
    );
    for (const o of refused) if (o) queued.push(o);
    if (queued.length > 0) await this.fallback.send(queued);
  }

  /** Whether Lambda took the event (202); anything else goes to the fallback. */
  private async invoke(message: WorkMessage): Promise<boolean> {
    const payload = JSON.stringify({ source: INVOKED_SOURCE, message } satisfies InvokedMessage);
    if (Buffer.byteLength(payload) > MAX_INVOKE_PAYLOAD_BYTES) return false;
    try {
      const [client, { InvokeCommand }] = await Promise.all([this.client, import('@aws-sdk/client-lambda')]);
      const out = await client.send(
        new InvokeCommand({
          FunctionName: this.functionName,
          InvocationType: 'Event',
          Payload: Buffer.from(payload),
        }),
      );
      return out.StatusCode === 202;
    } catch (err) {
      // The SDK already retried throttles and 5xx; SQS takes the message instead.
      logger.warn('worker invocation refused, sending the message to SQS', {
        runId: message.runId,
        error: (err as Error).name,
      });
      return false;
    }
  }
}

/** Lambda takes asynchronous invocation payloads up to 256 KB. */
const MAX_INVOKE_PAYLOAD_BYTES = 256 * 1024;

/** Whether `InvokeQueue` sends this message by direct invocation: it is due now. */
export function invokesDirectly(o: Outgoing): boolean {
  return !(o.delaySeconds !== undefined && o.delaySeconds > 0);
}

/** A Lambda client from the environment, its SDK loaded without blocking the caller (see InvokeQueue). */
export function lambdaClient(): Promise<LambdaClient> {
  return import('@aws-sdk/client-lambda').then(({ LambdaClient }) => new LambdaClient({}));
}
