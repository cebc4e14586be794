/**
 * The one error root. Every error Switchyard throws extends `SwitchyardError`, takes an options
 * object (`{ runId, node, cause, … }`), and states in its type whether trying again can help
 * (Temporal's ApplicationFailure habit): the engine, the reporters and the ingress decide from
 * `isRetryable(err)`, never from a message or a status code read off an unknown object.
 */

/** Where an error happened and what caused it; subclasses add their own fields. */
export interface ErrorContext {
  runId?: string | undefined;
  node?: string | undefined;
  cause?: unknown;
}

export class SwitchyardError extends Error {
  override name = 'SwitchyardError';
  /** Whether the same call may succeed later (a throttle, a 5xx, a lost race). Subclasses set it. */
  readonly retryable: boolean = true;
  readonly runId: string | undefined;
  readonly node: string | undefined;
  constructor(message: string, options: ErrorContext = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.runId = options.runId;
    this.node = options.node;
  }
}

/** A failure that retrying cannot fix (bad input, permission refused, a 4xx from an API). */
export class NonRetryableError extends SwitchyardError {
  override name = 'NonRetryableError';
  override readonly retryable: boolean = false;
}

/**
 * Whether trying again may help. Our own errors say so in their type; an error from a node
 * handler outside lib/ may say so with a boolean `retryable` (the engine's documented contract for
 * workflow authors). Anything else (a bug, a network error the SDK gave up on) counts as
 * transient: the node's retry budget bounds it, and giving up on the first stray error would fail
 * runs that a retry finishes.
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof SwitchyardError) return err.retryable;
  const flag = err instanceof Error ? (err as { retryable?: unknown }).retryable : undefined;
  return typeof flag === 'boolean' ? flag : true;
}

/**
 * A deployment or configuration mistake: a missing variable, a secret of the wrong shape, a
 * workflow graph or node timeout that does not fit. Trying again cannot fix it; people must.
 */
export class ConfigurationError extends NonRetryableError {
  override name = 'ConfigurationError';
}

/** Too many writers on one record at once: another attempt, a little later, will get through. */
export class ContentionError extends SwitchyardError {
  override name = 'ContentionError';
  override readonly retryable = true;
}

/**
 * Something that cannot happen did (a broken invariant, a message that is not ours). Retryable
 * like any unexpected error: a fresh read in the next attempt often settles it, and the node's
 * retry budget bounds it.
 */
export class InternalError extends SwitchyardError {
  override name = 'InternalError';
}
