import { logger } from '../common/observability.ts';
import type { Outgoing } from '../queue/port.ts';
import { withStepSignal } from './abort.ts';
import type { EngineCore } from './core.ts';
import { type EffectFn, type EffectOptions, runEffect } from './effects.ts';
import { LeaseLostError, StepTimeoutError } from './errors.ts';
import { StepHold } from './hold.ts';
import { ConcurrencyError, StoreValidationError } from './store-errors.ts';
import {
  type Attempt,
  type Chained,
  chainNext,
  fused,
  isDue,
  isPending,
  leaseOf,
  onArrival,
  onAttempt,
  onUncommittable,
  type Plan,
  releasedLease,
  unwrittenLease,
  withoutData,
  withReportClaim,
} from './transitions.ts';
import type { NewEvent, Run } from './types.ts';
import type { NodeResult, ResolvedNode, StepContext, Workflow } from './workflow.ts';

export type StepOutcome = 'committed' | 'stale' | 'busy' | 'deferred' | 'lost' | 'missing';

/** What a step message says of its step beyond its seq (queue/port.ts): enough to lease it unread. */
export interface StepHint {
  workflow: string;
  node: string;
  /** The run's version that scheduled the step. */
  version: number;
  /** When the step is due (epoch ms). */
  due: number;
  /** The run item as the commit that sent the message wrote it (`RunStore.carriedRun`). */
  item?: string;
}

/** What the queue says of a message's delivery. */
export interface Delivery {
  /** How many times the message has been delivered, this time included (SQS `ApproximateReceiveCount`). */
  receiveCount: number;
}

/** How long this invocation may go on running steps (Lambda: its remaining time). */
export interface StepBudget {
  remainingMs: () => number;
}

/** The time a chained step must leave after its own node timeout and lease grace. */
const CHAIN_MARGIN_MS = 5_000;
/** Events a deferred commit may hold for the next one (steps.ts `deferring`): a commit's events are carried up to 16 KB. */
const DEFERRED_EVENTS_MAX_BYTES = 8 * 1024;
/**
 * The time an invocation must have left to report a step's new state itself (`reportInline`): a
 * report calls GitHub and Discord, each call bounded by its client's timeout and retries.
 */
const INLINE_REPORT_MIN_MS = 60_000;

/**
 * Runs one step of a run, exactly once in effect however often its message arrives: lease the
 * step (a conditional write), run the node's handler, commit the outcome conditional on the
 * leased version, then send what follows. `faults` is called at each named point in between.
 *
 * A node marked `lazyLease` (workflow.ts) runs its first try, on its message's first delivery,
 * from the run item the message carries (the one the commit that sent it wrote; a read when there
 * is none) instead, and writes its lease only when it needs one (before its first effect, or once
 * it has run `lazyLeaseMs`; hold.ts): a quick step without effects is its commit alone. A
 * redelivered message leases first, as a takeover does, so a step that keeps crashing its worker
 * counts its attempts and ends.
 *
 * With a budget (a queue message's invocation) and chaining on (`chainSteps`), a step that
 * schedules another step of the same run for now runs it right here: the commit leases it, and
 * its message, read and lease are never needed (transitions.ts `chainNext`).
 */
export class StepRunner<S> {
  private leases = 0;

  constructor(
    private readonly core: EngineCore<S>,
    /**
     * Makes the report a dropped step message would have carried (reporting.ts `carried`), given
     * the step it would have run beside (a quick one's report is left to its own commit's); with no
     * step, the report a report message would have made (`reportInline`), of `committed`: the run
     * as the step committed it.
     */
    private readonly report: (
      runId: string,
      version: number,
      step?: Promise<StepOutcome>,
      committed?: Run,
    ) => Promise<void>,
  ) {}

