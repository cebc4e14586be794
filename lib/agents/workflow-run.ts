import type { RunStore } from '../engine/ports.ts';
import type { NormalizedEvent } from '../github/events.ts';
import type { SwitchyardConfig } from '../routing/config.ts';
import { type DeliveryResult, deliverResult, type HubEngine } from './results.ts';
import { AgentWorkQueue } from './work-queue.ts';

/**
 * `workflow_run` deliveries of dispatched agent workflows. The workflow's `run-name` carries the
 * run id (`switchyard <run id>`; optionally followed by the work item, see
 * examples/switchyard-agent.yml), so GitHub's `display_title` names the run:
 *
 * - `requested` / `in_progress`: the workflow run's id is recorded with the dispatch (so a
 *   cancelled run can cancel it), and an event is added to the run's history;
 * - `completed`: the run is resumed with the conclusion and a link (`ok` when `success`).
 *
 * A completion is matched to the run's current work item: by the item id when the title has it,
 * else by the linked workflow run id, else by time (a workflow run created before the current
 * item was dispatched belongs to an earlier attempt). Redeliveries are harmless (`duplicate`).
 */

export interface WorkflowRunView {
  id: number;
  repo?: string;
  status: string;
  conclusion: string | null;
  displayTitle?: string;
  url?: string;
  name?: string;
  createdAt?: string;
  event?: string;
  /** `.github/workflows/<file>`: which workflow ran (raw payloads only). */
  path?: string;
  workflowId?: number;
}

export type WorkflowRunOutcome = {
  outcome: 'ignored' | 'linked' | DeliveryResult;
  runId?: string;
  item?: string;
  reason?: string;
};

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/**
 * Exactly the reference workflow's run-name: `switchyard r…`, optionally followed by the work
 * item `r….t1.2` (a trailing space when the item is empty). Anchored at both ends, so a title
 * that merely mentions a run id (a commit message, a PR title) is not an agent's.
 */
const TITLE = /^switchyard (r[0-9a-z]{8,40})(?: (r[0-9a-z]{8,40}\.[A-Za-z0-9_-]+\.[0-9]+))? ?$/;

/** Only a dispatch can be one of ours: Switchyard starts agent workflows with workflow_dispatch. */
const AGENT_EVENT = 'workflow_dispatch';

export function runIdFromTitle(title: string | undefined): { runId: string; item?: string } | undefined {
  const m = title ? TITLE.exec(title) : null;
  if (!m?.[1]) return undefined;
  const runId = m[1].toLowerCase();
  const item = m[2]?.toLowerCase().startsWith(`${runId}.`) ? m[2] : undefined;
  return { runId, ...(item ? { item } : {}) };
}

/** The workflow run in a raw `workflow_run` payload or a normalised event. */
export function workflowRunOf(input: NormalizedEvent | Obj): WorkflowRunView | undefined {
  if (isObj(input) && isObj(input.workflow_run)) {
    const wr = input.workflow_run;
    const id = num(wr.id);
    if (id === undefined) return undefined;
    const repo = isObj(input.repository) ? str(input.repository.full_name) : undefined;
    const view: WorkflowRunView = {
      id,
      status: str(wr.status) ?? 'unknown',
      conclusion: str(wr.conclusion) ?? null,
    };
    const title = str(wr.display_title);
    if (title) view.displayTitle = title;
    if (repo) view.repo = repo;
    const url = str(wr.html_url);
    if (url) view.url = url;
    const name = str(wr.name);
    if (name) view.name = name;
    const created = str(wr.created_at) ?? str(wr.run_started_at);
    if (created) view.createdAt = created;
    const event = str(wr.event);
    if (event) view.event = event;
    const path = str(wr.path);
    if (path) view.path = path;
    const workflowId = num(wr.workflow_id);
    if (workflowId !== undefined) view.workflowId = workflowId;
    return view;
  }
  const ev = input as NormalizedEvent;
  if (ev.name !== 'workflow_run' || !ev.ci || ev.ci.runId === undefined) return undefined;
  return {
    id: ev.ci.runId,
    status: ev.ci.status,
    conclusion: ev.ci.conclusion,
    ...(ev.ci.displayTitle ? { displayTitle: ev.ci.displayTitle } : {}),
    ...(ev.repo ? { repo: ev.repo.fullName } : {}),
    ...(ev.ci.url ? { url: ev.ci.url } : {}),
    ...(ev.ci.name ? { name: ev.ci.name } : {}),
    ...(ev.ci.trigger ? { event: ev.ci.trigger } : {}),
  };
}

