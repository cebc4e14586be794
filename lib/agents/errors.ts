import { type ErrorContext, SwitchyardError } from '../common/errors.ts';

/** Errors of the built-in agents. Retry intent lives in the type. */
export class AgentError extends SwitchyardError {
  override name = 'AgentError';
}

/** Another worker holds the claim to create this run's status comment; the report is retried later. */
export class ReporterBusyError extends AgentError {
  override name = 'ReporterBusyError';
  override readonly retryable = true;
}

/** The run has no issue to work on (a run on a repository only, or without a subject). */
export class NoSubjectError extends AgentError {
  override name = 'NoSubjectError';
  override readonly retryable = false;
}

// ------------------------------------------------------------------ agents at work (the hub)

/** Too many workers raced for the work queue's slot record at once; the step is retried later. */
export class WorkContentionError extends AgentError {
  override name = 'WorkContentionError';
  override readonly retryable = true;
}

/** An agent did not report back before its gate expired: the task fails, with this as the report. */
export class AgentTimeoutError extends AgentError {
  override name = 'AgentTimeoutError';
  override readonly retryable = false;
}

/** A work item waited for a free agent slot longer than the queue allows. */
export class QueueTimeoutError extends AgentError {
  override name = 'QueueTimeoutError';
  override readonly retryable = false;
}

/** An escalation gate expired without a person deciding. */
export class EscalationExpiredError extends AgentError {
  override name = 'EscalationExpiredError';
  override readonly retryable = false;
}

/** An agent addressed another agent by name: agents talk only through the hub, by type. */
export class DirectAddressError extends AgentError {
  override name = 'DirectAddressError';
  override readonly retryable = false;
}

/** The agent has no executor that can take a task (a built-in agent), or its executor is unknown. */
export class NoExecutorError extends AgentError {
  override name = 'NoExecutorError';
  override readonly retryable = false;
}

/** Sending a task to an executor failed. Retryable for network errors and 5xx/429, not for 4xx. */
export class DispatchError extends AgentError {
  override name = 'DispatchError';
  override readonly retryable: boolean;
  readonly status: number;
  constructor(message: string, options: ErrorContext & { status: number }) {
    super(message, options);
    this.status = options.status;
    this.retryable = options.status === 0 || options.status === 429 || options.status >= 500;
  }
}

/** Another ci-triage run holds the claim to create the branch's ci-failure issue; retried shortly. */
export class CiTriageBusyError extends AgentError {
  override name = 'CiTriageBusyError';
  override readonly retryable = true;
}

/** A coverage-report run without its input. */
export class CoverageError extends AgentError {
  override name = 'CoverageError';
  override readonly retryable = false;
}
