import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { QueueError } from './errors.ts';
import { MAX_DELAY_SECONDS, type Outgoing, type StepQueue } from './port.ts';

/** The SQS adapter: SendMessageBatch (10 per call) with DelaySeconds for backoff. */
export class SqsQueue implements StepQueue {
  constructor(
    private readonly client: SQSClient,
    private readonly queueUrl: string,
  ) {}

  async send(batch: Outgoing[]): Promise<void> {
    for (let i = 0; i < batch.length; i += 10) {
      const chunk = batch.slice(i, i + 10);
      let entries = chunk.map((o, j) => ({
        Id: String(j),
        MessageBody: JSON.stringify(o.message),
        ...(o.delaySeconds
          ? { DelaySeconds: Math.min(MAX_DELAY_SECONDS, Math.max(0, Math.ceil(o.delaySeconds))) }
          : {}),
      }));
      for (let attempt = 0; entries.length > 0; attempt++) {
        const out = await this.client
          .send(new SendMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: entries }))
          .catch((cause: unknown) => {
            // The SDK already retried what it could; the sweeper re-sends what was not sent.
            throw new QueueError(`SQS SendMessageBatch failed: ${(cause as Error).name}`, { cause });
          });
        const failed = new Set((out.Failed ?? []).map((f) => f.Id));
        if (failed.size === 0) break;
        if (attempt >= 3) {
          // The run's state is committed; the sweeper re-sends what could not be sent.
          throw new QueueError(
            `SQS refused ${failed.size} messages: ${(out.Failed ?? []).map((f) => f.Code).join(',')}`,
          );
        }
        entries = entries.filter((e) => failed.has(e.Id));
        await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
      }
    }
  }
}
