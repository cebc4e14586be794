import { randomBytes } from 'node:crypto';
import type { EngineCore } from './core.ts';
import { InvalidSignalError, InvalidSubjectError, RunConflictError, RunPausedError } from './errors.ts';
import { auditPause, describePause, pausedFor } from './pause.ts';
import type { ConcurrencyPolicy } from './ports.ts';
import type { Signals } from './signals.ts';
import { created } from './transitions.ts';
import { isTerminal, type Run, type Subject, type Trigger } from './types.ts';
import type { SubjectField, Workflow } from './workflow.ts';

export interface StartRunInput {
  workflow: string;
  subject: Subject | string;
  trigger: Trigger;
  input?: Record<string, unknown>;
  idempotencyKey?: string;
  concurrency?: ConcurrencyPolicy;
}

export interface StartRunResult {
  run: Run;
  outcome: 'created' | 'duplicate' | 'attached' | 'superseded';
}

export function subjectOf(subject: Subject | string): Subject {
  if (typeof subject === 'string') {
    const m = /^([\w.-]+\/[\w.-]+)(?:#(\d+))?$/.exec(subject);
    if (m?.[1]) {
      return { repo: m[1], ...(m[2] ? { issue: Number(m[2]) } : {}), key: subject };
    }
    return { key: subject };
  }
  return subject;
}

const SUBJECT_FIELDS: Record<SubjectField, { valid: (s: Subject) => boolean; expected: string }> = {
  repo: {
    valid: (s) => typeof s.repo === 'string' && /^[\w.-]+\/[\w.-]+$/.test(s.repo),
    expected: 'owner/name',
  },
  issue: {
    valid: (s) => Number.isSafeInteger(s.issue) && (s.issue as number) > 0,
    expected: 'a positive integer',
  },
};

/** Refuse a subject without the fields `wf` declares as required (before anything is written). */
export function checkSubject(wf: Pick<Workflow<unknown>, 'name' | 'requires'>, subject: Subject): void {
  for (const field of wf.requires) {
    const rule = SUBJECT_FIELDS[field];
    if (rule.valid(subject)) continue;
    const got = subject[field];
    throw new InvalidSubjectError(
      `${wf.name} needs subject.${field} (${rule.expected}); ${
        got === undefined ? 'it is missing' : `got ${JSON.stringify(got)}`
      } in ${JSON.stringify(subject.key)}`,
      { field: `subject.${field}` },
    );
  }
}

/** Time-sortable, URL-safe run ids: base36 millis + 40 random bits. */
export function newRunId(now: Date): string {
  return `r${now.getTime().toString(36)}${randomBytes(5).toString('hex')}`;
}

/**
 * Start a run, idempotently on `idempotencyKey`, under the subject's concurrency policy: `reject`
 * refuses while another run of the workflow is active on the subject, `attach` answers that run,
 * `supersede` cancels it and starts anew.
 */
export async function startRun<S>(
  core: EngineCore<S>,
  signals: Signals<S>,
  input: StartRunInput,
): Promise<StartRunResult> {
  const wf = core.workflow(input.workflow);
  const policy = input.concurrency ?? 'attach';
  const subject = subjectOf(input.subject);
  checkSubject(wf, subject);
  // The kill switch: refuse (and record why) before anything is written.
  const paused = await pausedFor(core.store, subject.repo);
  if (paused) {
    const reason = describePause(paused);
    await auditPause(core.store, 'run.refused', {
      reason,
      workflow: wf.name,
      subject,
      trigger: input.trigger,
    });
    throw new RunPausedError(`no new runs: ${reason}`);
  }
  let superseded = false;
  /** The run id the idempotency key reserved for a run never written (the store's `reserved`). */
  let reserved: string | undefined;
  for (let attempt = 0; attempt < 5; attempt++) {
    const now = core.now();
    const fresh = created(
      wf,
      {
        id: reserved ?? newRunId(now),
        subject,
        trigger: input.trigger,
        ...(input.input !== undefined ? { input: input.input } : {}),
        ...(input.idempotencyKey !== undefined ? { idempotencyKey: input.idempotencyKey } : {}),
        concurrency: policy,
      },
      { at: now.toISOString(), reporting: core.reporters.length > 0 },
    );
    const res = await core.create(fresh, input.idempotencyKey);
    if (res.outcome === 'created') {
      await core.send(res.run, fresh.messages);
      return { run: res.run, outcome: superseded ? 'superseded' : 'created' };
    }
    if (res.outcome === 'duplicate') return { run: res.run, outcome: 'duplicate' };
    if (res.outcome === 'reserved') {
      // An earlier try of this delivery stopped before its run was written: create it now.
      reserved = res.runId;
      continue;
    }
    if (res.outcome === 'abandoned') {
      // This try stalled past the lock's grace, and its run id was given up: again, under a new one.
      reserved = undefined;
      continue;
    }

    // The subject has an active run of this workflow.
    const active = await core.store.getRun(res.activeRunId);
    if (policy === 'reject') {
      throw new RunConflictError(`${subject.key} already has an active ${wf.name} run ${res.activeRunId}`, {
        activeRunId: res.activeRunId,
      });
    }
    if (policy === 'attach') {
      if (!active) {
        // The lock was just released, or its run is being created: look again shortly.
        await new Promise((resolve) => setTimeout(resolve, 20 * 2 ** attempt));
        continue;
      }
      const target = input.idempotencyKey
        ? await core.store.rememberKey(input.idempotencyKey, active.id)
        : active.id;
      const attached = target === active.id ? active : await core.store.getRun(target);
      return { run: attached ?? active, outcome: target === active.id ? 'attached' : 'duplicate' };
    }
    // supersede: cancel the active run, then create ours. Not on the last try: cancelling
    // without creating after it would leave the subject with no run at all.
    if (attempt === 4) break;
    if (active && !isTerminal(active.status)) {
      try {
        await signals.signal(active.id, {
          type: 'cancel',
          by: input.trigger.actor ?? 'system',
          reason: 'superseded by a newer start',
        });
      } catch (err) {
        if (!(err instanceof InvalidSignalError)) throw err;
      }
    }
    superseded = true;
  }
  throw new RunConflictError(`could not start ${wf.name} on ${subject.key}: lock contention`, {
    activeRunId: '',
  });
}
