import { createHash } from 'node:crypto';
import { ContentionError } from '../common/errors.ts';
import { logger } from '../common/observability.ts';
import type { Reporter, Signal } from '../engine/engine.ts';
import { InvalidSignalError } from '../engine/errors.ts';
import type { RunStore } from '../engine/ports.ts';
import { isTerminal, type Run } from '../engine/types.ts';
import type { Delivery, DeliveryOutcome } from '../github/webhook.ts';
import type { DeliveryHook } from '../routing/deliveries.ts';
import { ISSUE_PIPELINE } from '../workflows/issue-pipeline.ts';

/**
 * `issues.edited` that changes the title or body, as a `DeliveryHook` (cheap: one query by
 * subject, at most one signal per active run), and the reporter that finishes what it parks:
 *
 * - a run parked at its approval gate is planned again (engine signal `replan` back to `plan`):
 *   the new plan version replaces the old in the gate, the status comment and the Discord
 *   message, and an approval of the old version is refused as stale ("the plan changed");
 * - a run past its approval (or past a gate switched off by config) keeps the work under way;
 *   the edit is recorded (`issue.edited`, `afterApproval`) and the status comment says the issue
 *   changed after approval;
 * - a run not planned yet, or planning, cannot be signalled (its step holds the run): the edit is
 *   parked for it (KV `issue-edit`, the latest edit by `updated_at`), and
 *   `createIssueEditReporter`, called after the commit that brings the run to its gate (or past
 *   it), re-plans it if the plan missed the edit. The hook looks at the run again after parking,
 *   so a run that reached its gate in between (its report ran before the park) is handled here.
 *
 * A plan records the issue text it was made from (`plan.source`: a hash of the title and body,
 * and the issue's `updated_at` when known), so an edit the plan already saw (the step read the
 * issue after it, or its webhook came late) changes nothing. A redelivery of the same delivery
 * does nothing twice: the delivery id is kept in run data. Edits of issues without an active
 * issue-pipeline run fall through to routing as before.
 */

export const ISSUE_EDIT_EVENT = 'issue.edited';
/** Where an edit that came while its run was planning waits for the plan (one item per run). */
export const EDIT_GROUP = 'issue-edit';
/** Edited text kept in run data for a re-plan without GitHub credentials (dry-run); bounded. */
const MAX_EDIT_BODY = 16_000;
const MAX_EDIT_TITLE = 1_000;
/** A parked edit outlives any run that could take it (the pipeline's deadline is a week). */
const PARK_TTL_S = 8 * 24 * 3600;

export interface IssueEdit {
  delivery: string;
  at: string;
  by: string | null;
  changed: Array<'title' | 'body'>;
  title?: string;
  body?: string;
  /** The issue's `updated_at` after this edit (GitHub's payload). */
  updatedAt?: string;
}

/** What a plan was made from (run data `plan.source`). */
export interface PlanSource {
  /** `issueTextHash` of the title and body the planner was given. */
  hash: string;
  /** The issue's `updated_at` as read, when known. */
  updatedAt?: string;
}

/**
 * A short hash of an issue's title and body, bounded as an edit keeps them, so that a plan's
 * source and an edit of the same text hash alike.
 */
export function issueTextHash(title: string, body: string): string {
  return createHash('sha256')
    .update(title.slice(0, MAX_EDIT_TITLE))
    .update('\u0000')
    .update(body.slice(0, MAX_EDIT_BODY))
    .digest('base64url')
    .slice(0, 16);
}

export interface IssueEditHookDeps {
  engine: { readonly store: RunStore; signal(runId: string, signal: Signal): Promise<Run> };
  now?: () => Date;
}

interface EditedPayload {
  changes?: { title?: unknown; body?: unknown };
  issue?: { number?: unknown; title?: unknown; body?: unknown; updated_at?: unknown; pull_request?: unknown };
  repository?: { full_name?: unknown };
  sender?: { login?: unknown };
}

/** An edit as parked for a run, with who made it (the signal's `by`). */
interface ParkedEdit {
  edit: IssueEdit;
  by: string;
}

type Outcome = 'replanned' | 'noted' | 'current' | 'duplicate' | 'moved-on' | 'parked';

const isApprovalGate = (run: Run) => run.status === 'waiting' && run.gate?.kind === 'approval';
const approved = (run: Run) => typeof run.data.approval === 'object' && run.data.approval !== null;
const hasPlan = (run: Run) => typeof run.data.plan === 'object' && run.data.plan !== null;
const sourceOf = (run: Run) => (run.data.plan as { source?: PlanSource } | undefined)?.source;

/**
 * Where a run stands for an edit: at its approval gate, past it (approved, or at work with the
 * gate switched off), or before it (intake, route, plan, the gate's own step), where only the
 * reporter can finish the edit once the step commits.
 */
function stageOf(run: Run): 'gate' | 'past' | 'planning' {
  if (isApprovalGate(run)) return 'gate';
  if (approved(run)) return 'past';
  if (hasPlan(run) && (run.node === 'execute' || run.node === 'report')) return 'past';
  return 'planning';
}

