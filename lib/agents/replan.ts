import { logger } from '../common/observability.ts';
import type { Signal } from '../engine/engine.ts';
import { InvalidSignalError } from '../engine/errors.ts';
import type { RunStore } from '../engine/ports.ts';
import { isTerminal, type Run } from '../engine/types.ts';
import type { Delivery, DeliveryOutcome } from '../github/webhook.ts';
import type { DeliveryHook } from '../routing/deliveries.ts';

/**
 * `issues.edited` that changes the title or body, as a `DeliveryHook` (cheap: one query by
 * subject, at most one signal per active run):
 *
 * - a run parked at its approval gate is planned again (engine signal `replan` back to `plan`):
 *   the new plan version replaces the old in the gate, the status comment and the Discord
 *   message, and an approval of the old version is refused as stale ("the plan changed");
 * - a run past its approval keeps the work under way; the edit is recorded (`issue.edited`,
 *   `afterApproval`) and the status comment says the issue changed after approval.
 *
 * A redelivery of the same delivery does nothing twice: the delivery id is kept in run data.
 * Edits of issues without an active planned run fall through to routing as before.
 */

export const ISSUE_EDIT_EVENT = 'issue.edited';
/** Edited text kept in run data for a re-plan without GitHub credentials (dry-run); bounded. */
const MAX_EDIT_BODY = 16_000;

export interface IssueEdit {
  delivery: string;
  at: string;
  by: string | null;
  changed: Array<'title' | 'body'>;
  title?: string;
  body?: string;
}

export interface IssueEditHookDeps {
  engine: { readonly store: RunStore; signal(runId: string, signal: Signal): Promise<Run> };
  now?: () => Date;
}

interface EditedPayload {
  changes?: { title?: unknown; body?: unknown };
  issue?: { number?: unknown; title?: unknown; body?: unknown; pull_request?: unknown };
  repository?: { full_name?: unknown };
  sender?: { login?: unknown };
}

const isApprovalGate = (run: Run) => run.status === 'waiting' && run.gate?.kind === 'approval';
const approved = (run: Run) => typeof run.data.approval === 'object' && run.data.approval !== null;
const hasPlan = (run: Run) => typeof run.data.plan === 'object' && run.data.plan !== null;

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
      (r) => !isTerminal(r.status) && hasPlan(r),
    );
    if (runs.length === 0) return undefined;
    const edit: IssueEdit = {
      delivery: d.id,
      at: now().toISOString(),
      by: typeof p.sender?.login === 'string' ? p.sender.login : null,
      changed: [...changed],
      ...(typeof p.issue?.title === 'string' ? { title: p.issue.title.slice(0, 1_000) } : {}),
      ...(typeof p.issue?.body === 'string' ? { body: p.issue.body.slice(0, MAX_EDIT_BODY) } : {}),
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

async function apply(deps: IssueEditHookDeps, run: Run, edit: IssueEdit, by: string): Promise<string> {
  const seen = [run.data.issueEdit, run.data.editedAfterApproval].some(
    (e) => (e as { delivery?: unknown } | undefined)?.delivery === edit.delivery,
  );
  if (seen) return 'duplicate';
  try {
    if (isApprovalGate(run)) {
      await deps.engine.signal(run.id, {
        type: 'replan',
        by,
        to: 'plan',
        reason: `the issue's ${edit.changed.join(' and ')} changed while the plan waited for approval`,
        data: { issueEdit: edit },
      });
      return 'replanned';
    }
    if (approved(run)) {
      await deps.engine.signal(run.id, {
        type: 'note',
        by,
        event: ISSUE_EDIT_EVENT,
        detail: { afterApproval: true, changed: edit.changed, delivery: edit.delivery },
        data: { editedAfterApproval: { delivery: edit.delivery, at: edit.at, changed: edit.changed } },
      });
      return 'noted';
    }
    // Planned but neither parked nor approved (the plan step is running): it reads the issue as it is.
    return 'planning';
  } catch (err) {
    // The run moved on between our read and the signal (approved, cancelled): nothing to change.
    if (err instanceof InvalidSignalError) return 'moved-on';
    throw err;
  }
}
