import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { instrumented, logger } from '../common/observability.ts';
import type { Delivery, StepBudget } from '../engine/engine.ts';
import { type InvokedMessage, invokedMessage, isInvokedMessage, messageOfRecord } from '../queue/invoked.ts';
import type { WorkMessage } from '../queue/port.ts';

/** What consumes a message: the worker app (lib/app/worker.ts), or an engine in tests. */
export interface MessageHandler {
  /**
   * `budget`: the invocation's remaining time (the engine may run several steps within it);
   * `delivery`: how many times SQS has delivered the message.
   */
  handle(message: WorkMessage, budget?: StepBudget, delivery?: Delivery): Promise<unknown>;
}

/**
 * The worker: one step (or one report, or one delivery to route later) per message. A message
 * comes either as a direct invocation (lib/queue/invoke.ts: due now) or in an SQS batch (delayed,
 * or a direct invocation that failed, as Lambda's on-failure destination record). Powertools
 * Batch reports an SQS batch's partial failures, so one failing message is redelivered without
 * redoing the others; a direct invocation that fails throws, and Lambda sends it on to SQS. Stale
 * and duplicate messages are no-ops inside the engine, which is what makes redelivery safe.
 */
export function makeHandler(app: () => Promise<MessageHandler>) {
  const processor = new BatchProcessor(EventType.SQS);
  const handle = async (message: WorkMessage, delivery: Delivery, context?: Context): Promise<void> => {
    // Lambda's remaining time bounds the steps this message may run in a row (no context: one).
    const outcome = await (await app()).handle(
      message,
      context ? { remainingMs: () => context.getRemainingTimeInMillis() } : { remainingMs: () => 0 },
      delivery,
    );
    // Records of a batch are handled concurrently: the run id goes on each line, not on the
    // shared logger, where concurrent records would overwrite each other's.
    logger.debug('message handled', { runId: message.runId, kind: message.kind, outcome });
  };
  const record = async (r: SQSRecord, context?: Context): Promise<void> => {
    const { message, receiveCount } = messageOfRecord(r.body, receiveCountOf(r));
    await handle(message, { receiveCount }, context);
  };
  return async (
    event: SQSEvent | InvokedMessage,
    context: Context,
  ): Promise<SQSBatchResponse | undefined> => {
    if (!isInvokedMessage(event)) return processPartialResponse(event, record, processor, { context });
    // The first delivery: a failed one reaches SQS through the on-failure destination.
    await handle(invokedMessage(event), { receiveCount: 1 }, context);
    return undefined;
  };
}

/** Which delivery of its message a record is, as SQS counts: a record without the attribute counts as the first. */
function receiveCountOf(r: SQSRecord): number {
  const n = Number(r.attributes?.ApproximateReceiveCount);
  return Number.isInteger(n) && n > 0 ? n : 1;
}

/**
 * The deployed function. The app (config, clients, engine, services) is imported on the first
 * message, not at cold start: the bundle is split (infra/functions.ts), so Lambda's INIT phase
 * parses only this module. `workerAppFromEnv` is the memoised initialiser (lib/common/load-once.ts).
 */
export function workerFunction() {
  // The worker sends the messages it schedules for now to itself (lib/queue/invoke.ts); the other
  // functions are given its name (infra). A function cannot be given its own name in CloudFormation.
  process.env.WORKER_FUNCTION_NAME ||= process.env.AWS_LAMBDA_FUNCTION_NAME ?? '';
  return instrumented(makeHandler(async () => (await import('./worker.ts')).workerAppFromEnv()));
}
