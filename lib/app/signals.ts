import type { ResumeFn } from '../agents/callbacks.ts';
import { deliverResult, type HubEngine } from '../agents/results.ts';
import { AgentWorkQueue } from '../agents/work-queue.ts';
import { Engine } from '../engine/engine.ts';
import type { RunStore } from '../engine/ports.ts';
import type { WorkflowTuning } from '../engine/workflow.ts';
import type { StepQueue } from '../queue/port.ts';
import { buildRegistry } from '../workflows/index.ts';

export interface SignalEngineOptions {
  store: RunStore;
  queue: StepQueue;
  now?: () => Date;
  /** Per-workflow tuning from the config (timeouts, retries), when the caller has read it. */
  tuning?: Record<string, WorkflowTuning>;
}

/**
 * The engine of every function that starts or signals runs but never executes a step (the
 * webhook, both callbacks, the console): the graphs, and no services. It commits to the table and
 * enqueues the next step; the worker runs it.
 */
export function signalOnlyEngine(opts: SignalEngineOptions): Engine<unknown> {
  return new Engine<unknown>({
    store: opts.store,
    queue: opts.queue,
    workflows: buildRegistry(opts.tuning),
    services: {},
    ...(opts.now ? { now: opts.now } : {}),
  });
}

/**
 * What an agent's result resumes, shared by `POST /callbacks/{token}` and `POST /callbacks/actions`:
 * the hub's result delivery (it parks a result that arrives mid-step) over a signal-only engine,
 * or over `engine` when the caller has one (the local stack shares the worker's).
 */
export function resultResumer(opts: SignalEngineOptions & { engine?: HubEngine }): ResumeFn {
  const engine = opts.engine ?? signalOnlyEngine(opts);
  const work = new AgentWorkQueue(opts.store, opts.now ? { now: opts.now } : {});
  return (result, known) => deliverResult(engine, work, result, opts.now, known);
}