  async execute(
    runId: string,
    seq: number,
    budget?: StepBudget,
    hint?: StepHint,
    delivery?: Delivery,
  ): Promise<StepOutcome> {
    const { core } = this;
    // A first delivery may hold a first try unwritten (below); a redelivery leases it at once.
    const firstDelivery = core.lazyLeaseMs > 0 && (delivery?.receiveCount ?? 1) <= 1;
    const lazyHinted =
      firstDelivery &&
      hint &&
      this.lazyFirstTry(core.workflows.get(hint.workflow)?.nodes.get(hint.node), hint.due);
    const tried = hint && !lazyHinted ? await this.leaseAtOnce(runId, seq, hint, budget) : undefined;
    if (tried && 'outcome' in tried) return tried.outcome;
    // A lazy first try runs from the run item its message carries, as of the message's version:
    // if the run moved on since, its commit (or its lease) is refused for that version.
    const carried =
      lazyHinted && hint.item !== undefined ? await core.store.runFromCarried(runId, hint.item) : null;
    const run = tried ? tried.run : (carried ?? (await core.store.getRun(runId)));
    if (!run) return 'missing';
    if (!isPending(run, seq)) return 'stale';
    const now = core.now();
    const wf = core.workflow(run.workflow);
    const node = wf.node(run.step!.node);

    // 1. Lease (or find the step early, busy, or out of attempts).
    const arrival = onArrival(run, node, {
      now,
      owner: this.leaseOwner(),
      leaseGraceMs: core.leaseGraceMs,
      reporting: core.reporters.length > 0,
    });
    switch (arrival.kind) {
      case 'early':
        await core.queue.send([arrival.message]);
        return 'deferred';
      case 'busy':
        return 'busy';
      case 'exhausted':
        try {
          await core.apply(arrival.plan);
          return 'committed';
        } catch (err) {
          if (err instanceof ConcurrencyError) return 'lost';
          throw err;
        }
    }
    const { leased, attempt, takeover } = arrival;
    if (firstDelivery && !takeover && this.lazyFirstTry(node, Date.parse(run.step!.notBefore))) {
      const held = unwrittenLease(run, node, {
        now,
        owner: leased.lease!.owner,
        leaseGraceMs: core.leaseGraceMs,
      });
      return this.leasedStep(this.hold(held, false), wf, node, attempt, now, budget, 0);
    }
    try {
      await core.lease(leased, run.version);
    } catch (err) {
      if (err instanceof ConcurrencyError) return 'lost';
      throw err;
    }
    return this.leasedStep(this.hold(leased, true), wf, node, attempt, now, budget, 0);
  }

  /**
   * Step 1 in one write, when the message says which step of which version it is: lease it as
   * `onArrival` would for a first try, conditional on the run still being at that version
   * (`leaseStep`), with no read of the run before. What the write's condition refuses (a takeover,
   * a step under way or stale, a run that moved on) comes back as the run it found, for the usual
   * path to judge: `run`.
   */
  private async leaseAtOnce(
    runId: string,
    seq: number,
    hint: StepHint,
    budget: StepBudget | undefined,
  ): Promise<{ outcome: StepOutcome } | { run: Run | null } | undefined> {
    const { core } = this;
    const wf = core.workflows.get(hint.workflow);
    const hinted = wf?.nodes.get(hint.node);
    const now = core.now();
    // Early (a wait longer than SQS can delay a message): `onArrival` sends it back for the rest.
    if (!wf || !hinted || !isDue(hint.due, now.getTime())) return undefined;
    const lease = leaseOf(seq, hinted, {
      now,
      owner: this.leaseOwner(),
      leaseGraceMs: core.leaseGraceMs,
    });
    // A refusal is an answer (below), never a ConcurrencyError: the write names no version of ours.
    const got = await core.store.leaseStep(runId, {
      seq,
      version: hint.version,
      lease,
      at: now.toISOString(),
    });
    if (!got?.leased) return { run: got?.run ?? null };
    const leased = got.run;
    // The node the run names: the message's (a seq is one step of one run), of the same workflow.
    const node = wf.node(leased.step!.node);
    return {
      outcome: await this.leasedStep(this.hold(leased, true), wf, node, leased.step!.attempt, now, budget, 0),
    };
  }

  /**
   * The owner a new lease is taken under: this worker, and which of its leases. Two messages for
   * one step handled at once by one worker (an SQS batch, a redelivery) must not write the same
   * lease: a write refused for its version is taken for its own earlier try when the item found is
   * the one it writes (`isOwnWrite`, `leaseStep`), and two such leases taken in the same
   * millisecond would both think they held the step, and share its effects' claims.
   */
  private leaseOwner(): string {
    this.leases = (this.leases + 1) % 1_000_000;
    return `${this.core.owner}.${this.leases.toString(36)}`;
  }

  /**
   * Whether a first try of `node`, due at `dueMs`, may run before its lease is written: a node
   * marked `lazyLease`, and a message that is not the sweeper's (it re-sends a step only once the
   * enqueue grace has passed since it was due: a first try that stopped before writing anything,
   * its message gone, is tried again under a lease, whose lapses count as attempts).
   */
  private lazyFirstTry(node: ResolvedNode<S> | undefined, dueMs: number): boolean {
    return node?.lazyLease === true && dueMs + this.core.enqueueGraceMs > this.core.now().getTime();
  }

  private hold(run: Run, written: boolean): StepHold {
    return new StepHold(this.core.store, run, written, this.core.now);
  }

