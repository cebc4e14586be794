import type { Signal } from '../engine/engine.ts';
import { InvalidSignalError } from '../engine/errors.ts';
import { isTerminal, type NewEvent, type Run } from '../engine/types.ts';
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

async function resume(engine: HubEngine, run: Run, signal: ResultSignal): Promise<boolean> {
  const wf = engine.workflows.get(run.workflow);
  const loops = run.gate !== undefined && wf?.hasEdge(run.gate.node, RESULT_EDGE) === true;
  try {
    // Decided on the run as just read (one read fewer); a run that moved on is read again.
    await engine.signal(run.id, loops ? { ...signal, edge: RESULT_EDGE } : signal, { known: run });
    return true;
  } catch (err) {
    if (err instanceof InvalidSignalError) return false;
    throw err;
  }
}

export async function deliverResult(
  engine: HubEngine,
  queue: AgentWorkQueue,
  r: AgentResult,
  now: () => Date = () => new Date(),
  /** The run's dispatch record as the caller just read it (spares reading it again). */
  known?: { value: DispatchRecord; version: number },
): Promise<DeliveryResult> {
  const record = known ?? (await queue.getDispatch(r.runId));
  if (record?.value.item === r.item && record.value.state === 'finished') return 'duplicate';
  const finished = async () => {
    // Tried at the version read above first (one read fewer); moved on meanwhile, it is read again.
    await queue.updateDispatch(
      r.runId,
      (d) =>
        d.item === r.item && d.state !== 'finished'
          ? { ...d, state: 'finished', finishedAt: now().toISOString() }
          : undefined,
      record,
    );
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    const run = await engine.getRun(r.runId);
    if (!run || isTerminal(run.status)) return 'stale';
    if (waitsFor(run, r.correlation)) {
      if (await resume(engine, run, signalFor(r))) {
        await finished();
        return 'resumed';
      }
      continue; // the run moved between our read and the signal: look again
    }
    if (run.status === 'waiting') return 'stale'; // waiting for something else: a late or foreign answer
    // Mid-step after our resume lost: most likely to another delivery of this answer (two callbacks
    // at once, a callback and the completion), which marks the record finished once it committed.
    if (attempt > 0) {
      const latest = await queue.getDispatch(r.runId);
      if (latest?.value.item === r.item && latest.value.state === 'finished') return 'duplicate';
    }
    // Mid-step: park the answer for the run's next wait.
    const parked = await queue.park({ ...r, at: now().toISOString() });
    if (!parked) return 'duplicate';
    await finished();
    // The step may have committed while we parked: then deliver it ourselves.
    const again = await engine.getRun(r.runId);
    if (again && waitsFor(again, r.correlation) && (await resume(engine, again, signalFor(r)))) {
      await queue.unpark(r.correlation);
      return 'resumed';
    }
    return 'parked';
  }
  return 'stale';
}

/** Deliver a parked answer to a run that now waits for it (the work reporter and the execute node call this). */
export async function deliverParked(engine: HubEngine, queue: AgentWorkQueue, run: Run): Promise<boolean> {
  const correlation = run.gate?.correlation;
  if (!correlation || !waitsFor(run, correlation)) return false;
  const parked = await queue.parked(correlation);
  if (!parked) return false;
  const ok = await resume(engine, run, signalFor(parked));
  if (ok) await queue.unpark(correlation);
  return ok;
}
