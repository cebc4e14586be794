import { SwitchyardError } from '../engine/errors.ts';

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
  constructor(
    details: { agent: string; permission: string; method: string; path: string },
    options: ErrorOptions & { runId?: string; node?: string } = {},
  ) {
    super(
      `agent ${details.agent} lacks permission ${details.permission} for ${details.method} ${details.path}`,
      options,
    );
    this.agent = details.agent;
    this.permission = details.permission;
    this.method = details.method;
    this.path = details.path;
  }
}

/** GitHub answered with an error status after the retry plugin gave up. 5xx, 429 and network failures are worth retrying. */
export class GitHubApiError extends GitHubError {
  override name = 'GitHubApiError';
  override readonly retryable: boolean;
  readonly status: number;
  readonly method: string;
  readonly path: string;
  constructor(
    message: string,
    details: { status: number; method: string; path: string },
    options: ErrorOptions & { runId?: string; node?: string } = {},
  ) {
    super(message, options);
    this.status = details.status;
    this.method = details.method;
    this.path = details.path;
    this.retryable = details.status === 0 || details.status === 429 || details.status >= 500;
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
