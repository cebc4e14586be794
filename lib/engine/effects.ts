import { InternalError } from '../common/errors.ts';
import { LeaseLostError, StepTimeoutError } from './errors.ts';
import type { EffectClaim, EffectLedger, EffectRef, LeaseFence } from './ports.ts';
import { ConcurrencyError } from './store-errors.ts';
import type { Run } from './types.ts';

/**
 * The one exactly-once primitive for side effects (issue #13), `ctx.effect(name, fn, {scope})`.
 *
 * - Keyed per STEP, not per attempt: a retried or taken-over step finds what an earlier attempt
 *   did and gets its recorded result instead of acting again. `scope: 'run'` shares one record
 *   across every step of the run (one Discord thread per run, one dispatch per work item).
 * - Claimed, then acted, then recorded. The claim is fenced by the step's lease: it carries the
 *   lease's version, so a worker whose lease was taken over can never claim over the takeover,
 *   and the lease is checked once the claim is in place, so a worker that lost its lease (timed
 *   out, cancelled, taken over) does not start the effect; two workers never both hold the claim. The record is conditional on the claim alone
 *   (one write, not a transaction): a takeover claims again, so the worker it replaced cannot
 *   record, while a worker that acted and only lost its lease records what it did, and the next
 *   attempt finds it instead of acting again.
 * - The one window left is at-least-once: a worker that stops after acting and before recording
 *   leaves its claim pending; the next attempt acts again, and is told so (`interrupted: true`)
 *   so an effect that can find what it did (look up a dispatched run, a posted comment) does that
 *   instead of acting twice. An `fn` that throws counts the same: it may have acted.
 */
export type EffectScope = 'step' | 'run';

export interface EffectOptions {
  /** 'step' (default): once per step, across its attempts. 'run': once per run, across its steps. */
  scope?: EffectScope;
  /**
   * `'by-caller'`: `fn` itself writes what it did, in a record its caller reads before it calls
   * `effect` again (and then does not call it), so the ledger keeps only the claim that fences it:
   * one write fewer per effect. The at-least-once window is the same, ending at `fn`'s own write
   * instead of the ledger's: an attempt that finds the claim but not the caller's record acts again
   * and is told `interrupted`. `fn`'s write must not depend on this worker still holding the
   * lease (a worker that acted and then lost its lease must still record what it did), and a
   * takeover that acted again must not overwrite it (the first record wins). The execute node's
   * dispatch does this with its dispatch record (lib/agents/execute.ts).
   */
  recorded?: 'by-ledger' | 'by-caller';
  /**
   * With `recorded: 'by-caller'`: the caller's own record claims the effect too, in the write it
   * makes before acting anyway, so the ledger is not written at all (one write fewer per effect).
   * `claim(fence)` writes it conditional on no later lease having claimed it: a record claimed
   * under a fence version above `fence.version` refuses it (throw ConcurrencyError), one of an
   * older version is taken over (`interrupted`: that attempt claimed and never recorded). It
   * answers as the ledger would: the result when the record says the effect was done. The lease
   * is checked once the claim is in place, as after a ledger claim; an interrupted claim also
   * looks for a result the ledger holds (journaled by a version of the caller before its claim
   * moved into its record). The execute node's dispatch record does this (lib/agents/execute.ts).
   */
  claim?: (fence: LeaseFence) => Promise<EffectClaim>;
}

export interface EffectAttempt {
  /** An earlier attempt claimed this effect and never recorded it: it may or may not have acted. */
  interrupted: boolean;
}

export type EffectFn<T> = (attempt: EffectAttempt) => Promise<T>;

/** The leased step an effect runs in. */
export interface EffectStep {
  runId: string;
  /**
   * The run as leased by this step (its version is the lease's), its lease written first if the
   * step holds it unwritten (hold.ts): an effect is never claimed without a written lease.
   */
  leased: () => Promise<Run>;
  node: string;
  /** This worker's id, for a leased run that names no owner. */
  owner: string;
  signal: AbortSignal;
  now: () => Date;
}

/** Which journal record an effect is (the store turns it into its key). */
export function effectKey(run: Run, node: string, name: string, scope: EffectScope = 'step'): EffectRef {
  if (scope === 'run') return { scope: 'run', name };
  const step = run.step;
  if (!step) throw new InternalError(`run ${run.id} has no step to journal effect ${name} under`);
  return { scope: 'step', node, firstSeq: step.firstSeq ?? step.seq, name };
}

export async function runEffect<T>(
  store: EffectLedger,
  step: EffectStep,
  name: string,
  fn: EffectFn<T>,
  opts: EffectOptions = {},
): Promise<T> {
  const { node, signal } = step;
  const notAfterTimeout = () => {
    if (signal.aborted) {
      throw new StepTimeoutError(`effect ${name} not started: ${node} timed out`, {
        runId: step.runId,
        node,
      });
    }
  };
  // A step that timed out writes no lease for it.
  notAfterTimeout();
  const run = await step.leased();
  notAfterTimeout();
  const owner = run.lease?.owner ?? step.owner;
  const key = effectKey(run, node, name, opts.scope);
  const fence = () => ({ version: run.version, owner, now: step.now().toISOString() });
  // One claim per lease: the leased version is unique to this lease.
  const claim = `${owner}@${run.version}`;
  const claimed = await fenced(run, node, name, 'started', () =>
    opts.claim
      ? claimByCaller(store, run, key, fence(), opts.claim)
      : store.claimEffect(run.id, key, fence(), claim),
  );
  if (claimed.outcome === 'done') return claimed.result as T;
  notAfterTimeout();
  const value = await fn({ interrupted: claimed.interrupted });
  if (opts.recorded === 'by-caller') return value;
  // Recorded even if the step timed out or lost its lease meanwhile (it was done), unless a
  // takeover claimed it again.
  const result = value === undefined ? null : value;
  await fenced(run, node, name, 'recorded', () => store.recordEffect(run.id, key, claim, result));
  return value;
}

/** A claim in the caller's record (`EffectOptions.claim`), then the lease checked as the ledger's claim does. */
async function claimByCaller(
  store: EffectLedger,
  run: Run,
  key: EffectRef,
  fence: LeaseFence,
  claim: (fence: LeaseFence) => Promise<EffectClaim>,
): Promise<EffectClaim> {
  const claimed = await claim(fence);
  if (claimed.outcome === 'done') return claimed;
  if (!(await store.leaseHolds(run.id, fence)))
    throw new ConcurrencyError(`effect ${key.name} not claimed: run ${run.id} lost the step's lease`, {
      runId: run.id,
    });
  if (!claimed.interrupted) return claimed;
  const journaled = await store.getEffect(run.id, key);
  return journaled ? { outcome: 'done', result: journaled.result } : claimed;
}

async function fenced<T>(run: Run, node: string, name: string, what: string, write: () => Promise<T>) {
  try {
    return await write();
  } catch (err) {
    if (!(err instanceof ConcurrencyError)) throw err;
    throw new LeaseLostError(`effect ${name} not ${what}: ${node} of run ${run.id} lost its lease`, {
      runId: run.id,
      node,
      cause: err,
    });
  }
}
