import type { EngineCore } from './core.ts';
import { InvalidSignalError } from './errors.ts';
import { ConcurrencyError, SubjectLockedError } from './store-errors.ts';
import { type Decision, type GateChange, onGateChange, onSignal, type Signal } from './transitions.ts';
import type { Run } from './types.ts';

/** Tries of a signal whose run moved between our read and our write (a step committed). */
const SIGNAL_TRIES = 10;

/** Signals from people and agents (approve, reject, cancel, retry, results, notes) and gate edits. */
export class Signals<S> {
  constructor(private readonly core: EngineCore<S>) {}

  /**
   * `known`: the run as the caller has just read it, decided on without reading it again. Only a
   * commit is taken from it, which is conditional on its version: if the run moved on since, the
   * commit is refused and the run read as usual. Any other decision (a refusal, an audit-only
   * append) is made on the run as it is.
   */
  async signal(runId: string, signal: Signal, opts: { known?: Run } = {}): Promise<Run> {
    let known = opts.known?.id === runId ? opts.known : undefined;
    for (let attempt = 0; ; attempt++) {
      const fromKnown = known !== undefined;
      const run = known ?? (await this.core.store.getRun(runId));
      known = undefined;
      if (!run) throw new InvalidSignalError(`run ${runId} not found`, { runId });
      const decision = onSignal(run, signal, this.core.workflows.get(run.workflow), this.core.moment());
      if (fromKnown && decision.kind !== 'commit') continue;
      try {
        return await this.apply(run, decision);
      } catch (err) {
        // The run moved between our read and our write (a step committed): re-read and re-decide.
        if (err instanceof ConcurrencyError && attempt < SIGNAL_TRIES) continue;
        if (signal.type === 'retry' && err instanceof SubjectLockedError) {
          throw new InvalidSignalError(
            `cannot retry run ${run.id}: ${run.subject.key} has another active run ${err.activeRunId}`,
            { runId: run.id, cause: err },
          );
        }
        throw err;
      }
    }
  }

  /**
   * Change what a waiting run's person gate shows (an edited plan) without leaving the gate: the run
   * data is merged and the gate binds to `binding`, so approvals of what was shown before are
   * refused. Only while the gate still shows `expected` (two editors: the second one is refused).
   */
  async rebindGate(runId: string, change: GateChange): Promise<Run> {
    for (let attempt = 0; ; attempt++) {
      const run = await this.core.store.getRun(runId);
      const decision = onGateChange(runId, run, change, this.core.moment());
      if (decision.kind === 'refuse') throw decision.error;
      try {
        return await this.core.apply(decision.plan);
      } catch (err) {
        if (err instanceof ConcurrencyError && attempt < SIGNAL_TRIES) continue;
        throw err;
      }
    }
  }

  private async apply(run: Run, decision: Decision): Promise<Run> {
    switch (decision.kind) {
      case 'refuse':
        if (decision.audit) await this.core.recordEvent(run.id, decision.audit);
        throw decision.error;
      case 'append':
        await this.core.recordEvent(run.id, decision.event);
        return run;
      case 'commit':
        return this.core.apply(decision.plan);
    }
  }
}
