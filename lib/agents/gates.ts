import type { Signal } from '../engine/engine.ts';
import { InvalidSignalError } from '../engine/errors.ts';
import type { RunStore } from '../engine/ports.ts';
import type { Run } from '../engine/types.ts';
import type { NodeResult } from '../engine/workflow.ts';
import { RunBlockedError } from '../routing/errors.ts';
import type { RoutingDecision } from '../routing/rules.ts';
import { RESULT_EDGE } from './results.ts';

/**
 * Gates that resume by themselves (issue #12):
 * - `ci`: a run the CI guard blocks parks at its route node, "waiting for green CI on main: …",
 *   instead of failing. A green delivery for the repository resumes it (ingress), and the gate
 *   re-checks through the API every `CI_RECHECK_MS` (the sweeper expires it, route runs again and
 *   confirms), so a lost green delivery never strands it. After `guards.ci.maxWaitHours` it fails
 *   with a report.
 * - `hold`: `/hold` (a GitHub comment) marks the run held (one KV item, so it works whatever the
 *   run is doing); the execute node parks at a `hold` gate before its next dispatch, and `/unhold`
 *   clears the mark and resumes it.
 * Both are resumed with a `result` signal carrying the gate's correlation.
 */
export const HOLD_GROUP = 'hold';
export const CI_RECHECK_MS = 30 * 60_000;
const HOLD_RECHECK_MS = 24 * 3600_000;

export const ciCorrelation = (repo: string) => `ci:${repo.toLowerCase()}`;
export const holdCorrelation = (runId: string) => `hold:${runId}`;

export interface Hold {
  by: string;
  at: string;
}

export async function heldBy(store: RunStore, runId: string): Promise<Hold | undefined> {
  return (await store.kvGet<Hold>(HOLD_GROUP, runId))?.value;
}

export async function setHold(store: RunStore, runId: string, hold: Hold): Promise<void> {
  await store.kvPut(HOLD_GROUP, runId, hold, { ttl: Math.floor(Date.now() / 1000) + 30 * 86_400 });
}

/** Clear the hold; resume the run when it is parked at its hold gate. True when it was held. */
export async function liftHold(
  store: RunStore,
  engine: { signal(runId: string, signal: Signal): Promise<Run> },
  run: Run,
  by: string,
): Promise<boolean> {
  const held = await heldBy(store, run.id);
  if (!held) return false;
  await store.kvDelete(HOLD_GROUP, run.id);
  const fresh = (await store.getRun(run.id)) ?? run;
  if (fresh.status === 'waiting' && fresh.gate?.kind === 'hold') {
    await engine.signal(run.id, {
      type: 'result',
      by,
      correlation: holdCorrelation(run.id),
      edge: RESULT_EDGE,
      payload: { unhold: by },
    });
  }
  return true;
}

/** The execute node's wait while the run is held (re-checked daily until the run's deadline). */
export function holdWait(runId: string, hold: Hold, output: Record<string, unknown>): NodeResult {
  return {
    wait: {
      kind: 'hold',
      correlation: holdCorrelation(runId),
      expiresInMs: HOLD_RECHECK_MS,
      prompt: `held by ${hold.by} since ${hold.at.slice(0, 16).replace('T', ' ')} UTC: /unhold to resume`,
    },
    output,
  };
}

/**
 * The route node's answer to a decision the CI guard blocked: park at a `ci` gate (re-checked
 * every `CI_RECHECK_MS`), or fail with a report once `maxWaitHours` have passed since it parked.
 */
export function ciWait(
  run: Run,
  decision: RoutingDecision,
  maxWaitHours: number,
  now: Date,
  node: string,
): NodeResult {
  const repo = run.subject.repo ?? run.subject.key;
  const prev = run.data.ciWait as { since?: unknown } | undefined;
  const since = typeof prev?.since === 'string' ? prev.since : now.toISOString();
  const g = decision.guards.find((x) => x.guard === 'ci' && x.verdict === 'block');
  const branch = g?.branch ?? 'the default branch';
  const failing = [...new Set((g?.failing ?? []).map((f) => f.replace(/ \(.*$/, '')))];
  const deadline = Date.parse(since) + maxWaitHours * 3600_000;
  if (now.getTime() >= deadline) {
    throw new RunBlockedError(
      `waited ${maxWaitHours} h for green CI on ${branch} and gave up; still failing: ${failing.join(', ') || 'unknown'}`,
      { verdicts: g ? [`ci: ${g.failing.join('; ')}`] : [], runId: run.id, node },
    );
  }
  return {
    wait: {
      kind: 'ci',
      correlation: ciCorrelation(repo),
      expiresInMs: Math.max(1_000, Math.min(CI_RECHECK_MS, deadline - now.getTime())),
      prompt: `waiting for green CI on ${branch}: ${failing.join(', ') || 'failing'}`,
    },
    output: { ciWait: { since, branch, failing, until: new Date(deadline).toISOString() } },
  };
}

/** Resume every run parked at the `ci` gate of `repo` (its CI turned green). Route re-confirms. */
export async function resumeCiGates(
  store: RunStore,
  engine: { signal(runId: string, signal: Signal): Promise<Run> },
  repo: string,
): Promise<number> {
  const correlation = ciCorrelation(repo);
  const parked = (await store.listActive()).filter(
    (r) => r.status === 'waiting' && r.gate?.kind === 'ci' && r.gate.correlation === correlation,
  );
  let resumed = 0;
  for (const r of parked) {
    try {
      await engine.signal(r.id, {
        type: 'result',
        by: 'ci-guard',
        correlation,
        edge: RESULT_EDGE,
        payload: { ci: 'green' },
      });
      resumed++;
    } catch (err) {
      // Already moved on (another delivery, the sweeper): nothing to do.
      if (!(err instanceof InvalidSignalError)) throw err;
    }
  }
  return resumed;
}
