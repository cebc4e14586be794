import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ConfigurationError } from '../common/errors.ts';
import { logger } from '../common/observability.ts';
import { getNamedSecret } from '../common/secrets.ts';
import type { RunStore } from '../engine/ports.ts';
import { readPostBody } from '../http/body.ts';
import { type HttpRequest, type HttpResponse, json } from '../http/request.ts';
import { checkResultBody, RESULT_LIMITS } from './payload-limits.ts';
import type { AgentResult, DispatchRecord } from './work-queue.ts';

/**
 * Signed callbacks from HTTP agents: `POST /callbacks/{token}`.
 *
 * The HTTP executor mints, per task, a one-time token (in the callback URL) and, unless the
 * executor names a configured secret (`secretEnv`), a per-task signing secret sent with the task.
 * The agent answers once, signing the raw body: `X-Switchyard-Signature: sha256=<hex>` (HMAC-SHA256).
 *
 * The token is stored only as its SHA-256 (KV group `callback`), so a table read does not yield a
 * usable URL. Written once here over raw body and headers; the Lambda handler
 * (lib/app/callbacks.ts) and the local stack only provide the I/O, through lib/http.
 *
 * Checks, in the same fixed order as the other endpoints: method (405), content type (400),
 * size (413), token (401 malformed, 404 unknown), signature (401), JSON (400), the answer's
 * shape, size and nesting (400, lib/agents/payload-limits.ts, before the token is spent); then state:
 * a used token 409, an expired one 410; then the run is resumed (200), or 410 when the run no
 * longer waits for this result (it timed out or was cancelled).
 */

export const CALLBACK_GROUP = 'callback';
export const SIGNATURE_HEADER = 'x-switchyard-signature';
export const MAX_CALLBACK_BYTES = 1024 * 1024;
/** Kept after expiry so a late agent gets 410 (gone), not 404 (never existed). */
const KEEP_AFTER_EXPIRY_S = 7 * 86_400;
const TOKEN = /^[A-Za-z0-9_-]{32,128}$/;

export interface CallbackRecord {
  runId: string;
  item: string;
  correlation: string;
  agent: string;
  expiresAt: string;
  /** The per-task signing secret (when the executor has no configured one). */
  secret?: string;
  /** The environment variable holding the configured signing secret. */
  secretEnv?: string;
  usedAt?: string;
}

const tokenKey = (token: string) => createHash('sha256').update(token).digest('hex');

