import { logger } from '../common/observability.ts';
import type { RunStore } from '../engine/ports.ts';
import { isTerminal } from '../engine/types.ts';
import { type GitHubClientFactory, splitRepo } from '../github/client.ts';
import { GitHubApiError } from '../github/errors.ts';
import type { ReconcileConfig } from '../routing/recovery-config.ts';
import type { HubEngine } from './results.ts';
import { type DispatchRecord, WORK_GROUP } from './work-queue.ts';
import { resumeFromWorkflowRun, runIdFromTitle, type WorkflowRunOutcome } from './workflow-run.ts';

/**
 * Reconciling agent completions. A GitHub Actions agent's result arrives only as a `workflow_run`
 * webhook; if that delivery is lost (and not redelivered), the task would wait for the agent
 * timeout and a run that may have succeeded would be cancelled and redone. So the sweeper looks
 * at every task dispatched to GitHub Actions that still waits `afterMinutes` after its dispatch:
 *
 * - its workflow run is fetched by id (`GET …/actions/runs/{id}`) when the dispatch recorded one
 *   (a `requested` webhook, or `return_run_details` at dispatch), else found by its run-name among
 *   the workflow's `workflow_dispatch` runs created since the dispatch
 *   (`GET …/actions/workflows/{workflow}/runs?event=workflow_dispatch&created=>=…`);
 * - the REST workflow run has the webhook's `workflow_run` shape, so it goes through the very
 *   function a delivery goes through (`resumeFromWorkflowRun`): the same matching, binding and
 *   `deliverResult`. A completed run resumes the task once; the late real webhook, or the next
 *   sweep, then finds the dispatch finished and answers `duplicate`.
 *
 * A task is looked up at most once per `everyMinutes` (a KV marker per work item), so a long
 * agent run costs one API call per interval, not one per sweep.
 */

export const RECONCILE_GROUP = 'reconcile';
const DISPATCH_PREFIX = 'd#';
/** How many dispatch records one sweep reads. */
const LIST_LIMIT = 1_000;
/**
 * How far before the recorded dispatch to look for its workflow run. Wide on purpose: a step that
 * timed out after dispatching is retried, the retry re-uses the journaled dispatch but writes the
 * record's times again, so the real dispatch may be a few step timeouts older than the record
 * says. The run-name (run id and work item) is what matches, not the time.
 */
const LOOKBACK_MS = 3_600_000;
/** Pages of 100 workflow runs one lookup reads at most. */
const LIST_PAGES = 10;

export interface ReconcileDeps {
  engine: HubEngine & { readonly store: RunStore };
  github: GitHubClientFactory;
  config: ReconcileConfig;
  now?: () => Date;
}

export interface ReconcileReport {
  skipped?: string;
  /** Tasks waiting past `afterMinutes` that were looked up. */
  checked: number;
  /** Tasks resumed from a finished workflow run found through the API. */
  resumed: number;
  /** Workflow runs found but still running (linked to the task). */
  pending: number;
  /** No workflow run found yet. */
  missing: number;
  errors: number;
}

/** The REST workflow run (same fields as the webhook's `workflow_run`). */
type RestWorkflowRun = Record<string, unknown> & {
  id: number;
  status?: string | null;
  display_title?: string;
  event?: string;
  created_at?: string;
};

export async function reconcileAgentRuns(deps: ReconcileDeps): Promise<ReconcileReport> {
  const report: ReconcileReport = { checked: 0, resumed: 0, pending: 0, missing: 0, errors: 0 };
  const cfg = deps.config;
  const nowFn = deps.now ?? (() => new Date());
  if (!cfg.enabled) return { ...report, skipped: 'disabled' };
  if (deps.github.dryRun) return { ...report, skipped: 'dry-run: no GitHub credentials' };
  const store = deps.engine.store;
  const now = nowFn();
  const records = await store.kvList<DispatchRecord>(WORK_GROUP, {
    prefix: DISPATCH_PREFIX,
    limit: LIST_LIMIT,
  });
  for (const { value: rec } of records) {
    if (report.checked >= cfg.maxPerSweep) break;
    if (rec.executor !== 'github-actions' || rec.state !== 'dispatched' || rec.dryRun) continue;
    if (!rec.repo || !rec.workflow) continue;
    const since = Date.parse(rec.dispatchedAt ?? rec.startedAt);
    if (now.getTime() - since < cfg.afterMinutes * 60_000) continue;
    const run = await deps.engine.getRun(rec.runId);
    if (
      !run ||
      isTerminal(run.status) ||
      run.status !== 'waiting' ||
      run.gate?.kind !== 'agent' ||
      run.gate.correlation !== rec.correlation
    )
      continue;
    if (!(await claimCheck(store, rec.item, cfg.everyMinutes * 60_000, now))) continue;
    report.checked++;
    try {
      const wr = await findWorkflowRun(deps.github, rec, since);
      if (!wr) {
        report.missing++;
        continue;
      }
      const completed = wr.status === 'completed';
      const res = await resumeFromWorkflowRun(
        deps.engine,
        {
          action: completed ? 'completed' : 'in_progress',
          workflow_run: wr,
          repository: { full_name: rec.repo },
        },
        { now: nowFn },
      );
      await record(deps.engine, rec, wr, res);
      // `parked` means another delivery of the same completion is resuming the run right now.
      if (res.outcome === 'resumed') report.resumed++;
      else if (!completed) report.pending++;
    } catch (err) {
      report.errors++;
      logger.warn('agent run reconcile failed', {
        runId: rec.runId,
        item: rec.item,
        error: (err as Error).message,
      });
    }
  }
  return report;
}

