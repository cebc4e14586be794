import type { Signal } from '../engine/engine.ts';
import { InvalidSignalError } from '../engine/errors.ts';
import { isResultKey, isTerminal, type NewEvent, type Run } from '../engine/types.ts';
import type { AgentResult, AgentWorkQueue, DispatchRecord } from './work-queue.ts';

/**
 * Delivering an agent's answer to its run. The run waits at an `agent` gate whose correlation is
 * the work item's; the answer resumes it with a `result` signal along the edge `next` (back into
 * the execute node, which counts failures, consults and escalates), or, in a workflow without
 * that edge, the engine's default (`ok: false` ends the run as failed).
 *
 * An answer can arrive before the step that dispatched the task has committed (a fast agent, a
 * quick workflow): the run is still `running`, so the signal is refused. The answer is then
 * parked in KV, and whoever sees the run waiting next (the work reporter on the run's next
 * state, or the execute node when it is re-entered) delivers it. Nothing polls.
 */

/** The part of the engine the hub uses (the real Engine satisfies it). */
export interface HubEngine {
  signal(runId: string, signal: Signal, opts?: { known?: Run }): Promise<Run>;
  getRun(id: string): Promise<Run | null>;
  recordEvent(runId: string, event: NewEvent): Promise<void>;
  readonly workflows: { get(name: string): { hasEdge(from: string, label: string): boolean } | undefined };
}

export type { AgentResult };

export type DeliveryResult = 'resumed' | 'parked' | 'stale' | 'duplicate';

/** The edge an answer resumes along: `next` when the workflow loops back into its execute node. */
export const RESULT_EDGE = 'next';

type ResultSignal = Extract<Signal, { type: 'result' }>;

function signalFor(r: Pick<AgentResult, 'by' | 'correlation' | 'ok' | 'payload' | 'item'>): ResultSignal {
  return {
    type: 'result',
    by: r.by,
    correlation: r.correlation,
    ok: r.ok,
    payload: {
      ...r.payload,
      kind: 'completed',
      item: r.item,
      correlation: r.correlation,
      ok: r.ok,
      by: r.by,
    },
  };
}

const waitsFor = (run: Run, correlation: string) =>
  run.status === 'waiting' && run.gate?.kind === 'agent' && run.gate.correlation === correlation;

/** The run as the answer left it, or undefined when the run did not take it (it moved on). */
async function resume(engine: HubEngine, run: Run, signal: ResultSignal): Promise<Run | undefined> {
  const wf = engine.workflows.get(run.workflow);
  const loops = run.gate !== undefined && wf?.hasEdge(run.gate.node, RESULT_EDGE) === true;
  try {
    // Decided on the run as just read (one read fewer); a run that moved on is read again.
    return await engine.signal(run.id, loops ? { ...signal, edge: RESULT_EDGE } : signal, { known: run });
  } catch (err) {
    if (err instanceof InvalidSignalError) return undefined;
    throw err;
  }
}

/**
 * An answer that ended its run without keeping it (a failure along no edge fails the run as it
 * stands): marked on the dispatch record, so the end's report does not cancel a workflow run
 * that already finished (work-reporter.ts). Every other answer is kept in the run's data (`took`).
 */
async function markIfEnded(
  queue: AgentWorkQueue,
  r: AgentResult,
  after: Run,
  now: () => Date,
): Promise<void> {
  if (!isTerminal(after.status) || took(after, r.correlation)) return;
  await queue.updateDispatch(r.runId, (d) =>
    d.item === r.item && d.state !== 'finished'
      ? { ...d, state: 'finished', finishedAt: now().toISOString() }
      : undefined,
  );
}

export async function deliverResult(
  engine: HubEngine,
  queue: AgentWorkQueue,
  r: AgentResult,
  now: () => Date = () => new Date(),
  /** The run's dispatch record as the caller just read it, if it did. */
  known?: { value: DispatchRecord; version: number },
): Promise<DeliveryResult> {
  // Marked by a cancel that stopped the item's workflow run (work-reporter.ts), or by the previous
  // version of this code, which marked every delivery so.
  if (known?.value.item === r.item && known.value.state === 'finished') return 'duplicate';
  for (let attempt = 0; attempt < 3; attempt++) {
    const run = await engine.getRun(r.runId);
    if (!run) return 'stale';
    // The run's own record of what it took: a second delivery of an answer (the callback and the
    // completion both deliver it, a callback sent twice) finds it there, whatever the run did since.
    if (took(run, r.correlation)) return 'duplicate';
    if (isTerminal(run.status)) return 'stale';
    if (waitsFor(run, r.correlation)) {
      const after = await resume(engine, run, signalFor(r));
      if (!after) continue; // the run moved between our read and the signal: look again
      await markIfEnded(queue, r, after, now);
      return 'resumed';
    }
    if (run.status === 'waiting') return 'stale'; // waiting for something else: a late or foreign answer
    // Mid-step, before its wait for this answer: park it for that wait.
    const parked = await queue.park({ ...r, at: now().toISOString() });
    if (!parked) return 'duplicate';
    // The step may have committed while we parked: then deliver it ourselves.
    const again = await engine.getRun(r.runId);
    const after =
      again && waitsFor(again, r.correlation) ? await resume(engine, again, signalFor(r)) : undefined;
    if (after) {
      await queue.unpark(r.correlation);
      await markIfEnded(queue, r, after, now);
      return 'resumed';
    }
    return 'parked';
  }
  return 'stale';
}

/**
 * Whether the run took this answer: a resumed gate's output is its node's `resultKey` (the
 * engine's types.ts), the answer's payload as signalled here, with its correlation. It stays in the
 * run's data until the node's next answer replaces it, which only comes after the run waited for
 * another item; a late copy of an older answer then finds the run waiting for something else.
 */
export function took(run: Run, correlation: string): boolean {
  return Object.entries(run.data).some(
    ([key, value]) =>
      isResultKey(key) &&
      typeof value === 'object' &&
      value !== null &&
      (value as { correlation?: unknown; kind?: unknown }).correlation === correlation &&
      (value as { kind?: unknown }).kind === 'completed',
  );
}

/** Deliver a parked answer to a run that now waits for it (the work reporter and the execute node call this). */
export async function deliverParked(engine: HubEngine, queue: AgentWorkQueue, run: Run): Promise<boolean> {
  const correlation = run.gate?.correlation;
  if (!correlation || !waitsFor(run, correlation)) return false;
  const parked = await queue.parked(correlation);
  if (!parked) return false;
  const after = await resume(engine, run, signalFor(parked));
  if (!after) return false;
  await queue.unpark(correlation);
  await markIfEnded(queue, parked, after, () => new Date());
  return true;
}