/** The workflows (file names or ids) that config dispatches agents to. */
export function agentWorkflows(config: Pick<SwitchyardConfig, 'agents' | 'executors'>): string[] {
  const out = new Set<string>();
  for (const a of Object.values(config.agents)) {
    const ex = typeof a.executor === 'string' ? config.executors[a.executor] : a.executor;
    if (ex?.type === 'github-actions') out.add(ex.workflow);
  }
  return [...out];
}

/** Whether a workflow run is one of `workflows` (a file name, matched against its path, or an id). */
function isWorkflow(wr: WorkflowRunView, workflows: readonly string[]): boolean {
  const file = wr.path?.split('/').pop();
  return workflows.some(
    (w) => (file !== undefined && w === file) || (wr.workflowId !== undefined && w === String(wr.workflowId)),
  );
}

/**
 * Whether a delivery is a dispatched agent's workflow run (cheap: no I/O). Only a
 * `workflow_dispatch` run whose title is exactly the agent run-name counts, and, given the
 * configured agent workflows, only a run of one of them. Everything else (pushes, PR- and
 * issue-triggered runs, whatever their title) is left to the CI guard.
 */
export function isAgentWorkflowRun(input: NormalizedEvent | Obj, workflows?: readonly string[]): boolean {
  const wr = workflowRunOf(input);
  if (!wr || wr.event !== AGENT_EVENT) return false;
  if (runIdFromTitle(wr.displayTitle) === undefined) return false;
  return workflows === undefined || isWorkflow(wr, workflows);
}

/** GitHub's and our clocks differ a little; a run created this much before the dispatch still counts. */
const CLOCK_SKEW_MS = 5_000;

/**
 * Resume (or link) the run a `workflow_run` delivery belongs to. `input` is the raw payload or
 * the normalised event. Idempotent: a redelivered completion answers `duplicate` or `stale`.
 */