/** Whether this sweep may look this item up now (at most once per `everyMs`, across sweepers). */
async function claimCheck(store: RunStore, item: string, everyMs: number, now: Date): Promise<boolean> {
  const last = await store.kvGet<{ at: string }>(RECONCILE_GROUP, item);
  if (last && now.getTime() - Date.parse(last.value.at) < everyMs) return false;
  return store.kvPut(
    RECONCILE_GROUP,
    item,
    { at: now.toISOString() },
    { expectedVersion: last?.version ?? 0, ttl: Math.floor(now.getTime() / 1000) + 7 * 86_400 },
  );
}

async function findWorkflowRun(
  github: GitHubClientFactory,
  rec: DispatchRecord,
  since: number,
): Promise<RestWorkflowRun | undefined> {
  const client = github.forAgent({ name: 'sweeper', permissions: ['read'] }, { runId: rec.runId });
  const repo = splitRepo(rec.repo!);
  if (rec.workflowRunId !== undefined) {
    try {
      const res = await client.request<RestWorkflowRun>(
        'read',
        'GET /repos/{owner}/{repo}/actions/runs/{run_id}',
        {
          ...repo,
          run_id: rec.workflowRunId,
        },
      );
      return res.data;
    } catch (err) {
      if (err instanceof GitHubApiError && err.status === 404) return undefined;
      throw err;
    }
  }
  const created = new Date(since - LOOKBACK_MS).toISOString().replace(/\.\d{3}Z$/, 'Z');
  // Every page (up to LIST_PAGES): one page of 100 missed the run once more than 100 dispatches
  // of the workflow had started since (the fault bench: 100 issues in one repository).
  const listed: RestWorkflowRun[] = [];
  for (let page = 1; page <= LIST_PAGES; page++) {
    const res = await client.request<{ workflow_runs?: RestWorkflowRun[] }>(
      'read',
      'GET /repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs',
      {
        ...repo,
        workflow_id: rec.workflow,
        event: 'workflow_dispatch',
        created: `>=${created}`,
        per_page: 100,
        page,
      },
    );
    const runs = res.data?.workflow_runs ?? [];
    listed.push(...runs);
    if (runs.length < 100 || runs.some((r) => runIdFromTitle(r.display_title)?.item === rec.item)) break;
  }
  const candidates = listed.filter((r) => {
    if (r.event !== undefined && r.event !== 'workflow_dispatch') return false;
    const ids = runIdFromTitle(typeof r.display_title === 'string' ? r.display_title : undefined);
    return ids?.runId === rec.runId && (ids.item === undefined || ids.item === rec.item);
  });
  // The exact item first, then the newest: an earlier attempt's run is older than this dispatch.
  candidates.sort((a, b) => {
    const exact = (r: RestWorkflowRun) => (runIdFromTitle(r.display_title)?.item === rec.item ? 1 : 0);
    return exact(b) - exact(a) || String(b.created_at ?? '').localeCompare(String(a.created_at ?? ''));
  });
  return candidates[0];
}

async function record(
  engine: HubEngine,
  rec: DispatchRecord,
  wr: RestWorkflowRun,
  res: WorkflowRunOutcome,
): Promise<void> {
  logger.info('agent run reconciled', { runId: rec.runId, item: rec.item, workflowRunId: wr.id, ...res });
  if (res.outcome !== 'resumed') return;
  await engine.recordEvent(rec.runId, {
    type: 'agent.workflow-run.reconciled',
    by: 'sweeper',
    detail: {
      item: rec.item,
      workflowRunId: wr.id,
      conclusion: typeof wr.conclusion === 'string' ? wr.conclusion : null,
      reason: 'no workflow_run completion arrived; found through the Actions API',
    },
  });
}