  /**
   * Steps 2 and 3 of a step this worker holds: leased (by its own write, or a chained commit), or
   * a first try whose lease is written when it needs one (hold.ts).
   */
  private async leasedStep(
    hold: StepHold,
    wf: Workflow<S>,
    node: ResolvedNode<S>,
    attempt: number,
    now: Date,
    budget: StepBudget | undefined,
    chained: number,
  ): Promise<StepOutcome> {
    const { core } = this;
    await core.faults?.('after-lease', hold.run);

    // 2. Run the node.
    const outcome = await this.attempt(hold, node, attempt, now);
    await hold.settled();
    // The run moved on while the step ran unleased (another worker, a cancel): nothing to commit.
    if (hold.lost) return 'lost';
    // The state the commit builds on: the lease's version, or the version read if never written.
    const leased = hold.run;
    await core.faults?.('after-effect', leased);

    // 3. Commit the outcome, conditional on that version (leasing the next step with it when that
    // step runs here too), with the uncommitted plan of the steps before when there is one.
    let plan = onAttempt(leased, wf, node, attempt, outcome, { ...core.moment(), random: core.random });
    const pending = hold.pending;
    if (pending) plan = fused(pending, plan);
    const next = this.chainable(plan, wf, budget, chained);
    if (next) plan = next.plan;
    // 4a. The next step, on the run as this plan would write it: written when it must be (hold.ts).
    const until = next && this.deferring(plan, hold);
    if (next && until) {
      const reports: Promise<void>[] = [];
      // The run as the commit would store it: its events counted (`fused` counts them again from the start).
      const written = { ...plan.run, eventSeq: plan.run.eventSeq + plan.events.length };
      const deferred = new StepHold(core.store, written, false, core.now, {
        plan,
        write: () => this.commitDeferred(plan, budget, next.report, reports),
        until,
      });
      try {
        return await this.leasedStep(
          deferred,
          wf,
          next.node,
          plan.run.step!.attempt,
          core.now(),
          budget,
          chained + 1,
        );
      } finally {
        await Promise.allSettled(reports);
      }
    }
    const claimed = this.claimedHere(plan, budget);
    const here = claimed.here;
    plan = claimed.plan;
    let saved: Run;
    try {
      saved = await core.commit(plan);
    } catch (err) {
      if (err instanceof ConcurrencyError) return 'lost'; // cancelled meanwhile, or another worker won
      // A fused commit refused or failed: the steps before are written alone first (the lease they
      // leave is this step's), and this step goes on as it would have without them.
      if (pending) {
        try {
          await hold.lease();
        } catch (again) {
          if (again instanceof LeaseLostError) return 'lost';
          throw again;
        }
        return this.uncommitted(hold.run, node, attempt, err);
      }
      return this.uncommitted(leased, node, attempt, err);
    }
    await this.afterCommit(saved, plan, here);
    if (here) await this.report(saved.id, saved.version, undefined, saved);
    if (!next) return 'committed';

    // 4b. The next step, leased by that commit, beside the report its message would have carried.
    const step = this.leasedStep(
      this.hold(saved, true),
      wf,
      next.node,
      saved.step!.attempt,
      core.now(),
      budget,
      chained + 1,
    );
    const [stepped] = await Promise.allSettled([
      step,
      next.report !== undefined ? this.report(saved.id, next.report, step) : Promise.resolve(),
    ]);
    if (stepped.status === 'rejected') throw stepped.reason;
    return stepped.value;
  }

  /**
   * Whether the commit of `plan`, which leases a chained next step, may wait for that step: the
   * next step then runs on the run as the plan would write it, and its own commit writes both (one
   * write for two transitions), or the plan is written first when the step needs its lease
   * (hold.ts). Only while this worker's written lease holds the run (so no other worker can run
   * either step), long enough for the lazy write (`lazyLeaseMs`), with no lock change (taken and
   * given back in one commit), and events small enough to carry into the next commit. Its answer
   * is until when that lease holds (undefined: commit now).
   */
  private deferring(plan: Plan, hold: StepHold): string | undefined {
    const { core } = this;
    if (core.lazyLeaseMs <= 0 || plan.lock) return undefined;
    // The lease written last: this step's own, or the one an earlier step of the chain wrote.
    const until = hold.pending ? hold.deferred?.until : hold.leased ? hold.run.lease?.until : undefined;
    if (
      until === undefined ||
      Date.parse(until) - core.now().getTime() < 2 * core.lazyLeaseMs + core.leaseGraceMs ||
      Buffer.byteLength(JSON.stringify(plan.events), 'utf8') > DEFERRED_EVENTS_MAX_BYTES
    )
      return undefined;
    return until;
  }