/** Whether `edit` is news to the run's plan: its text is not what the plan was made from. */
function missedBy(run: Run, edit: IssueEdit): boolean {
  const source = sourceOf(run);
  // A plan from before plans recorded their source: as before, every edit is news.
  if (!source) return true;
  if (source.hash === issueTextHash(edit.title ?? '', edit.body ?? '')) return false;
  // The plan read the issue after this edit (a later one changed the text again).
  const read = source.updatedAt ? Date.parse(source.updatedAt) : Number.NaN;
  const made = edit.updatedAt ? Date.parse(edit.updatedAt) : Number.NaN;
  return !(read > made);
}

const seen = (run: Run, edit: IssueEdit) =>
  [run.data.issueEdit, run.data.editedAfterApproval].some(
    (e) => (e as { delivery?: unknown } | undefined)?.delivery === edit.delivery,
  );

export function createIssueEditHook(deps: IssueEditHookDeps): DeliveryHook {
  const now = deps.now ?? (() => new Date());
  return async (d: Delivery): Promise<DeliveryOutcome | undefined> => {
    if (d.name !== 'issues') return undefined;
    const p = d.payload as EditedPayload;
    if ((d.payload as { action?: unknown }).action !== 'edited') return undefined;
    const changed = (['title', 'body'] as const).filter((k) => p.changes?.[k] !== undefined);
    const repo = p.repository?.full_name;
    const number = p.issue?.number;
    if (changed.length === 0 || typeof repo !== 'string' || typeof number !== 'number') return undefined;

    const runs = (await deps.engine.store.listRuns({ subject: `${repo}#${number}`, limit: 20 })).filter(
      // Only the pipeline plans, and only its runs have the reporter that finishes a parked edit.
      (r) => !isTerminal(r.status) && r.workflow === ISSUE_PIPELINE,
    );
    if (runs.length === 0) return undefined;
    const edit: IssueEdit = {
      delivery: d.id,
      at: now().toISOString(),
      by: typeof p.sender?.login === 'string' ? p.sender.login : null,
      changed: [...changed],
      ...(typeof p.issue?.title === 'string' ? { title: p.issue.title.slice(0, MAX_EDIT_TITLE) } : {}),
      ...(typeof p.issue?.body === 'string' ? { body: p.issue.body.slice(0, MAX_EDIT_BODY) } : {}),
      ...(typeof p.issue?.updated_at === 'string' ? { updatedAt: p.issue.updated_at } : {}),
    };
    const by = edit.by ? `github:${edit.by}` : 'github';
    const outcomes: Array<{ run: string; outcome: string }> = [];
    for (const run of runs) {
      outcomes.push({ run: run.id, outcome: await apply(deps, run, edit, by) });
    }
    logger.info('issue edited', { delivery: d.id, repo, issue: number, changed, runs: outcomes });
    return { statusCode: 202, body: { status: 'issue-edited', changed, runs: outcomes } };
  };
}

/** How many times an edit is judged again when the run moved on under it. */
const EDIT_TRIES = 4;

/**
 * Act on an edit for one run, judged on the run as it is: re-plan at its gate, note past it, park
 * before it. When the run moves on under a signal (approved while the edit was judged at its gate,
 * say), it is read and judged again, so the edit is never dropped for a race.
 */
async function apply(deps: IssueEditHookDeps, listed: Run, edit: IssueEdit, by: string): Promise<Outcome> {
  const store = deps.engine.store;
  let run: Run | null = listed;
  let parked = false;
  for (let attempt = 0; attempt < EDIT_TRIES && run && !isTerminal(run.status); attempt++) {
    if (seen(run, edit)) {
      if (parked) await unpark(store, run.id, edit);
      return 'duplicate';
    }
    if (stageOf(run) === 'planning') {
      // Looked again after parking, and still before its gate: the gate's report finishes it.
      if (parked) return 'parked';
      await park(deps, run.id, { edit, by });
      parked = true;
      // The run may have reached its gate since it was read: the report of that commit then ran
      // before the park and did not see it. Either that report sees the park, or this read sees
      // the gate (both come after their own write).
    } else {
      const outcome = await deliver(deps, run, edit, by);
      if (outcome !== 'moved-on') {
        if (parked) await unpark(store, run.id, edit);
        return outcome;
      }
    }
    run = await store.getRun(listed.id);
  }
  return parked ? 'parked' : 'moved-on';
}

/**
 * Act on an edit for a run at its gate (re-plan) or past it (note), unless it has it already or
 * its plan saw it. `moved-on`: the run is no longer where it was read (the caller reads it again).
 */
