import { LeaseLostError } from './errors.ts';
import type { RunStore } from './ports.ts';
import { ConcurrencyError } from './store-errors.ts';
import type { Plan } from './transitions.ts';
import type { Run } from './types.ts';

/**
 * A chained step's lease that the commit before it has not written yet (steps.ts `deferring`): the
 * plan of the steps before it, which leases it, and what writes that plan (the commit, then what
 * follows a commit). Written when the step needs its lease; else the step's own commit writes
 * that plan with its own outcome, in one write.
 */
export interface DeferredCommit {
  plan: Plan;
  write: () => Promise<Run>;
  /** Until when the lease written last (by an earlier step of the chain) holds the run. */
  until: string;
}

/**
 * The step a worker runs, and the run its commit is conditional on. Either leased (by its own
 * write, or by the commit that chained it), or held unwritten: a first delivery's first try takes
 * the run from the item its message carries (or a read) and holds it with the lease it would take
 * (transitions.ts `unwrittenLease`), and writes that lease only when it must:
 * - before its first effect, since effects are fenced by a written lease (effects.ts);
 * - once it has run a while (`lazyLeaseMs`), so that a slow step is seen to be under way: a
 *   duplicate message finds it busy, and the sweeper leaves it be.
 * Only for a node marked `lazyLease` (workflow.ts): one that does nothing before its first effect
 * that must not run twice at once. A quick step of such a node without effects is then its commit
 * alone. Until the lease is written, the commit is conditional on the version held (read, or
 * carried: the run as of the message), as a leased step's is on its lease's: any other write of the
 * run (another worker's lease or commit, a cancel) makes it lose, and by the node's promise it did
 * nothing outside the run that needs undoing.
 *
 * Or held by the uncommitted plan of the chained steps before it (`deferred`): the run as that plan
 * would write it, with this step leased, while the previous step's written lease still holds the
 * run for this worker. The lease is written, by committing that plan, at the same two moments; a
 * step that needs neither is committed with the steps before it in one write (steps.ts). No other
 * worker can run the step meanwhile, so any node may be held this way.
 */
export class StepHold {
  private current: Run;
  private written: boolean;
  private taking: Promise<Run> | undefined;
  /** Set when the lease could not be written because the run moved on: the step is lost. */
  lost: LeaseLostError | undefined;

  constructor(
    private readonly store: Pick<RunStore, 'leaseStep'>,
    run: Run,
    written: boolean,
    private readonly now: () => Date,
    /** The commit that writes this lease, while it is not written. */
    readonly deferred?: DeferredCommit,
  ) {
    this.current = run;
    this.written = written;
  }

  /** The run as the step holds it: the leased version, or the version read with its lease unwritten. */
  get run(): Run {
    return this.current;
  }

  get leased(): boolean {
    return this.written;
  }

  /**
   * The run with its lease written: at once when it is, otherwise by one conditional write
   * (`leaseStep`, on the version read), shared by every caller that asks meanwhile. Throws
   * LeaseLostError when the run moved on since it was read (the step is another's, or over); any
   * other failure (a throttle) may be tried again by the next caller.
   */
  lease(): Promise<Run> {
    if (this.written) return Promise.resolve(this.current);
    this.taking ??= this.write().catch((err: unknown) => {
      if (!(err instanceof LeaseLostError)) this.taking = undefined;
      throw err;
    });
    return this.taking;
  }

  /** Once a lease write under way (from a timer the handler outlived) has landed or failed. */
  async settled(): Promise<void> {
    await this.taking?.catch(() => undefined);
  }

  /** The plan whose commit writes this lease, while it is not written (none once it is). */
  get pending(): Plan | undefined {
    return this.written ? undefined : this.deferred?.plan;
  }

  private async write(): Promise<Run> {
    const run = this.current;
    const step = run.step!;
    if (this.deferred) {
      let saved: Run;
      try {
        saved = await this.deferred.write();
      } catch (err) {
        if (!(err instanceof ConcurrencyError)) throw err;
        this.lost = new LeaseLostError(
          `step ${step.seq} (${step.node}) of run ${run.id} could not be leased: the run moved on since version ${this.deferred.plan.expectedVersion}`,
          { runId: run.id, node: step.node, cause: err },
        );
        throw this.lost;
      }
      this.current = saved;
      this.written = true;
      return saved;
    }
    const got = await this.store.leaseStep(run.id, {
      seq: step.seq,
      version: run.version,
      lease: run.lease!,
      at: this.now().toISOString(),
    });
    if (!got?.leased) {
      this.lost = new LeaseLostError(
        `step ${step.seq} (${step.node}) of run ${run.id} could not be leased: the run moved on since version ${run.version}`,
        { runId: run.id, node: step.node },
      );
      throw this.lost;
    }
    this.current = got.run;
    this.written = true;
    return got.run;
  }
}
