import { type WorkMessage, workMessageOf } from './port.ts';

/*
 * The worker's side of direct invocations (lib/queue/invoke.ts sends them): what the event of one
 * looks like, and how an SQS record carries one that failed. Kept apart from the sender, so the
 * worker's cold start does not load the Lambda client.
 */

/** The `source` of the event a direct invocation carries. */
export const INVOKED_SOURCE = 'switchyard.step-queue';

/** The event the worker receives when invoked directly: one message. */
export interface InvokedMessage {
  source: typeof INVOKED_SOURCE;
  message: WorkMessage;
}

/** Whether a worker event is a direct invocation (else it is an SQS batch). */
export function isInvokedMessage(event: unknown): event is InvokedMessage {
  return (
    typeof event === 'object' &&
    event !== null &&
    (event as Partial<InvokedMessage>).source === INVOKED_SOURCE &&
    'message' in event
  );
}

/** A direct invocation's message, checked like an SQS body. */
export function invokedMessage(event: InvokedMessage): WorkMessage {
  return workMessageOf(event.message);
}

/**
 * The message an SQS record carries, and which delivery of it this is. A record is either a
 * message sent to SQS, or the on-failure destination record Lambda wrote for a direct invocation
 * that failed (`requestPayload` is the event, `requestContext.approximateInvokeCount` its tries):
 * that message has been delivered that many times before SQS delivered it.
 */
export function messageOfRecord(
  body: string,
  receiveCount: number,
): { message: WorkMessage; receiveCount: number } {
  const value = JSON.parse(body) as unknown;
  if (isDestinationRecord(value)) {
    const tries = Number(value.requestContext.approximateInvokeCount);
    return {
      message: invokedMessage(value.requestPayload),
      receiveCount: receiveCount + (Number.isInteger(tries) && tries > 0 ? tries : 1),
    };
  }
  return { message: workMessageOf(value, body), receiveCount };
}

interface DestinationRecord {
  requestContext: { approximateInvokeCount?: unknown };
  requestPayload: InvokedMessage;
}

function isDestinationRecord(value: unknown): value is DestinationRecord {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<DestinationRecord>;
  return (
    typeof v.requestContext === 'object' && v.requestContext !== null && isInvokedMessage(v.requestPayload)
  );
}
