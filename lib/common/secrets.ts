import { ConfigurationError } from './errors.ts';
/**
 * Secrets, read the same way everywhere:
 * - on AWS, `<NAME>_SECRET_ARN` names a Secrets Manager secret; it is fetched with Powertools
 *   Parameters `getSecret` and cached for 5 minutes, so rotation is picked up without a redeploy;
 * - locally and in tests, the plain `<NAME>` environment variable holds the value.
 * The Powertools module (and with it the Secrets Manager client) is imported only when a secret is
 * actually fetched from AWS, so handlers that never need one do not pay for it at cold start.
 */
import { logger } from './observability.ts';

export type SecretName =
  | 'DISCORD_BOT_TOKEN'
  | 'GITHUB_WEBHOOK_SECRET'
  | 'GITHUB_CREDENTIALS'
  /** HMAC key(s) of the console's signed Discord links (lib/console/access.ts). */
  | 'CONSOLE_LINK_KEY';

/** How long a fetched secret is reused before Secrets Manager is asked again. */
export const SECRET_MAX_AGE_SECONDS = 300;

/** Plain variables accepted as a local stand-in, in order (a GitHub token is a valid GITHUB_CREDENTIALS value). */
const LOCAL_FALLBACKS: Record<SecretName, readonly string[]> = {
  DISCORD_BOT_TOKEN: ['DISCORD_BOT_TOKEN'],
  GITHUB_WEBHOOK_SECRET: ['GITHUB_WEBHOOK_SECRET'],
  GITHUB_CREDENTIALS: ['GITHUB_CREDENTIALS', 'GITHUB_TOKEN'],
  CONSOLE_LINK_KEY: ['CONSOLE_LINK_KEY'],
};

export interface SecretReadOptions {
  /** Skip the cache and ask Secrets Manager now (after a 401: the value was likely rotated). */
  forceFetch?: boolean;
}

/**
 * The stack creates every secret with a generated placeholder (32 letters and digits, see
 * infra/switchyard-stack.ts) until operators store the real value. Neither a Discord bot token
 * (three dot-separated parts) nor a GitHub token (`ghp_…`, `github_pat_…`, `ghs_…`) nor App JSON
 * has that shape, so for these two a placeholder means "not configured yet": dry-run, not a
 * stream of 401s. (The webhook secret and link key fail closed on their own: nobody knows the
 * placeholder, so nothing verifies against it.)
 */
const PLACEHOLDER_CHECKED: ReadonlySet<string> = new Set(['DISCORD_BOT_TOKEN', 'GITHUB_CREDENTIALS']);
const PLACEHOLDER = /^[A-Za-z0-9]{32}$/;
const warnedPlaceholder = new Set<string>();

export function isPlaceholderSecret(value: string): boolean {
  return PLACEHOLDER.test(value.trim());
}

export async function getSecretValue(
  name: SecretName,
  env: NodeJS.ProcessEnv = process.env,
  opts: SecretReadOptions = {},
): Promise<string | undefined> {
  const value = await readSecret(name, LOCAL_FALLBACKS[name], env, opts);
  const arn = env[`${name}_SECRET_ARN`];
  if (value !== undefined && arn && PLACEHOLDER_CHECKED.has(name)) {
    if (isPlaceholderSecret(value)) {
      // Once per process and secret: the value is re-read every few minutes and must not flood the logs.
      if (!warnedPlaceholder.has(arn)) {
        warnedPlaceholder.add(arn);
        logger.warn(`${name} still holds the placeholder the stack created: running as a dry-run`, {
          secret: name,
          fix: 'store the real value with put-secret-value (docs/deploy.md)',
        });
      }
      return undefined;
    }
    warnedPlaceholder.delete(arn);
  }
  return value;
}

/**
 * A secret that config names (an HTTP executor's `secretEnv`), read like the built-in ones: from
 * Secrets Manager when `<NAME>_SECRET_ARN` is set (cached for SECRET_MAX_AGE_SECONDS), else from
 * the variable `<NAME>`.
 */
export async function getNamedSecret(
  name: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | undefined> {
  return readSecret(name, [name], env);
}

async function readSecret(
  name: string,
  fallbacks: readonly string[],
  env: NodeJS.ProcessEnv,
  opts: SecretReadOptions = {},
): Promise<string | undefined> {
  const arn = env[`${name}_SECRET_ARN`];
  if (arn) {
    const { getSecret } = await import('@aws-lambda-powertools/parameters/secrets');
    const value = await getSecret(arn, {
      maxAge: SECRET_MAX_AGE_SECONDS,
      ...(opts.forceFetch ? { forceFetch: true } : {}),
    });
    if (value === undefined) return undefined;
    const text = typeof value === 'string' ? value : new TextDecoder().decode(value);
    return text === '' ? undefined : text;
  }
  for (const key of fallbacks) {
    const value = env[key];
    if (value !== undefined && value !== '') return value;
  }
  return undefined;
}

/**
 * GITHUB_WEBHOOK_SECRET may hold several secrets so one can be rotated without dropping
 * deliveries: a JSON array (`["new","old"]`) or a comma-separated list (`new,old`). The first is
 * the current one; verification accepts any.
 */
export function parseWebhookSecrets(value: string | undefined): string[] {
  if (value === undefined) return [];
  const trimmed = value.trim();
  if (trimmed.startsWith('[')) {
    const parsed: unknown = JSON.parse(trimmed);
    if (!Array.isArray(parsed) || !parsed.every((s) => typeof s === 'string')) {
      throw new ConfigurationError('GITHUB_WEBHOOK_SECRET: a JSON value must be an array of strings');
    }
    return parsed.map((s: string) => s.trim()).filter((s) => s !== '');
  }
  return trimmed
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

export type GitHubCredentials =
  | { kind: 'token'; token: string }
  | { kind: 'app'; appId: string; privateKey: string; installationId?: string };

/**
 * GITHUB_CREDENTIALS is either a token (PAT or fine-grained) as plain text, or a GitHub App as
 * JSON: `{"token":"..."}` or `{"appId":"123","privateKey":"-----BEGIN ...","installationId":"456"}`
 * (installationId optional: it can be looked up per repository).
 */
export function parseGitHubCredentials(value: string | undefined): GitHubCredentials | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (!trimmed.startsWith('{')) return { kind: 'token', token: trimmed };
  const parsed = JSON.parse(trimmed) as Record<string, unknown>;
  if (typeof parsed.token === 'string' && parsed.token !== '') return { kind: 'token', token: parsed.token };
  const appId = parsed.appId ?? parsed.app_id;
  const privateKey = parsed.privateKey ?? parsed.private_key;
  const installationId = parsed.installationId ?? parsed.installation_id;
  if ((typeof appId !== 'string' && typeof appId !== 'number') || typeof privateKey !== 'string') {
    throw new ConfigurationError('GITHUB_CREDENTIALS: JSON must hold "token", or "appId" and "privateKey"');
  }
  return {
    kind: 'app',
    appId: String(appId),
    // Keys pasted through a shell often arrive with literal \n; PEM needs real newlines.
    privateKey: privateKey.replace(/\\n/g, '\n'),
    ...(installationId !== undefined ? { installationId: String(installationId) } : {}),
  };
}
