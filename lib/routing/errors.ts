import { type ErrorContext, NonRetryableError, SwitchyardError } from '../common/errors.ts';

/** Routing module errors. Retry intent lives in the type, as everywhere in Switchyard. */
export class RoutingError extends SwitchyardError {
  override name = 'RoutingError';
}

export interface ConfigIssue {
  file: string;
  /** 1-based; 0 when the issue has no place in a file (e.g. the file is missing). */
  line: number;
  column: number;
  path: Array<string | number>;
  message: string;
}

/** A config file that does not parse or validate. Its message lists every issue as `file:line: reason`. */
export class ConfigError extends RoutingError {
  override name = 'ConfigError';
  override readonly retryable = false;
  readonly file: string;
  readonly issues: ConfigIssue[];
  constructor(options: ErrorContext & { file: string; issues: ConfigIssue[] }) {
    const { file, issues } = options;
    super(issues.map(formatIssue).join('\n') || `${file}: invalid config`, options);
    this.file = file;
    this.issues = issues;
  }
}

export function formatIssue(i: ConfigIssue): string {
  return `${i.file}:${i.line}: ${i.path.length > 0 ? `${i.path.join('.')}: ` : ''}${i.message}`;
}

/** A CEL condition that does not parse, or fails at evaluation (a type error, a missing key). */
export class ExpressionError extends RoutingError {
  override name = 'ExpressionError';
  override readonly retryable = false;
}

/**
 * A run refused by routing: a guard (CI red on the default branch) or a policy (forbid/require).
 * It ends the run as `failed` with the verdicts as its reason; never retried (a new trigger
 * starts a fresh run once the cause is gone).
 */
export class RunBlockedError extends NonRetryableError {
  override name = 'RunBlockedError';
  readonly verdicts: string[];
  constructor(message: string, options: ErrorContext & { verdicts: string[] }) {
    super(message, options);
    this.verdicts = options.verdicts;
  }
}
