/**
 * Discord module errors. Retry intent lives in the type: the engine retries a step that threw a
 * `retryable` error and fails it on a non-retryable one, without reading messages.
 */
export class DiscordError extends Error {
  override name = 'DiscordError';
  readonly retryable: boolean = false;
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
    details: { status: number; code?: number | undefined; method: string; path: string },
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.status = details.status;
    this.code = details.code;
    this.method = details.method;
    this.path = details.path;
    this.retryable = details.status === 0 || details.status >= 500;
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
  constructor(message: string, details: { method: string; path: string; retryAfterMs: number }) {
    super(message, { status: 429, method: details.method, path: details.path });
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** A command option that cannot be understood (bad repo name, bad issue reference). */
export class DiscordInputError extends DiscordError {
  override name = 'DiscordInputError';
}