export function signBody(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** Constant-time check of `sha256=<hex>` against the body. */
export function verifySignature(secret: string, body: Buffer, signature: string | undefined): boolean {
  if (!signature || !/^sha256=[0-9a-f]{64}$/i.test(signature.trim())) return false;
  const expected = Buffer.from(signBody(secret, body), 'utf8');
  const given = Buffer.from(signature.trim().toLowerCase(), 'utf8');
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/** Mint a one-time callback token for a task; with no configured secret, a per-task secret too. */
export async function issueCallbackToken(
  store: RunStore,
  input: Omit<CallbackRecord, 'secret' | 'usedAt'> & { perTaskSecret: boolean },
): Promise<{ token: string; secret?: string }> {
  const token = randomBytes(32).toString('base64url');
  const secret = input.perTaskSecret ? randomBytes(32).toString('base64url') : undefined;
  const { perTaskSecret: _p, ...rest } = input;
  const record: CallbackRecord = { ...rest, ...(secret ? { secret } : {}) };
  const ttl = Math.floor(Date.parse(input.expiresAt) / 1000) + KEEP_AFTER_EXPIRY_S;
  await store.kvPut(CALLBACK_GROUP, tokenKey(token), record, { expectedVersion: 0, ttl });
  return { token, ...(secret ? { secret } : {}) };
}

/** What a callback resumes: the hub's result delivery (it parks a result that arrives mid-step). */
export type ResumeFn = (
  result: AgentResult,
  /** The run's dispatch record as the caller just read it (deliverResult then does not read it again). */
  known?: { value: DispatchRecord; version: number },
) => Promise<'resumed' | 'parked' | 'stale' | 'duplicate'>;

export interface CallbackDeps {
  store: RunStore;
  resume: ResumeFn;
  /** Where configured signing secrets are read (`secretEnv` names a variable here). */
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
  maxBodyBytes?: number;
}

const SUMMARY_MAX = RESULT_LIMITS.textChars;
const OUTPUT_MAX = RESULT_LIMITS.outputBytes;

/** The agent's JSON reply, reduced to what a run may keep (run data is written on every transition). */
export function resultPayload(body: Record<string, unknown>): {
  ok: boolean;
  payload: Record<string, unknown>;
} {
  const conclusion =
    typeof body.conclusion === 'string'
      ? body.conclusion
      : typeof body.status === 'string'
        ? body.status
        : body.ok === false
          ? 'failure'
          : 'success';
  const ok = typeof body.ok === 'boolean' ? body.ok : conclusion === 'success';
  const payload: Record<string, unknown> = { conclusion: ok ? 'success' : conclusion };
  if (typeof body.summary === 'string') payload.summary = body.summary.slice(0, SUMMARY_MAX);
  if (typeof body.url === 'string' && /^https?:\/\//.test(body.url)) payload.url = body.url.slice(0, 500);
  if (body.output !== undefined) {
    const text = JSON.stringify(body.output);
    payload.output = text.length <= OUTPUT_MAX ? body.output : `${text.slice(0, OUTPUT_MAX)}…(truncated)`;
  }
  // Requests to the hub: a consultation (by specialist type) or an escalation to a person.
  if (body.consult !== undefined && typeof body.consult === 'object' && body.consult !== null)
    payload.consult = body.consult;
  if (typeof payload.conclusion === 'string')
    payload.conclusion = payload.conclusion.slice(0, RESULT_LIMITS.conclusionChars);
  if (typeof body.escalate === 'string') payload.escalate = body.escalate.slice(0, SUMMARY_MAX);
  return { ok, payload };
}

export async function handleCallback(deps: CallbackDeps, req: HttpRequest): Promise<HttpResponse> {
  const now = deps.now ?? (() => new Date());
  // 1-3. method, content type, size
  const read = readPostBody(req, {
    maxBytes: deps.maxBodyBytes ?? MAX_CALLBACK_BYTES,
    mediaTypes: ['application/json'],
  });
  if (!read.ok) return json(read.status, { error: read.error }, read.headers);
  const { bytes } = read;
  // 4. token (the `{token}` path parameter; the path itself when no route named it)
  const token = req.params.token ?? /^\/callbacks\/([^/]+)$/.exec(req.path)?.[1];
  if (!token || !TOKEN.test(token)) return json(401, { error: 'missing or malformed callback token' });
  const key = tokenKey(token);
  const found = await deps.store.kvGet<CallbackRecord>(CALLBACK_GROUP, key);
  if (!found) return json(404, { error: 'unknown callback token' });
  const record = found.value;
  // 5. signature
  const secret =
    record.secret ??
    (record.secretEnv ? await getNamedSecret(record.secretEnv, deps.env ?? process.env) : undefined);
  if (!secret) {
    // Our misconfiguration (the executor's secret variable is not set here): fail loudly.
    throw new ConfigurationError(`callback secret ${record.secretEnv ?? '(per task)'} is not available`);
  }
  if (!verifySignature(secret, bytes, req.headers[SIGNATURE_HEADER])) {
    logger.warn('callback refused', { runId: record.runId, reason: 'signature' });
    return json(401, { error: 'invalid signature' });
  }
  // 6. parse
  let body: unknown;
  try {
    body = JSON.parse(bytes.toString('utf8'));
  } catch {
    return json(400, { error: 'malformed JSON' });
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return json(400, { error: 'the body must be a JSON object' });
  // 7. shape, size and depth, in full, before the token is spent: a bad answer leaves it usable.
  const check = checkResultBody(body as Record<string, unknown>);
  if (!check.ok) return json(400, { error: check.error });
  const { ok, payload } = resultPayload(body as Record<string, unknown>);
  // 8. state
  if (record.usedAt) return json(409, { error: 'callback token already used', run: record.runId });
  if (Date.parse(record.expiresAt) <= now().getTime())
    return json(410, { error: 'callback token expired', run: record.runId });
  // One use: a conditional write claims the token; of two concurrent deliveries one gets 409.
  const used: CallbackRecord = { ...record, usedAt: now().toISOString() };
  const ttl = Math.floor(Date.parse(record.expiresAt) / 1000) + KEEP_AFTER_EXPIRY_S;
  if (!(await deps.store.kvPut(CALLBACK_GROUP, key, used, { expectedVersion: found.version, ttl })))
    return json(409, { error: 'callback token already used', run: record.runId });

  let outcome: Awaited<ReturnType<ResumeFn>>;
  try {
    outcome = await deps.resume({
      runId: record.runId,
      item: record.item,
      correlation: record.correlation,
      ok,
      by: record.agent,
      payload: { ...payload, executor: 'http' },
    });
  } catch (err) {
    // Our failure (the store is down): give the token back, so the agent's retry can succeed.
    await deps.store.kvPut(CALLBACK_GROUP, key, record, { expectedVersion: found.version + 1, ttl });
    throw err;
  }
  logger.info('callback accepted', { runId: record.runId, item: record.item, ok, outcome });
  if (outcome === 'stale')
    return json(410, { error: 'the run no longer waits for this result', run: record.runId });
  return json(200, { status: 'accepted', run: record.runId, outcome });
}
