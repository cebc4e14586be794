import { type ErrorContext, SwitchyardError } from '../common/errors.ts';

/**
 * GitHub module errors. They extend the engine's base error so a node that lets one escape is
 * retried or failed from its type (`retryable`), never from its message.
 */
export class GitHubError extends SwitchyardError {
  override name = 'GitHubError';
}

/** An agent tried an operation its registry entry does not grant. Recorded as a run event; never retried. */
export class PermissionDeniedError extends GitHubError {
  override name = 'PermissionDeniedError';
  override readonly retryable = false;
  readonly agent: string;
  readonly permission: string;
  readonly method: string;
  readonly path: string;
  constructor(options: ErrorContext & { agent: string; permission: string; method: string; path: string }) {
    super(
      `agent ${options.agent} lacks permission ${options.permission} for ${options.method} ${options.path}`,
      options,
    );
    this.agent = options.agent;
    this.permission = options.permission;
    this.method = options.method;
    this.path = options.path;
  }
}

/** GitHub answered with an error status after the retry plugin gave up. 5xx, 429 and network failures are worth retrying. */
export class GitHubApiError extends GitHubError {
  override name = 'GitHubApiError';
  override readonly retryable: boolean;
  readonly status: number;
  readonly method: string;
  readonly path: string;
  constructor(message: string, options: ErrorContext & { status: number; method: string; path: string }) {
    super(message, options);
    this.status = options.status;
    this.method = options.method;
    this.path = options.path;
    this.retryable = options.status === 0 || options.status === 429 || options.status >= 500;
  }
}

/** The GitHub App is not installed on the repository (or the installation cannot be found). */
export class InstallationNotFoundError extends GitHubError {
  override name = 'InstallationNotFoundError';
  override readonly retryable = false;
}

/** Credentials are present but unusable (a bad key, an app id without a key): a deploy mistake. */
export class GitHubCredentialsError extends GitHubError {
  override name = 'GitHubCredentialsError';
  override readonly retryable = false;
}
