/** Domain errors of the run store. Adapters translate SDK exceptions into these at their edge. */
export class StoreError extends Error {
  override name = 'StoreError';
  readonly retryable: boolean = false;
}

/** The store cannot be reached or started (missing Java, endpoint down). */
export class StoreUnavailableError extends StoreError {
  override name = 'StoreUnavailableError';
  override readonly retryable = true;
}

/** A conditional write lost: someone else changed the run first (optimistic locking). */
export class ConcurrencyError extends StoreError {
  override name = 'ConcurrencyError';
  constructor(
    message: string,
    readonly runId: string,
    options?: ErrorOptions,
  ) {
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
  constructor(readonly runId: string) {
    super(`run ${runId} not found`);
  }
}

/** The subject already has an active run of this workflow (its lock is held). */
export class SubjectLockedError extends StoreError {
  override name = 'SubjectLockedError';
  constructor(
    message: string,
    readonly activeRunId: string,
  ) {
    super(message);
  }
}

/**
 * DynamoDB refused a write as invalid (an item over 400 KB, a nesting too deep): retrying the
 * same write cannot help, so it is not a lost race and not retryable. The message says why.
 */
export class StoreValidationError extends StoreError {
  override name = 'StoreValidationError';
  readonly runId: string;
  constructor(message: string, runId: string, options?: ErrorOptions) {
    super(message, options);
    this.runId = runId;
  }
}

/** A run (or one commit's events) is over the size budget checked before each write. */
export class RunTooLargeError extends StoreValidationError {
  override name = 'RunTooLargeError';
  readonly bytes: number;
  readonly limit: number;
  readonly what: string;
  constructor(what: string, bytes: number, limit: number, runId: string) {
    super(`${what} of run ${runId} is ${bytes} bytes, over the budget of ${limit} bytes`, runId);
    this.what = what;
    this.bytes = bytes;
    this.limit = limit;
  }
}
