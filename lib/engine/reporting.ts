import { logger } from '../common/observability.ts';
import type { EngineCore } from './core.ts';
import type { ReportNotes } from './ports.ts';
import { isPermanentReportFailure } from './reporter.ts';
import { reportClaimHeld, reportMessage, stepAhead } from './transitions.ts';
import { isFinal, isTerminal, type Run, type RunEvent } from './types.ts';
import type { Workflow } from './workflow.ts';

/** Runs whose history a worker keeps in memory for its reporters (most recently reported). */
const EVENT_CACHE_RUNS = 200;
/**
 * A report claim with more than this left is still ours without reading it (`current`): more than
 * the clocks of two workers can differ (Lambda's are kept within milliseconds), and more than a
 * reporter's next write takes to start.
 */
const CLAIM_SURE_MS = 10_000;

/** What `p` resolved to if it settles within `ms` (undefined if it threw or took longer). */
async function settledWithin<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const elapsed = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
    timer.unref?.();
  });
  const settled = p.catch(() => undefined);
  try {
    return await Promise.race([settled, elapsed]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Shows a run's state through every reporter, at most once per version: a claim (conditional
 * write) keeps two workers from reporting at once; a crash leaves the claim to lapse and the
 * sweeper sends the report again. A finished run leaves the active index once its final state
 * is reported.
 */
export class Reporting<S> {
  private readonly eventCache = new Map<string, RunEvent[]>();
  private readonly eventReads = new Map<string, Promise<RunEvent[]>>();

  constructor(private readonly core: EngineCore<S>) {}

  /**
   * Report the run's latest version. `known`: the run as the caller has just committed it (a
   * step reporting its own commit), shown without reading the run first; a version committed
   * after it is found when this report completes, as any other.
   */
  async report(
    runId: string,
    known?: Run,
    opts: { chained?: boolean } = {},
  ): Promise<'reported' | 'skipped'> {
    const { core } = this;
    const { store } = core;
    const run = known ?? (await store.getRun(runId));
    if (!run) return 'skipped';
    const state = await store.getReportState(runId);
    if (state.reported >= run.version) {
      if (isTerminal(run.status) && !state.retired) await store.retire(run);
      return 'skipped';
    }
    const now = core.now();
    // Another worker is reporting this run: it reports the newest version when it is done (below),
    // so a claim here would only be refused, and a refused write is billed all the same.
    if (state.claimOwner && state.claimUntil && Date.parse(state.claimUntil) > now.getTime())
      return 'skipped';
    // The reporters' notes describe what the last completed report showed. They hold only if no
    // claim (live or lapsed: its worker may have shown something else) and no completion came
    // between this read and our claim, which the claim then checks (`ifReported`).
    const notes = state.claimOwner === undefined ? state.notes : undefined;
    const failed = new Set(state.failedReporters ?? []);
    // A claim taken in a commit (withReportClaim) and not yet done with. The caller's own, when it
    // made that very commit (`known`), on an item nobody claimed since: the report needs no claim
    // of its own. Anyone else's (another worker's, or another report in this one): its holder goes
    // on to the newest version when it is done, as a claim of the report item's holder does; but
    // such a holder itself (`chained`) goes on regardless, with a claim of the item.
    const held = reportClaimHeld(run, state.reported, now);
    const mine =
      held !== undefined &&
      known !== undefined &&
      held.version === known.version &&
      held.owner === core.owner;
    if (held && !mine && !opts.chained) return 'skipped';
    if (held && mine && state.claimOwner === undefined)
      return this.reportClaimed(run, notes, failed, held.until, { reported: state.reported });
    const until = this.claimUntil(now);
    const claimed = await store.claimReport(
      runId,
      run.version,
      core.owner,
      until,
      now.toISOString(),
      notes ? { ifReported: state.reported } : {},
    );
    if (!claimed) return 'skipped';
    return this.reportClaimed(run, notes, failed, until);
  }

  private claimUntil(now: Date): string {
    return new Date(now.getTime() + this.core.reportClaimMs).toISOString();
  }

  /**
   * Report `first` (whose version we hold the claim on), then every newer version committed
   * meanwhile. Going on to a newer version completes the one shown and claims the next in one
   * write, and the claim never leaves us, so no other worker can report in between.
   *
   * `unclaimed`: `first`'s claim was taken in its commit (Run.reporting), on a report item read
   * with this reported version and no claim. Its completion checks the item is still so; a worker
   * that read the run before that commit may have claimed the item meanwhile (the one way to
   * report beside such a claim), and then this report completes nothing and is made again.
   */
  private async reportClaimed(
    first: Run,
    firstNotes: ReportNotes | undefined,
    failed: Set<string>,
    firstUntil: string,
    firstUnclaimed?: { reported: number },
  ): Promise<'reported'> {
    const { core } = this;
    const { store } = core;
    const runId = first.id;
    let run = first;
    let notes = firstNotes;
    /** Until when the claim is ours, as we wrote it. */
    let until = firstUntil;
    let unclaimed = firstUnclaimed;
    for (;;) {
      const shown = run;
      const taken = unclaimed;
      const noted: ReportNotes = {};
      if (core.reporters.length > 0) {
        const events = await this.eventsFor(runId, shown.version);
        const wf = core.workflows.get(shown.workflow) as Workflow<unknown> | undefined;
        const heldUntil = Date.parse(until);
        const current = async () => {
          // Nobody else can claim, nor complete a report, before our claim lapses; we wrote when
          // that is. Well before then (by more than any two workers' clocks differ), it still holds
          // without a read. Near it, or past it, the report state says.
          if (heldUntil - core.now().getTime() > CLAIM_SURE_MS) return true;
          const s = await store.getReportState(runId);
          if (taken)
            return (
              s.claimOwner === undefined && s.reported === taken.reported && heldUntil > core.now().getTime()
            );
          return (
            s.claimOwner === core.owner &&
            s.reported < shown.version &&
            s.claimUntil !== undefined &&
            Date.parse(s.claimUntil) > core.now().getTime()
          );
        };
        const failures: unknown[] = [];
        for (const r of core.reporters) {
          if (failed.has(r.name)) continue;
          const before = notes?.[r.name];
          try {
            await r.report(shown, {
              events,
              workflow: wf,
              store,
              current,
              ...(before !== undefined ? { noted: before } : {}),
              note: (value) => {
                noted[r.name] = value;
              },
            });
          } catch (err) {
            if (!isPermanentReportFailure(err)) {
              failures.push(err);
              continue;
            }
            // Retrying cannot fix it: record why, stop calling this reporter for the run, go on.
            await store.markReporterFailed(runId, r.name);
            failed.add(r.name);
            await core.recordEvent(runId, {
              type: 'report.failed',
              ...(shown.node ? { node: shown.node } : {}),
              by: r.name,
              detail: {
                reporter: r.name,
                version: shown.version,
                status: (err as { status?: number }).status ?? null,
                error: (err as Error).message?.slice(0, 500) ?? String(err),
              },
            });
          }
        }
        // A failed report is retried by redelivery: leave the claim to lapse rather than marking it
        // done (whoever takes it over does not trust the notes: we may have shown something).
        if (failures.length > 0) throw failures[0];
      }
      // A newer version whose report found our claim live was left to us: read it before
      // completing, so that completing this version and claiming that one is a single write. A
      // version whose step is under way, or due (its message on its way), is left to that step:
      // its commit, or the report its message carries, shows what it leads to (chasing it showed a
      // state about to pass, at a claim, a completion and the reporters' calls each).
      // A final version has nothing after it (no read).
      const latest = isFinal(shown.status) ? null : await store.getRun(runId);
      const next =
        latest && latest.version > shown.version && !stepAhead(latest, core.now()) ? latest : undefined;
      if (isFinal(shown.status)) {
        // A final state's report completes by retiring the run (one write, not two): a retired run
        // counts as reported up to its version (getReportState). Our claim on the report item, if
        // we took one, is left to lapse; no report of this run can follow. A worker reporting an
        // older version meanwhile (one that claimed before the final commit) finds this version
        // when it completes, and shows it again.
        await store.retire(shown);
        this.eventCache.delete(runId);
        return 'reported';
      }
      const nextUntil = this.claimUntil(core.now());
      const completed = await store.completeReport(runId, shown.version, core.owner, {
        ...(core.reporters.length > 0 ? { notes: noted } : {}),
        ...(next ? { next: { version: next.version, until: nextUntil } } : {}),
        ...(taken ? { unclaimed: taken } : {}),
      });
      if (!completed) {
        // Our claim lapsed while we reported (a stall), or a claim taken in the commit met a
        // reporter that read the run before it: a newer state may have been shown before ours and
        // overwritten by it. Mark it unreported and report the latest state again. From here when
        // a claim in the run item has not lapsed (ours, or another worker's: the reported version
        // just went down, so even one done with may hold again), since any other worker would
        // leave the report to that claim's holder; else by a report message.
        await store.reopenReport(runId, shown.version);
        const newest = await store.getRun(runId);
        if (!newest) return 'reported';
        // A final state's report may have retired the run before ours landed over it: back in the
        // active index, it counts as unreported again (and the sweeper sees to it if we stop).
        if (isFinal(newest.status)) await store.unretire(newest);
        const held = newest.reporting && Date.parse(newest.reporting.until) > core.now().getTime();
        if (taken || held) await this.report(runId, undefined, { chained: true });
        else await core.queue.send([reportMessage(newest)]);
        return 'reported';
      }
      if (next) {
        run = next;
        notes = noted;
        until = nextUntil;
        unclaimed = undefined;
        continue;
      }
      if (isTerminal(shown.status)) {
        // Only retire if nothing moved on meanwhile (retire is conditional on the version).
        await store.retire(shown);
        this.eventCache.delete(runId);
      }
      // The claim is released: a version committed between our read and the release found it live
      // and left its report to us, so look once more.
      const after = isFinal(shown.status) ? null : await store.getRun(runId);
      if (after && after.version > shown.version && !stepAhead(after, core.now()))
        await this.report(runId, undefined, { chained: true });
      return 'reported';
    }
  }

  /**
   * A report carried by a step's message (transitions.ts `messagesAfter`). It must not fail the
   * step: a failure is handed to a report message of its own, due once the failed attempt's claim
   * has lapsed (as a redelivered report message was); if even that send fails, the sweeper
   * re-sends the unreported version.
   *
   * It waits for its step first, up to `carriedReportWaitMs` (2 s). A step that committed in that
   * time sent a report of its outcome (carried by the next step's message, or its own): that
   * report shows the latest state, so this one is left out; several quick steps in a row are
   * shown once, by the report of the state they end in (a terminal or waiting state always gets
   * its own report). A slower step's lease ("running") is shown after the wait, and a step that
   * did not commit (stale, busy, lost, deferred, failed) leaves this report to show the version
   * it carried. The wait holds no claim: a newer report may go first.
   */
  async carried(runId: string, version: number, step?: Promise<unknown>, committed?: Run): Promise<void> {
    if (step && (await settledWithin(step, this.core.carriedReportWaitMs)) === 'committed') return;
    try {
      // Made at once by the step that committed it (no step to wait for): from the run it wrote.
      await this.report(runId, step ? undefined : committed);
    } catch (err) {
      logger.warn('a report carried by a step failed; sending it as a report message', {
        runId,
        version,
        error: (err as Error).message,
      });
      const afterClaim = this.core.reportClaimMs + 1000;
      await this.core.queue.send([reportMessage({ id: runId, version }, afterClaim)]).catch(() => undefined);
    }
  }

  /**
   * The run's history: what this worker read before, plus the events after it (not all again).
   * One read at a time per run: two reports of one run at once (a burst of versions) would both
   * miss the cache and both read the whole history; chained, the second reads only what the
   * first did not.
   */
  private eventsFor(runId: string, version: number): Promise<RunEvent[]> {
    const before = this.eventReads.get(runId);
    const read = (before ? before.catch(() => undefined) : Promise.resolve()).then(() =>
      this.readEvents(runId, version),
    );
    this.eventReads.set(runId, read);
    const done = () => {
      if (this.eventReads.get(runId) === read) this.eventReads.delete(runId);
    };
    read.then(done, done);
    return read;
  }

  private async readEvents(runId: string, version: number): Promise<RunEvent[]> {
    const known = this.eventCache.get(runId);
    const last = known?.[known.length - 1]?.seq;
    // As of the version shown (the store often knows it from the read just made).
    const fresh = await this.core.store.listEvents(runId, {
      version,
      ...(last !== undefined ? { after: last } : {}),
    });
    const events = known ? [...known, ...fresh] : fresh;
    this.eventCache.delete(runId); // re-insert: the map's order is least recently reported first
    this.eventCache.set(runId, events);
    if (this.eventCache.size > EVENT_CACHE_RUNS) {
      const oldest = this.eventCache.keys().next().value;
      if (oldest !== undefined) this.eventCache.delete(oldest);
    }
    return events;
  }
}
