import { type ErrorContext, SwitchyardError } from '../common/errors.ts';

/**
 * Discord module errors. Retry intent lives in the type: the engine retries a step that threw a
 * `retryable` error and fails it on a non-retryable one, without reading messages.
 */
export class DiscordError extends SwitchyardError {
  override name = 'DiscordError';
  override readonly retryable: boolean = false;
}

/** A Discord public key that is not 32 bytes of hex: a deploy mistake, so it fails at load. */
export class DiscordKeyError extends DiscordError {
  override name = 'DiscordKeyError';
}

/** Discord REST answered with an error status. 5xx and network failures are worth retrying. */
export class DiscordApiError extends DiscordError {
  override name = 'DiscordApiError';
  override readonly retryable: boolean;
  readonly status: number;
  /** Discord's JSON error code (e.g. 10015 Unknown Webhook), when the body had one. */
  readonly code: number | undefined;
  readonly method: string;
  /** The request path with any interaction token replaced, so the error is safe to log. */
  readonly path: string;
  constructor(
    message: string,
    options: ErrorContext & { status: number; code?: number | undefined; method: string; path: string },
  ) {
    super(message, options);
    this.status = options.status;
    this.code = options.code;
    this.method = options.method;
    this.path = options.path;
    this.retryable = options.status === 0 || options.status >= 500;
  }
}

/** 404 (or 401 from a webhook): the interaction token expired early or the message is gone. */
export class DiscordNotFoundError extends DiscordApiError {
  override name = 'DiscordNotFoundError';
}

/** Rate limited for longer than we are willing to wait inside one step. */
export class DiscordRateLimitError extends DiscordApiError {
  override name = 'DiscordRateLimitError';
  override readonly retryable = true;
  readonly retryAfterMs: number;
  constructor(
    message: string,
    options: ErrorContext & { method: string; path: string; retryAfterMs: number },
  ) {
    super(message, { ...options, status: 429 });
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** A command option that cannot be understood (bad repo name, bad issue reference). */
export class DiscordInputError extends DiscordError {
  override name = 'DiscordInputError';
}
