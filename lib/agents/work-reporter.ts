import { logger } from '../common/observability.ts';
import type { Reporter } from '../engine/engine.ts';
import type { EventType } from '../engine/events.ts';
import { pausedFor } from '../engine/pause.ts';
import { isTerminal, type NewEvent, type Run } from '../engine/types.ts';
import { splitRepo } from '../github/client.ts';
import { GitHubApiError, PermissionDeniedError } from '../github/errors.ts';
import { type AgentHub, type HubDeps, hubOf, workOf } from './hub.ts';
import { deliverParked, took } from './results.ts';
import type { DispatchRecord } from './work-queue.ts';

/**
 * The hub's engine Reporter (called after each committed state change of a run, at most once per
 * version). It keeps agent work consistent with the runs it belongs to:
 *
 * - a run that ended (cancelled, failed, expired) gives back its slot, and the next waiting item
 *   is promoted;
 * - a run that ended while its agent's GitHub Actions workflow was still running cancels that
 *   workflow run (`POST /repos/{o}/{r}/actions/runs/{id}/cancel`), once: the id recorded from the
 *   `workflow_run` deliveries, or found by listing dispatched runs whose title has the run id;
 * - a run that now waits for an admitted item, or for an answer that arrived mid-step (parked),
 *   is resumed.
 */
export function createWorkReporter(deps: HubDeps | AgentHub): Reporter {
  const hub = hubOf(deps);
  return {
    name: 'agent-work',
    async report(run) {
      const work = workOf(run);
      if (!work) return;
      const current = work.current;
      if (isTerminal(run.status)) {
        if (current && (await hub.queue.release(current.item))) await hub.pump();
        const rec = (await hub.queue.getDispatch(run.id))?.value;
        if (
          rec &&
          rec.state !== 'finished' &&
          // Answered: its workflow run is done (the run took its result, and ended after it).
          !took(run, rec.correlation) &&
          rec.executor === 'github-actions' &&
          (rec.state === 'dispatched' || run.status === 'cancelled')
        ) {
          await cancelWorkflowRun(hub, run, rec);
        }
        return;
      }
      if (run.status !== 'waiting' || run.gate?.kind !== 'agent' || !current) return;
      if (current.state === 'queued' && run.gate.correlation === current.correlation) {
        // Kill switch: the dispatch is held; waking it here would spin. The sweep retries it.
        if (await pausedFor(hub.store, run.subject.repo)) return;
        if (await hub.queue.isRunning(current.item)) {
          const entry = (await hub.queue.snapshot()).running.find((r) => r.id === current.item);
          if (entry) await hub.wake(entry);
        } else {
          await hub.pump();
        }
        return;
      }
      if (current.state === 'dispatched' || current.state === 'checking')
        await deliverParked(hub.engine(), hub.queue, run);
    },
  };
}

async function cancelWorkflowRun(hub: AgentHub, run: Run, rec: DispatchRecord): Promise<void> {
  const claim = `cancel#${run.id}#${rec.item}`;
  if (!(await hub.queue.claimOnce(claim))) return;
  const events: NewEvent[] = [];
  const node = run.node ?? undefined;
  const push = (type: EventType, detail: Record<string, unknown>) =>
    events.push({ type, ...(node ? { node } : {}), by: rec.agent, detail: { item: rec.item, ...detail } });
  let identity: { name: string; permissions: readonly import('../github/permissions.ts').Permission[] };
  try {
    identity = hub.registry().identity(rec.agent);
  } catch {
    identity = { name: rec.agent, permissions: [] };
  }
  const client = hub.deps.github.forAgent(identity, {
    runId: run.id,
    ...(node ? { node } : {}),
    sink: (e) => {
      events.push(e);
    },
  });
  try {
    const repo = rec.repo;
    if (!repo) {
      push('agent.workflow-run.cancel-skipped', { reason: 'no repository recorded' });
    } else {
      let id = rec.workflowRunId;
      if (id === undefined) {
        const res = await client.request<{ workflow_runs?: Array<Record<string, unknown>> }>(
          'read',
          'GET /repos/{owner}/{repo}/actions/runs',
          { ...splitRepo(repo), event: 'workflow_dispatch', per_page: 50 },
        );
        if (!res.dryRun) {
          const hit = (res.data.workflow_runs ?? []).find(
            (w) =>
              typeof w.display_title === 'string' &&
              w.display_title.includes(run.id) &&
              w.status !== 'completed',
          );
          if (typeof hit?.id === 'number') id = hit.id;
        }
      }
      if (id === undefined) {
        push('agent.workflow-run.cancel-skipped', {
          reason: client.dryRun
            ? 'dry-run: no workflow run to look up'
            : 'no running workflow run has this run id in its title',
        });
      } else {
        await client.cancelWorkflowRun(repo, id);
        push('agent.workflow-run.cancelled', {
          workflowRunId: id,
          repo,
          dryRun: client.dryRun,
          runStatus: run.status,
        });
      }
    }
  } catch (err) {
    if (err instanceof PermissionDeniedError) {
      push('agent.workflow-run.cancel-refused', { reason: err.message });
    } else if (err instanceof GitHubApiError && err.status === 409) {
      push('agent.workflow-run.cancel-skipped', { reason: 'the workflow run had already finished' });
    } else {
      // Retried with the report (it is redelivered); give the claim back so the retry may cancel.
      await hub.queue.unclaim(claim);
      logger.warn('workflow run cancel failed', { runId: run.id, error: (err as Error).message });
      throw err;
    }
  } finally {
    const at = hub.now().toISOString();
    for (const e of events) await hub.store.appendEvent(run.id, { ...e, at });
  }
  await hub.queue.updateDispatch(run.id, (d) =>
    d.item === rec.item ? { ...d, state: 'finished', finishedAt: hub.now().toISOString() } : undefined,
  );
}