  /**
   * Write a deferred plan (the next step needs its lease): as a commit that leases a chained step
   * is written, the report it would have made claimed in it and made beside the step (`reports`).
   * A refusal (ConcurrencyError) is the step's lost lease (hold.ts).
   */
  private async commitDeferred(
    plan: Plan,
    budget: StepBudget | undefined,
    carried: number | undefined,
    reports: Promise<void>[],
  ): Promise<Run> {
    const { plan: claimed, here } = this.claimedHere(plan, budget);
    const saved = await this.core.commit(claimed);
    await this.afterCommit(saved, claimed, here);
    const version = here ? saved.version : carried;
    if (version !== undefined)
      reports.push(this.report(saved.id, version, undefined, saved).catch(() => undefined));
    return saved;
  }

  /**
   * A step whose commit failed other than by a lost race: too large or otherwise invalid (no retry
   * can commit it, so the step fails with the reason), or throttled or unavailable (the lease is
   * given back early rather than held until it lapses).
   */
  private uncommitted(
    leased: Run,
    node: ResolvedNode<S>,
    attempt: number,
    err: unknown,
  ): Promise<StepOutcome> {
    if (err instanceof StoreValidationError) return this.failUncommittable(leased, node, attempt, err);
    return this.releaseLease(leased, node, attempt, err);
  }

  /** The plan with its next step leased here, when chaining is on and the invocation has time for it. */
  private chainable(
    plan: Plan,
    wf: Workflow<S>,
    budget: StepBudget | undefined,
    chained: number,
  ): (Chained & { node: ResolvedNode<S> }) | undefined {
    const { core } = this;
    const step = plan.run.step;
    if (!budget || chained >= core.chainSteps || !step) return undefined;
    const node = wf.node(step.node);
    if (budget.remainingMs() < node.timeoutMs + core.leaseGraceMs + CHAIN_MARGIN_MS) return undefined;
    const next = chainNext(plan, node, {
      now: core.now(),
      owner: this.leaseOwner(),
      leaseGraceMs: core.leaseGraceMs,
    });
    return next ? { ...next, node } : undefined;
  }

  /**
   * The plan's report message (`here`), when this invocation shows the new state itself
   * (`reportInline`) and has time for it: a report message due now is the last thing a step leaves
   * for another invocation, whose receive, delete and start cost more than the report itself. The
   * report claim then rides on the plan's commit (reporting.ts), not a write of its own.
   */
  private claimedHere(plan: Plan, budget: StepBudget | undefined): { plan: Plan; here?: Outgoing } {
    const { core } = this;
    if (!core.reportInline || !budget || budget.remainingMs() < INLINE_REPORT_MIN_MS) return { plan };
    const here = plan.messages.find((m) => m.message.kind === 'report' && m.delaySeconds === undefined);
    if (!here) return { plan };
    return {
      plan: { ...plan, run: withReportClaim(plan.run, core.owner, core.now(), core.reportClaimMs) },
      here,
    };
  }

  /** What follows a step's commit: its messages (but the report made here), then the fault point. */
  private async afterCommit(saved: Run, plan: Plan, here: Outgoing | undefined): Promise<void> {
    await this.sendAfter(saved, here ? plan.messages.filter((m) => m !== here) : plan.messages);
    await this.core.faults?.('after-commit', saved);
  }

  private async sendAfter(saved: Run, messages: Outgoing[]): Promise<void> {
    await this.core.faults?.('before-enqueue', saved);
    await this.core.send(saved, messages);
  }

  /** Run the node's handler once (a gate that config turned off passes without it). */
  private async attempt(hold: StepHold, node: ResolvedNode<S>, attempt: number, now: Date): Promise<Attempt> {
    const started = Date.now();
    if (node.gateDisabled && !node.gateRequired?.(hold.run.data)) {
      const result: NodeResult = {
        edge: 'approved',
        output: {},
        events: [{ type: 'gate.skipped', node: node.name, detail: { reason: 'disabled by config' } }],
      };
      return { ok: true, result, durationMs: Date.now() - started };
    }
    const emitted: NewEvent[] = [];
    try {
      const result = await this.runHandler(hold, node, attempt, now, emitted);
      const events = emitted.length > 0 ? [...emitted, ...(result.events ?? [])] : result.events;
      return {
        ok: true,
        result: events ? { ...result, events } : result,
        durationMs: Date.now() - started,
      };
    } catch (failure) {
      return { ok: false, failure, events: emitted, durationMs: Date.now() - started };
    }
  }