async function deliver(deps: IssueEditHookDeps, run: Run, edit: IssueEdit, by: string): Promise<Outcome> {
  if (seen(run, edit)) return 'duplicate';
  if (!missedBy(run, edit)) return 'current';
  const store = deps.engine.store;
  if (isApprovalGate(run)) {
    try {
      await deps.engine.signal(run.id, {
        type: 'replan',
        by,
        to: 'plan',
        reason: `the issue's ${edit.changed.join(' and ')} changed ${
          sourceOf(run) ? 'after the plan read it' : 'while the plan waited for approval'
        }`,
        data: { issueEdit: edit },
        // Only the gate this edit was judged against: a run re-planned meanwhile (by a later
        // edit) and back at a gate has a plan this edit may be old news to.
        ...(run.gate?.binding !== undefined ? { binding: run.gate.binding } : {}),
      });
      return 'replanned';
    } catch (err) {
      if (err instanceof InvalidSignalError) return 'moved-on';
      throw err;
    }
  }
  // Past the gate the note is claimed first, per delivery: run data keeps only the newest edit,
  // and a note on a run whose step holds it is only appended to its history, so neither says
  // that this delivery was noted. The claim is given back when the note is not made.
  const claim = `${run.id}#${edit.delivery}`;
  if (!(await store.kvPut(EDIT_GROUP, claim, { at: edit.at }, { expectedVersion: 0, ttl: parkExpiry(deps) })))
    return 'duplicate';
  try {
    await deps.engine.signal(run.id, {
      type: 'note',
      by,
      event: ISSUE_EDIT_EVENT,
      detail: { afterApproval: true, changed: edit.changed, delivery: edit.delivery },
      data: { editedAfterApproval: { delivery: edit.delivery, at: edit.at, changed: edit.changed } },
    });
    return 'noted';
  } catch (err) {
    await store.kvDelete(EDIT_GROUP, claim).catch(() => undefined);
    // The run moved on between our read and the signal (it ended): nothing to note.
    if (err instanceof InvalidSignalError) return 'moved-on';
    throw err;
  }
}

/** When a parked edit (or the record of an appended one) expires, in epoch seconds. */
const parkExpiry = (deps: IssueEditHookDeps) =>
  Math.floor((deps.now ?? (() => new Date()))().getTime() / 1000) + PARK_TTL_S;

/** Park `parked` for the run, unless a later edit (by the issue's `updated_at`) is parked already. */
async function park(deps: IssueEditHookDeps, runId: string, parked: ParkedEdit): Promise<void> {
  const store = deps.engine.store;
  const ttl = parkExpiry(deps);
  for (let attempt = 0; attempt < 5; attempt++) {
    const cur = await store.kvGet<ParkedEdit>(EDIT_GROUP, runId);
    const there = cur?.value.edit;
    if (there?.delivery === parked.edit.delivery) return;
    if (there?.updatedAt && parked.edit.updatedAt && there.updatedAt > parked.edit.updatedAt) return;
    if (await store.kvPut(EDIT_GROUP, runId, parked, { expectedVersion: cur?.version ?? 0, ttl })) return;
  }
  throw new ContentionError(`issue edit ${parked.edit.delivery}: could not park it for run ${runId}`, {
    runId,
  });
}

/** Remove the parked edit once it is handled (only that edit: a later one parked meanwhile stays). */
async function unpark(store: RunStore, runId: string, edit: IssueEdit): Promise<void> {
  const cur = await store.kvGet<ParkedEdit>(EDIT_GROUP, runId);
  if (cur?.value.edit.delivery === edit.delivery)
    await store.kvDelete(EDIT_GROUP, runId, { expectedVersion: cur.version });
}

/**
 * The engine Reporter that finishes parked edits: once a run of the pipeline reaches its approval
 * gate or goes past it with a plan, an edit parked while it planned is acted on as the hook would
 * have (re-plan at the gate, note past it), unless the plan saw it. One read of the park per plan
 * (the reporter notes the plan it looked for, so later reports of the same plan read nothing).
 */
export function createIssueEditReporter(deps: IssueEditHookDeps): Reporter {
  return {
    name: 'issue-edits',
    async report(run, ctx) {
      if (run.workflow !== ISSUE_PIPELINE || isTerminal(run.status) || stageOf(run) === 'planning') return;
      const plan = run.data.plan as { version?: unknown; source?: PlanSource } | undefined;
      const looked = `${String(plan?.version)}:${plan?.source?.hash ?? ''}:${plan?.source?.updatedAt ?? ''}`;
      if (ctx.noted === looked) {
        ctx.note?.(looked);
        return;
      }
      const store = deps.engine.store;
      const parked = await store.kvGet<ParkedEdit>(EDIT_GROUP, run.id);
      if (parked) {
        const { edit, by } = parked.value;
        // Judged on the run as it is now, not as this report shows it: the hook may have acted
        // on a later edit meanwhile.
        const now = await store.getRun(run.id);
        if (!now || isTerminal(now.status)) return;
        const outcome = stageOf(now) === 'planning' ? 'moved-on' : await deliver(deps, now, edit, by);
        logger.info('parked issue edit', { runId: run.id, delivery: edit.delivery, outcome });
        // Moved on under us: the report of the version it moved to looks again (no note kept).
        if (outcome === 'moved-on') return;
        await store.kvDelete(EDIT_GROUP, run.id, { expectedVersion: parked.version });
        // A new version follows (re-planned, or noted): its report looks again.
        if (outcome === 'replanned' || outcome === 'noted') return;
      }
      ctx.note?.(looked);
    },
  };
}
