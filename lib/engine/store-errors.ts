import { type ErrorContext, SwitchyardError } from '../common/errors.ts';

/** Domain errors of the run store. Adapters translate SDK exceptions into these at their edge. */
export class StoreError extends SwitchyardError {
  override name = 'StoreError';
  override readonly retryable: boolean = false;
}

/** The store cannot be reached or started (missing Java, endpoint down). */
export class StoreUnavailableError extends StoreError {
  override name = 'StoreUnavailableError';
  override readonly retryable = true;
}

/** A conditional write lost: someone else changed the run first (optimistic locking). */
export class ConcurrencyError extends StoreError {
  override name = 'ConcurrencyError';
  declare readonly runId: string;
  constructor(message: string, options: ErrorContext & { runId: string }) {
    super(message, options);
  }
}

/** The store throttled us and retries inside the SDK were exhausted. */
export class ThrottledError extends StoreError {
  override name = 'ThrottledError';
  override readonly retryable = true;
}

export class RunNotFoundError extends StoreError {
  override name = 'RunNotFoundError';
  declare readonly runId: string;
  constructor(options: ErrorContext & { runId: string }) {
    super(`run ${options.runId} not found`, options);
  }
}

/** The subject already has an active run of this workflow (its lock is held). */
export class SubjectLockedError extends StoreError {
  override name = 'SubjectLockedError';
  readonly activeRunId: string;
  constructor(message: string, options: ErrorContext & { activeRunId: string }) {
    super(message, options);
    this.activeRunId = options.activeRunId;
  }
}

/**
 * DynamoDB refused a write as invalid (an item over 400 KB, a nesting too deep): retrying the
 * same write cannot help, so it is not a lost race and not retryable. The message says why.
 */
export class StoreValidationError extends StoreError {
  override name = 'StoreValidationError';
  declare readonly runId: string;
  constructor(message: string, options: ErrorContext & { runId: string }) {
    super(message, options);
  }
}

/** A run (or one commit's events) is over the size budget checked before each write. */
export class RunTooLargeError extends StoreValidationError {
  override name = 'RunTooLargeError';
  readonly bytes: number;
  readonly limit: number;
  readonly what: string;
  constructor(options: ErrorContext & { runId: string; what: string; bytes: number; limit: number }) {
    const { what, bytes, limit, runId } = options;
    super(`${what} of run ${runId} is ${bytes} bytes, over the budget of ${limit} bytes`, options);
    this.what = what;
    this.bytes = bytes;
    this.limit = limit;
  }
}