  /**
   * The handler under the node's timeout, its outbound calls under the step's abort signal. An
   * unwritten lease is written before the first effect, or after `lazyLeaseMs`; if the run moved
   * on meanwhile, the handler is aborted (`hold.lost`).
   */
  private async runHandler(
    hold: StepHold,
    node: ResolvedNode<S>,
    attempt: number,
    now: Date,
    emitted: NewEvent[],
  ): Promise<NodeResult> {
    const { core } = this;
    const run = hold.run;
    const controller = new AbortController();
    const ctx: StepContext<S> = {
      emit: (event) => {
        emitted.push({ ...event, at: event.at ?? core.now().toISOString() });
      },
      run,
      node: node.name,
      attempt,
      stepKey: `${run.id}:${run.step!.seq}`,
      now,
      signal: controller.signal,
      services: core.services,
      // One effect primitive, fenced by this step's lease (lib/engine/effects.ts), written first.
      effect: <T>(name: string, fn: EffectFn<T>, opts?: EffectOptions): Promise<T> =>
        runEffect(
          core.store,
          {
            runId: run.id,
            leased: () => hold.lease(),
            node: node.name,
            owner: core.owner,
            signal: controller.signal,
            now: core.now,
          },
          name,
          fn,
          opts,
        ),
    };
    let timer: NodeJS.Timeout | undefined;
    let lazy: NodeJS.Timeout | undefined;
    let ended = false;
    const lost = new Promise<never>((_, reject) => {
      // A step still running after `lazyLeaseMs` writes its lease, so that it is seen under way
      // (and tries again as long after a write that failed for a reason that may pass).
      const arm = () => {
        if (ended || hold.leased) return;
        lazy = setTimeout(() => {
          hold.lease().then(
            () => undefined,
            (err: unknown) => {
              if (!(err instanceof LeaseLostError)) return arm();
              reject(err);
              controller.abort();
            },
          );
        }, core.lazyLeaseMs);
      };
      arm();
    });
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // Reject before aborting: a handler that returns as soon as it is aborted must not win the race.
        reject(
          new StepTimeoutError(`${node.name} timed out after ${node.timeoutMs} ms`, {
            runId: run.id,
            node: node.name,
          }),
        );
        controller.abort();
      }, node.timeoutMs);
    });
    try {
      // Every outbound call the handler makes reads the step's signal (lib/engine/abort.ts).
      return await Promise.race([withStepSignal(controller.signal, () => node.handler(ctx)), timeout, lost]);
    } finally {
      ended = true;
      clearTimeout(timer);
      clearTimeout(lazy);
    }
  }

  /**
   * A step whose outcome the store refused as invalid (over the size budget, nested too deeply):
   * fail the run with that reason, from the leased state (the outcome is what could not be stored).
   */
  private async failUncommittable(
    leased: Run,
    node: ResolvedNode<S>,
    attempt: number,
    err: StoreValidationError,
  ): Promise<StepOutcome> {
    const plan = onUncommittable(leased, node, attempt, err, this.core.moment());
    let saved: Run;
    try {
      saved = await this.core.commit(plan);
    } catch (again) {
      if (again instanceof ConcurrencyError) return 'lost';
      if (!(again instanceof StoreValidationError)) throw again;
      // The state the step started from is itself over budget: end the run without its data.
      saved = await this.core.commit(withoutData(plan));
    }
    await this.sendAfter(saved, plan.messages);
    return 'committed';
  }

  /**
   * The commit failed for a reason that may pass (a throttle past its retries, the store
   * unreachable). Shorten the lease to a backoff delay and send the step again after it: the next
   * try takes the lapsed lease over and counts an attempt, so a commit that keeps failing ends
   * the run once attempts are exhausted. If even this write fails, the lease lapses on its own.
   */
  private async releaseLease(
    leased: Run,
    node: ResolvedNode<S>,
    attempt: number,
    err: unknown,
  ): Promise<StepOutcome> {
    const released = releasedLease(leased, node, attempt, err, {
      now: this.core.now(),
      random: this.core.random,
    });
    try {
      await this.core.lease(released.run, leased.version);
    } catch {
      throw err; // it committed after all (a crash after the commit), or the store is still down
    }
    logger.warn('step commit failed; lease released for a retry', {
      runId: leased.id,
      node: node.name,
      attempt,
      delayMs: released.delayMs,
      error: (err as Error).message,
    });
    try {
      await this.core.queue.send([released.message]);
    } catch {
      // The sweeper re-sends a step whose lease lapsed.
    }
    return 'deferred';
  }
}