export async function resumeFromWorkflowRun(
  engine: HubEngine & { readonly store: RunStore },
  input: NormalizedEvent | Obj,
  opts: { now?: () => Date } = {},
): Promise<WorkflowRunOutcome> {
  const now = opts.now ?? (() => new Date());
  const wr = workflowRunOf(input);
  if (!wr) return { outcome: 'ignored', reason: 'not a workflow_run' };
  if (wr.event !== AGENT_EVENT)
    return { outcome: 'ignored', reason: `started by ${wr.event ?? 'an unknown event'}, not a dispatch` };
  const ids = runIdFromTitle(wr.displayTitle);
  if (!ids)
    return { outcome: 'ignored', reason: 'not a Switchyard agent workflow (its title is not the run-name)' };
  const { runId } = ids;
  // GitHub sends `requested`, `in_progress` and `completed` for each workflow run. The first two
  // only link it to its item, and the dispatch recorded its id already when GitHub returned it
  // (return_run_details); `in_progress` links it otherwise. `requested` is left without a read
  // (it mostly comes while the dispatch is still being recorded, below).
  if ((input as Obj).action === 'requested')
    return { outcome: 'ignored', runId, reason: 'requested: linked when it is in progress' };
  const queue = new AgentWorkQueue(engine.store, { now });
  const read = await queue.getDispatch(runId);
  const rec = read?.value;
  if (!rec) return { outcome: 'stale', runId, reason: 'nothing was dispatched for this run' };
  if (rec.executor !== 'github-actions')
    return { outcome: 'ignored', runId, reason: 'not dispatched to GitHub Actions' };
  if (rec.repo && wr.repo && rec.repo.toLowerCase() !== wr.repo.toLowerCase())
    return { outcome: 'ignored', runId, reason: `the task was dispatched to ${rec.repo}, not ${wr.repo}` };
  // The run must be of the workflow this item was dispatched to (when the payload says which).
  if (rec.workflow && (wr.path || wr.workflowId !== undefined) && !isWorkflow(wr, [rec.workflow]))
    return { outcome: 'ignored', runId, reason: `the task was dispatched to workflow ${rec.workflow}` };
  if (ids.item && ids.item !== rec.item)
    return { outcome: 'stale', runId, item: ids.item, reason: 'an earlier work item of this run' };
  if (rec.workflowRunId !== undefined && rec.workflowRunId !== wr.id)
    return {
      outcome: 'stale',
      runId,
      item: rec.item,
      reason: `the current item runs as workflow run ${rec.workflowRunId}`,
    };
  if (rec.earlier?.includes(wr.id))
    return {
      outcome: 'stale',
      runId,
      item: rec.item,
      reason: 'the workflow run belongs to an earlier work item',
    };
  const since = Date.parse(rec.startedAt);
  if (!ids.item && wr.createdAt && Date.parse(wr.createdAt) < since - CLOCK_SKEW_MS)
    return {
      outcome: 'stale',
      runId,
      item: rec.item,
      reason: 'created before the current item was dispatched',
    };
  // The dispatch that started it is still being recorded: that step records the workflow run's id
  // itself when GitHub returned it (return_run_details), and a later delivery links it when not.
  // Linking it now would race that step's own write (a bind, a link and an event more, and the
  // step's write refused and read again). A completion is not left: it carries the result.
  if (rec.state === 'dispatching' && wr.status !== 'completed')
    return { outcome: 'ignored', runId, item: rec.item, reason: 'its dispatch is still being recorded' };
  // A workflow run belongs to the first item it was matched to (a redelivery after the run moved
  // on to its next item must not resume that item).
  // A dispatch record that names this workflow run has it as its item's: execute records the id
  // GitHub returned (and the record's `earlier` list keeps it once the run moves on, checked
  // above); the link below and the Actions callback bind first. No need to read.
  // (Most events of a workflow run come after its link: this read was one per event.)
  const bound =
    rec.workflowRunId === wr.id
      ? { runId, item: rec.item }
      : await queue.bindWorkflowRun(wr.id, runId, rec.item);
  if (bound.runId !== runId || bound.item !== rec.item)
    return {
      outcome: 'stale',
      runId,
      item: bound.item,
      reason: 'the workflow run belongs to an earlier work item',
    };

  if (rec.workflowRunId === undefined) {
    const linked = await queue.updateDispatch(
      runId,
      (d) =>
        d.item === rec.item && d.workflowRunId === undefined
          ? { ...d, workflowRunId: wr.id, ...(wr.url ? { workflowRunUrl: wr.url } : {}) }
          : undefined,
      read,
    );
    if (linked?.workflowRunId === wr.id) {
      await engine.recordEvent(runId, {
        type: 'agent.workflow-run.linked',
        by: rec.agent,
        detail: {
          item: rec.item,
          workflowRunId: wr.id,
          status: wr.status,
          ...(wr.url ? { url: wr.url } : {}),
        },
      });
    }
  }
  if (wr.status !== 'completed') return { outcome: 'linked', runId, item: rec.item };

  const conclusion = wr.conclusion ?? 'unknown';
  const outcome = await deliverResult(
    engine,
    queue,
    {
      runId,
      item: rec.item,
      correlation: rec.correlation,
      ok: conclusion === 'success',
      by: rec.agent,
      payload: {
        executor: 'github-actions',
        conclusion,
        workflowRunId: wr.id,
        ...(wr.url ? { url: wr.url } : {}),
        summary: `${wr.name ?? 'agent workflow'} finished: ${conclusion}`,
      },
    },
    now,
    // The record as read above, unless this call just linked it (a new version).
    rec.workflowRunId === undefined ? undefined : read,
  );
  return { outcome, runId, item: rec.item };
}
