import { type ErrorContext, NonRetryableError, SwitchyardError } from '../common/errors.ts';

/** Engine errors (the root, and what retrying means, are in lib/common/errors.ts). */
export { isRetryable, NonRetryableError, SwitchyardError } from '../common/errors.ts';

/** A node took longer than its timeout. Retryable by default, like any transient failure. */
export class StepTimeoutError extends SwitchyardError {
  override name = 'StepTimeoutError';
}

/**
 * The step lost its lease (cancelled, taken over, or lapsed) before an effect could be claimed or
 * recorded: nothing more may be done under it. Retryable: if the run did not move on, the step is
 * tried again under a new lease; if it did, the step's commit loses anyway.
 */
export class LeaseLostError extends SwitchyardError {
  override name = 'LeaseLostError';
}

/** The workflow or node named does not exist. */
export class UnknownWorkflowError extends NonRetryableError {
  override name = 'UnknownWorkflowError';
}

/** A start was refused by the subject's concurrency policy (`reject`). */
export class RunConflictError extends NonRetryableError {
  override name = 'RunConflictError';
  readonly activeRunId: string;
  constructor(message: string, options: ErrorContext & { activeRunId: string }) {
    super(message, options);
    this.activeRunId = options.activeRunId;
  }
}

/** A signal that does not fit the run's state (approve a run that is not at a gate, retry a live run). */
export class InvalidSignalError extends NonRetryableError {
  override name = 'InvalidSignalError';
}

/** An approval given for something other than what the gate now shows (the plan changed). */
export class StaleApprovalError extends InvalidSignalError {
  override name = 'StaleApprovalError';
}

/** A run's subject lacks a field its workflow requires (a webhook without an issue number). */
export class InvalidSubjectError extends NonRetryableError {
  override name = 'InvalidSubjectError';
  /** The missing or malformed field: `subject.repo`, `subject.issue`. */
  readonly field: string;
  constructor(message: string, options: ErrorContext & { field: string }) {
    super(message, options);
    this.field = options.field;
  }
}

/** The kill switch is on for this scope (lib/engine/pause.ts): no new run starts. */
export class RunPausedError extends NonRetryableError {
  override name = 'RunPausedError';
}
