import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { instrumented, logger } from '../common/observability.ts';
import type { Delivery, StepBudget } from '../engine/engine.ts';
import { parseWorkMessage, type WorkMessage } from '../queue/port.ts';

/** What consumes a message: the worker app (lib/app/worker.ts), or an engine in tests. */
export interface MessageHandler {
  /**
   * `budget`: the invocation's remaining time (the engine may run several steps within it);
   * `delivery`: how many times SQS has delivered the message.
   */
  handle(message: WorkMessage, budget?: StepBudget, delivery?: Delivery): Promise<unknown>;
}

/**
 * SQS worker: one step (or one report, or one delivery to route later) per message. Powertools
 * Batch reports partial failures, so one failing message is redelivered without redoing the
 * others; stale and duplicate messages are no-ops inside the engine, which is what makes
 * redelivery safe.
 */
export function makeHandler(app: () => Promise<MessageHandler>) {
  const processor = new BatchProcessor(EventType.SQS);
  const record = async (r: SQSRecord, context?: Context): Promise<void> => {
    const message = parseWorkMessage(r.body);
    // Records of a batch are handled concurrently: the run id goes on each line, not on the
    // shared logger, where concurrent records would overwrite each other's.
    // Lambda's remaining time bounds the steps this message may run in a row (no context: one).
    const outcome = await (await app()).handle(
      message,
      context ? { remainingMs: () => context.getRemainingTimeInMillis() } : { remainingMs: () => 0 },
      receiveCountOf(r),
    );
    logger.debug('message handled', { runId: message.runId, kind: message.kind, outcome });
  };
  return async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> =>
    processPartialResponse(event, record, processor, { context });
}

/** Which delivery of its message a record is: a record without the attribute counts as the first. */
function receiveCountOf(r: SQSRecord): Delivery {
  const n = Number(r.attributes?.ApproximateReceiveCount);
  return { receiveCount: Number.isInteger(n) && n > 0 ? n : 1 };
}

/**
 * The deployed function. The app (config, clients, engine, services) is imported on the first
 * message, not at cold start: the bundle is split (infra/functions.ts), so Lambda's INIT phase
 * parses only this module. `workerAppFromEnv` is the memoised initialiser (lib/common/load-once.ts).
 */
export function workerFunction() {
  return instrumented(makeHandler(async () => (await import('./worker.ts')).workerAppFromEnv()));
}
