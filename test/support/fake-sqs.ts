import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoopbackServer } from './loopback.ts';

/** One SendMessageBatch entry as the SDK put it on the wire (AWS JSON 1.0). */
export interface WireEntry {
  Id: string;
  MessageBody: string;
  DelaySeconds?: number;
}

/** One request as the fake received it. */
export interface SqsRequest {
  /** The operation, from `x-amz-target` (`AmazonSQS.SendMessageBatch`). */
  target: string;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

/** A message SQS accepted. */
export interface AcceptedMessage {
  queueUrl: string;
  messageId: string;
  body: string;
  delaySeconds: number;
}

/**
 * Decides, per entry, whether SQS refuses it: return an error code, or undefined to accept.
 * `call` is the zero-based index of the SendMessageBatch call since the last reset.
 */
export type Refusal = (entry: WireEntry, call: number) => string | undefined;

const MAX_BATCH = 10;
const MAX_DELAY_SECONDS = 900;
const LEGACY_CODES: Record<string, string> = {
  QueueDoesNotExist: 'AWS.SimpleQueueService.NonExistentQueue',
};

/**
 * SQS played on loopback, speaking the JSON protocol the AWS SDK v3 uses (`x-amz-target`,
 * `application/x-amz-json-1.0`). It records every request, checks SendMessageBatch as SQS does
 * (known queue, 1–10 entries, distinct ids, delays 0–900), answers each accepted entry with the
 * MD5 of its body (the SDK verifies it), and refuses entries as `refuse` says.
 */
export class FakeSqs extends LoopbackServer {
  readonly requests: SqsRequest[] = [];
  readonly accepted: AcceptedMessage[] = [];
  refuse: Refusal = () => undefined;
  private readonly queues = new Set<string>();

  /** A queue that exists, and its URL. */
  createQueue(name: string): string {
    const url = `${this.url}/000000000000/${name}`;
    this.queues.add(url);
    return url;
  }

  /** The SendMessageBatch requests, in order. */
  batches(): Array<{ QueueUrl: string; Entries: WireEntry[] }> {
    return this.requests
      .filter((r) => r.target === 'AmazonSQS.SendMessageBatch')
      .map((r) => r.body as { QueueUrl: string; Entries: WireEntry[] });
  }

  reset(): void {
    this.requests.length = 0;
    this.accepted.length = 0;
    this.refuse = () => undefined;
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = (await this.bodyOf(req)).toString('utf8');
    const target = String(req.headers['x-amz-target'] ?? '');
    let body: Record<string, unknown> = {};
    try {
      body = raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
    } catch {
      return this.error(res, 'SerializationException', 'body is not JSON');
    }
    this.requests.push({ target, headers: { ...req.headers }, body });

    if (req.method !== 'POST' || req.headers['content-type'] !== 'application/x-amz-json-1.0') {
      return this.error(res, 'InvalidRequest', 'expected a POST of application/x-amz-json-1.0');
    }
    if (target !== 'AmazonSQS.SendMessageBatch') {
      return this.error(res, 'UnsupportedOperation', `${target} is not played by this fake`);
    }
    const queueUrl = String(body.QueueUrl ?? '');
    if (!this.queues.has(queueUrl)) {
      return this.error(res, 'QueueDoesNotExist', 'The specified queue does not exist.');
    }
    const entries = (body.Entries ?? []) as WireEntry[];
    if (entries.length === 0) return this.error(res, 'EmptyBatchRequest', 'no entries');
    if (entries.length > MAX_BATCH) {
      return this.error(res, 'TooManyEntriesInBatchRequest', `${entries.length} entries`);
    }
    if (new Set(entries.map((e) => e.Id)).size !== entries.length) {
      return this.error(res, 'BatchEntryIdsNotDistinct', 'two entries share an Id');
    }
    // Zero-based index of this SendMessageBatch call (it is already recorded).
    const call = this.batches().length - 1;
    const successful: Array<Record<string, string>> = [];
    const failed: Array<Record<string, unknown>> = [];
    for (const e of entries) {
      const delay = e.DelaySeconds ?? 0;
      if (!Number.isInteger(delay) || delay < 0 || delay > MAX_DELAY_SECONDS) {
        failed.push({ Id: e.Id, SenderFault: true, Code: 'InvalidParameterValue', Message: 'DelaySeconds' });
        continue;
      }
      const code = this.refuse(e, call);
      if (code) {
        failed.push({ Id: e.Id, SenderFault: false, Code: code, Message: `refused: ${code}` });
        continue;
      }
      const messageId = randomUUID();
      this.accepted.push({ queueUrl, messageId, body: e.MessageBody, delaySeconds: delay });
      successful.push({
        Id: e.Id,
        MessageId: messageId,
        MD5OfMessageBody: createHash('md5').update(e.MessageBody, 'utf8').digest('hex'),
      });
    }
    res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': randomUUID() });
    res.end(JSON.stringify({ Successful: successful, Failed: failed }));
  }

  private error(res: ServerResponse, code: string, message: string): void {
    res.writeHead(400, {
      'content-type': 'application/x-amz-json-1.0',
      'x-amzn-requestid': randomUUID(),
      // The legacy query-protocol code, which the SDK reports as the error's name (as SQS does).
      'x-amzn-query-error': `${LEGACY_CODES[code] ?? `AWS.SimpleQueueService.${code}`};Sender`,
    });
    res.end(JSON.stringify({ __type: `com.amazonaws.sqs#${code}`, message }));
  }
}
