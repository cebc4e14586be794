import { InternalError } from '../common/errors.ts';
import type { NormalizedEvent } from '../github/events.ts';

/** Messages the worker consumes. A message names a step slot; stale or duplicate ones are no-ops. */
export type WorkMessage =
  | {
      kind: 'step';
      runId: string;
      seq: number;
      /**
       * Report this version of the run first: a report carried by the step's own message, instead
       * of a message and an invocation of its own (lib/engine/transitions.ts `messagesAfter`).
       */
      report?: number;
      /**
       * The step as the sender scheduled it: the run's workflow, the step's node, the run's
       * version that scheduled it and when it is due (epoch ms). Enough for the worker to lease
       * the step without reading the run first (lib/engine/steps.ts `leaseAtOnce`). A message
       * without them (or naming a workflow this worker lacks) reads the run, then leases.
       */
      workflow?: string;
      node?: string;
      version?: number;
      due?: number;
      /**
       * The run item as the commit that sent the message wrote it (the store's own encoding,
       * `RunStore.carriedRun`), for a step of a `lazyLease` node: its first try runs from it
       * without reading the run (lib/engine/steps.ts). Left out when large.
       */
      item?: string;
    }
  | { kind: 'report'; runId: string; version: number }
  | RouteMessage;

/**
 * A GitHub delivery whose routing waits for its repository's own config (lib/routing/route-later.ts):
 * no run exists yet. It carries the normalised event (bounded: bodies are truncated), and the
 * delivery id keeps the run it may start idempotent.
 */
export interface RouteMessage {
  kind: 'route';
  delivery: string;
  event: NormalizedEvent;
  /** No run exists yet (declared so code filtering messages by run id reads every kind). */
  runId?: undefined;
}

/** The messages the engine itself handles (steps and reports of existing runs). */
export type RunMessage = Exclude<WorkMessage, RouteMessage>;

export interface Outgoing {
  message: WorkMessage;
  /** Delivery delay. SQS caps it at 900 s; the worker re-delays messages that arrive early. */
  delaySeconds?: number;
}

/**
 * The step queue: what carries the engine's step and report messages (and route messages) to the
 * worker. The SQS adapter in AWS, the in-process adapter locally and in tests. Not to be confused
 * with the agents' work queue (lib/agents/work-queue.ts), which orders agent work in DynamoDB.
 */
export interface StepQueue {
  send(batch: Outgoing[]): Promise<void>;
}

export const MAX_DELAY_SECONDS = 900;

/** The largest run item a step message carries (encoded); SQS takes messages up to 256 KiB. */
export const MAX_CARRIED_ITEM_BYTES = 16 * 1024;

export function parseWorkMessage(body: string): WorkMessage {
  return workMessageOf(JSON.parse(body), body);
}

/**
 * A work message from a value already parsed (a direct invocation's event, lib/queue/invoke.ts):
 * only the fields each kind declares, checked. `shown` is what an error quotes.
 */
export function workMessageOf(value: unknown, shown = JSON.stringify(value) ?? String(value)): WorkMessage {
  const m = (typeof value === 'object' && value !== null ? value : {}) as Partial<WorkMessage>;
  if (m.kind === 'step' && typeof m.runId === 'string' && typeof m.seq === 'number') {
    return {
      kind: 'step',
      runId: m.runId,
      seq: m.seq,
      ...(typeof m.report === 'number' ? { report: m.report } : {}),
      ...(typeof m.workflow === 'string' &&
      typeof m.node === 'string' &&
      Number.isSafeInteger(m.version) &&
      Number.isFinite(m.due)
        ? { workflow: m.workflow, node: m.node, version: m.version, due: m.due }
        : {}),
      ...(typeof m.item === 'string' && m.item.length <= MAX_CARRIED_ITEM_BYTES ? { item: m.item } : {}),
    };
  }
  if (m.kind === 'report' && typeof m.runId === 'string' && typeof m.version === 'number') {
    return { kind: 'report', runId: m.runId, version: m.version };
  }
  if (
    m.kind === 'route' &&
    typeof m.delivery === 'string' &&
    typeof m.event === 'object' &&
    m.event !== null &&
    typeof m.event.name === 'string' &&
    typeof m.event.delivery === 'string'
  ) {
    return { kind: 'route', delivery: m.delivery, event: m.event };
  }
  throw new InternalError(`not a work message: ${shown.slice(0, 200)}`);
}
