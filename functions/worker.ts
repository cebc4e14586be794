import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { workerAppFromEnv } from '../lib/app/worker.ts';
import { instrumented, logger } from '../lib/common/observability.ts';
import type { Engine } from '../lib/engine/engine.ts';
import { parseWorkMessage } from '../lib/queue/port.ts';

/**
 * SQS worker: one step (or one report) per message. Powertools Batch reports partial failures,
 * so one failing message is redelivered without redoing the others; stale and duplicate messages
 * are no-ops inside the engine, which is what makes redelivery safe.
 */
export function makeHandler(engine: () => Promise<Engine<unknown>>) {
  const processor = new BatchProcessor(EventType.SQS);
  const record = async (r: SQSRecord): Promise<void> => {
    const message = parseWorkMessage(r.body);
    // Records of a batch are handled concurrently: the run id goes on each line, not on the
    // shared logger, where concurrent records would overwrite each other's.
    const outcome = await (await engine()).handle(message);
    logger.debug('message handled', { runId: message.runId, kind: message.kind, outcome });
  };
  return async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> =>
    processPartialResponse(event, record, processor, { context });
}

export const handler = instrumented(makeHandler(() => workerAppFromEnv().then((a) => a.engine)));
