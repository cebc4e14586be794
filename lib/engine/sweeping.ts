import { logger } from '../common/observability.ts';
import { MAX_DELAY_SECONDS } from '../queue/port.ts';
import type { EngineCore } from './core.ts';
import { InvalidSignalError } from './errors.ts';
import { ConcurrencyError } from './store-errors.ts';
import { type Moment, onSweep, reportClaimHeld, reportMessage } from './transitions.ts';
import { isTerminal, type PendingStep, type Run } from './types.ts';

export interface SweepReport {
  examined: number;
  reenqueued: number;
  expired: number;
  reported: number;
  retired: number;
  stuck: number;
  /** Runs whose sweep threw (logged); the sweep went on with the rest. */
  failed: number;
  /** Never-picked-up steps not re-sent yet: their last re-send is recent (the queue is behind). */
  backedOff: number;
}

/** KV group of re-send counts of never-picked-up steps (`<run id>#<seq>`, one-day TTL). */
export const RESEND_GROUP = 'step-resend';

/**
 * The sweeper: finds runs that a crash, a lost message or the clock left behind, and moves them
 * on. It reads the active index page by page; what it does to each run is decided by `onSweep`.
 */
export class Sweeper<S> {
  constructor(private readonly core: EngineCore<S>) {}

  async sweep(): Promise<SweepReport> {
    const report: SweepReport = {
      examined: 0,
      reenqueued: 0,
      expired: 0,
      reported: 0,
      retired: 0,
      stuck: 0,
      failed: 0,
      backedOff: 0,
    };
    const moment = this.core.moment();
    // Every page of the active index, so new runs are never starved behind old ones.
    let cursor: string | undefined;
    do {
      const page = await this.core.store.listActivePage({
        limit: this.core.sweepPageSize,
        ...(cursor !== undefined ? { cursor } : {}),
      });
      for (const run of page.runs) {
        report.examined++;
        try {
          await this.sweepOne(run, moment, report);
        } catch (err) {
          if (err instanceof ConcurrencyError || err instanceof InvalidSignalError) continue;
          // One run that cannot be swept (a throttle, a bad item) does not end the sweep for the rest.
          report.failed++;
          logger.error('sweep of a run failed', { runId: run.id, error: (err as Error).message });
        }
      }
      cursor = page.cursor;
    } while (cursor !== undefined);
    return report;
  }

  private async sweepOne(run: Run, moment: Moment, report: SweepReport): Promise<void> {
    const { core } = this;
    const nowMs = Date.parse(moment.at);
    if (isTerminal(run.status)) {
      const state = await core.store.getReportState(run.id);
      if (state.reported >= run.version) {
        await core.store.retire(run);
        report.retired++;
      } else if (
        (!state.claimUntil || Date.parse(state.claimUntil) < nowMs) &&
        // Its final commit's worker is reporting it (withReportClaim): a report now would skip.
        !reportClaimHeld(run, state.reported, new Date(nowMs))
      ) {
        await core.queue.send([reportMessage(run)]);
        report.reported++;
      }
      return;
    }
    // A report of a live run that never landed (its message lost, its reporter crashed after the
    // claim lapsed): send it again, so a parked run's "waiting for approval" is never missed.
    if (Date.parse(run.updatedAt) + core.reportClaimMs < nowMs) {
      const state = await core.store.getReportState(run.id);
      if (state.reported < run.version && (!state.claimUntil || Date.parse(state.claimUntil) < nowMs)) {
        await core.queue.send([reportMessage(run)]);
        report.reported++;
      }
    }
    const finding = onSweep(run, core.workflows.get(run.workflow), {
      ...moment,
      enqueueGraceMs: core.enqueueGraceMs,
    });
    switch (finding.kind) {
      case 'none':
        return;
      case 'deadline':
        report.stuck++;
        report.expired++;
        await core.apply(finding.plan);
        return;
      case 'gate-expired':
        report.expired++;
        await core.apply(finding.plan);
        return;
      case 'resend':
        if (!finding.leaseLapsed && !(await this.resendDue(run, finding.step, nowMs))) {
          report.backedOff++;
          return;
        }
        report.reenqueued++;
        if (finding.leaseLapsed) report.stuck++;
        await core.queue.send([finding.message]);
        return;
    }
  }

  /**
   * A step that was never picked up is sent again after the enqueue grace, then after twice as
   * long each time (up to 15 minutes): while the queue is behind, re-sends do not pile on.
   */
  private async resendDue(run: Run, step: PendingStep, nowMs: number): Promise<boolean> {
    const { store } = this.core;
    const key = `${run.id}#${step.seq}`;
    const prior = await store.kvGet<{ count: number; at: string }>(RESEND_GROUP, key);
    const count = prior?.value.count ?? 0;
    if (prior) {
      const waitMs = Math.min(MAX_DELAY_SECONDS * 1000, this.core.enqueueGraceMs * 2 ** count);
      if (Date.parse(prior.value.at) + waitMs > nowMs) return false;
    }
    const saved = await store.kvPut(
      RESEND_GROUP,
      key,
      { count: count + 1, at: new Date(nowMs).toISOString() },
      { expectedVersion: prior?.version ?? 0, ttl: Math.floor(nowMs / 1000) + 86_400 },
    );
    return saved; // another sweeper re-sent it just now
  }
}
