import { createRemoteJWKSet, type JWTPayload, errors as joseErrors, jwtVerify } from 'jose';
import { z } from 'zod';
import { logger } from '../common/observability.ts';
import type { RunStore } from '../engine/ports.ts';
import { readPostBody } from '../http/body.ts';
import { type HttpRequest, type HttpResponse, json } from '../http/request.ts';
import type { ResumeFn } from './callbacks.ts';
import { AgentWorkQueue, type DispatchRecord } from './work-queue.ts';
import { runIdFromTitle } from './workflow-run.ts';

/**
 * `POST /callbacks/actions`: an agent workflow's result, authenticated by the job's GitHub OIDC
 * token (`Authorization: Bearer <jwt>`), with no shared secret.
 *
 * Checks, in a fixed order, each before anything is spent:
 * 1. method (405), content type (400), size (413);
 * 2. a bearer token is present (401);
 * 3. the body, fully: nesting depth, JSON, shape (400) — cheap, and no key is fetched for garbage;
 * 4. the token: RS256 only, against the issuer's JWKS (`<GITHUB_OIDC_ISSUER>/.well-known/jwks`,
 *    cached per issuer), issuer, audience (`GITHUB_OIDC_AUDIENCE`, default `switchyard`),
 *    `exp`, `nbf`, `iat` (401);
 * 5. the claims against the work item: `repository` equals the repository it was dispatched to,
 *    and `run_id` the workflow run recorded at dispatch (`return_run_details`) or linked from its
 *    `workflow_run` delivery. With no run recorded, `workflow_ref` must be the configured agent
 *    workflow (dispatched) and the run's `display_title` (its run-name, read from the Actions
 *    API) must name this run and item (401);
 * 6. state: a result already applied for the item is a replay (409, nothing changed); a run that
 *    no longer waits for the item answers 410; otherwise the run is resumed (200).
 *
 * A result is claimed once per item (a conditional write) before it is delivered; if delivering
 * fails on our side the claim is given back, so the workflow's retry can succeed. The
 * `workflow_run` completion stays the fallback: after a callback it finds the item finished and
 * does nothing (results.ts `duplicate`).
 */

export const DEFAULT_OIDC_ISSUER = 'https://token.actions.githubusercontent.com';
export const DEFAULT_OIDC_AUDIENCE = 'switchyard';
/** A result is small; anything bigger is not one. */
export const MAX_ACTIONS_CALLBACK_BYTES = 64 * 1024;
const MAX_DEPTH = 6;

const RUN = /^r[0-9a-z]{8,40}$/;
const ITEM = /^r[0-9a-z]{8,40}\.[A-Za-z0-9_-]{1,64}\.[0-9]{1,6}$/;

export const actionsResultSchema = z.strictObject({
  run: z.string().regex(RUN, 'a Switchyard run id'),
  item: z.string().regex(ITEM, 'a work item id (<run>.<task>.<try>)'),
  conclusion: z.enum(['success', 'failure', 'cancelled']),
  summary: z.string().max(4_000).optional(),
  pullRequest: z
    .strictObject({
      number: z.number().int().positive().max(1_000_000_000),
      url: z
        .string()
        .max(500)
        .regex(/^https:\/\/[^\s/?#]+\/[^\s?#]+\/pull\/[0-9]+$/, 'an https pull request URL'),
    })
    .optional(),
  usage: z
    .strictObject({
      inputTokens: z.number().int().nonnegative().max(1e12),
      outputTokens: z.number().int().nonnegative().max(1e12),
      costUsd: z.number().nonnegative().max(1e6),
    })
    .partial()
    .optional(),
});

export type ActionsResult = z.infer<typeof actionsResultSchema>;

/** What the fallback path needs to know about a workflow run (from the Actions API). */
export interface WorkflowRunFacts {
  displayTitle?: string;
  path?: string;
  event?: string;
}

export interface ActionsCallbackDeps {
  store: RunStore;
  resume: ResumeFn;
  /** Reads a workflow run (`GET /repos/{o}/{r}/actions/runs/{id}`); only the no-run-id fallback needs it. */
  workflowRun?: (repo: string, id: number) => Promise<WorkflowRunFacts | undefined>;
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
  maxBodyBytes?: number;
}

/** The deepest nesting of arrays and objects in JSON text (strings skipped), without parsing it. */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) max = Math.max(max, ++depth);
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

/** The body, validated fully; a message naming the first problem otherwise. */
export function parseActionsResult(
  text: string,
): { ok: true; value: ActionsResult } | { ok: false; error: string } {
  if (jsonDepth(text) > MAX_DEPTH) return { ok: false, error: `nested deeper than ${MAX_DEPTH} levels` };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, error: 'malformed JSON' };
  }
  const parsed = actionsResultSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : 'body';
    return { ok: false, error: `${where}: ${issue?.message ?? 'invalid'}` };
  }
  if (!parsed.data.item.startsWith(`${parsed.data.run}.`))
    return { ok: false, error: 'item: does not belong to run' };
  return { ok: true, value: parsed.data };
}

// One key set per issuer, per container: jose caches the keys, refetches on an unknown `kid`
// (at most once per cooldown), and shares one fetch between concurrent callers.
const keySets = new Map<string, ReturnType<typeof createRemoteJWKSet>>();
function keySetFor(issuer: string): ReturnType<typeof createRemoteJWKSet> {
  let set = keySets.get(issuer);
  if (!set) {
    set = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks`), {
      timeoutDuration: 5_000,
      cooldownDuration: 30_000,
      cacheMaxAge: 10 * 60_000,
    });
    keySets.set(issuer, set);
  }
  return set;
}

export function oidcSettings(env: NodeJS.ProcessEnv = process.env): { issuer: string; audience: string } {
  const issuer = (env.GITHUB_OIDC_ISSUER || DEFAULT_OIDC_ISSUER).replace(/\/+$/, '');
  return { issuer, audience: env.GITHUB_OIDC_AUDIENCE || DEFAULT_OIDC_AUDIENCE };
}

/** Failures of the key set itself (the issuer is unreachable or broken): our side, not the caller's. */
function isIssuerOutage(err: unknown): boolean {
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid) return true;
  if (err instanceof joseErrors.JOSEError) return /Expected 200 OK/.test(err.message);
  // fetch itself failed (DNS, connection refused): a TypeError from undici.
  return err instanceof TypeError && /fetch failed/i.test(err.message);
}

/** GitHub's OIDC claims we rely on (strings in GitHub's tokens; `run_id` is a decimal string). */
interface ActionsClaims extends JWTPayload {
  repository?: unknown;
  run_id?: unknown;
  workflow_ref?: unknown;
  event_name?: unknown;
}

const claimStr = (v: unknown) => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined);

export async function verifyActionsToken(
  token: string,
  opts: { issuer: string; audience: string; now: Date },
): Promise<ActionsClaims> {
  const { payload } = await jwtVerify<ActionsClaims>(token, keySetFor(opts.issuer), {
    issuer: opts.issuer,
    audience: opts.audience,
    algorithms: ['RS256'],
    requiredClaims: ['exp', 'iat', 'repository', 'run_id'],
    // GitHub's tokens live minutes; an hour leaves room for a slow job, and iat in the future is refused.
    maxTokenAge: '1h',
    clockTolerance: 60,
    currentDate: opts.now,
  });
  return payload;
}

/** Whether the token's claims bind it to the dispatched item (a reason when not). */
async function bindClaims(
  deps: ActionsCallbackDeps,
  rec: DispatchRecord,
  result: ActionsResult,
  claims: ActionsClaims,
): Promise<{ ok: true; runIdClaim: number } | { ok: false; reason: string }> {
  const repository = claimStr(claims.repository);
  const runIdClaim = Number(claimStr(claims.run_id));
  if (!repository || !rec.repo || repository.toLowerCase() !== rec.repo.toLowerCase())
    return { ok: false, reason: 'the token is for another repository' };
  if (!Number.isSafeInteger(runIdClaim) || runIdClaim <= 0) return { ok: false, reason: 'no run_id claim' };
  // A workflow run of an earlier item of the run (its record moved on) is never this item's.
  if (rec.earlier?.includes(runIdClaim))
    return { ok: false, reason: 'the token is for another workflow run' };
  if (rec.workflowRunId !== undefined) {
    return rec.workflowRunId === runIdClaim
      ? { ok: true, runIdClaim }
      : { ok: false, reason: 'the token is for another workflow run' };
  }
  // No run recorded (GitHub did not return it, and no workflow_run delivery linked it yet): the
  // token must come from the configured workflow, dispatched, and the run's name must be ours.
  const ref = claimStr(claims.workflow_ref) ?? '';
  const expected = `${rec.repo}/.github/workflows/${rec.workflow ?? ''}@`.toLowerCase();
  if (!rec.workflow || !ref.toLowerCase().startsWith(expected))
    return { ok: false, reason: 'the token is from another workflow' };
  if (claimStr(claims.event_name) !== 'workflow_dispatch')
    return { ok: false, reason: 'the token is not from a dispatched run' };
  const facts = deps.workflowRun ? await deps.workflowRun(rec.repo, runIdClaim) : undefined;
  const ids = runIdFromTitle(facts?.displayTitle);
  if (!ids || ids.runId !== result.run || (ids.item !== undefined && ids.item !== result.item))
    return { ok: false, reason: 'the workflow run is not named for this run (run-name)' };
  return { ok: true, runIdClaim };
}

export async function handleActionsCallback(
  deps: ActionsCallbackDeps,
  req: HttpRequest,
): Promise<HttpResponse> {
  const now = deps.now ?? (() => new Date());
  const env = deps.env ?? process.env;
  // 1. method, content type, size
  const read = readPostBody(req, {
    maxBytes: deps.maxBodyBytes ?? MAX_ACTIONS_CALLBACK_BYTES,
    mediaTypes: ['application/json'],
  });
  if (!read.ok) return json(read.status, { error: read.error }, read.headers);
  const { bytes } = read;
  // 2. a bearer token
  const auth = req.headers.authorization ?? '';
  const bearer = /^Bearer\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*)\s*$/.exec(auth)?.[1];
  if (!bearer || bearer.length > 8_192)
    return json(401, { error: 'missing or malformed bearer token' }, { 'www-authenticate': 'Bearer' });
  // 3. the body, fully
  const parsed = parseActionsResult(bytes.toString('utf8'));
  if (!parsed.ok) return json(400, { error: parsed.error });
  const result = parsed.value;
  // 4. the token
  let claims: ActionsClaims;
  try {
    claims = await verifyActionsToken(bearer, { ...oidcSettings(env), now: now() });
  } catch (err) {
    if (isIssuerOutage(err)) throw err; // the issuer is down: a 5xx, the workflow retries
    logger.warn('actions callback refused', { runId: result.run, reason: (err as Error).name });
    return json(401, { error: 'invalid token' }, { 'www-authenticate': 'Bearer error="invalid_token"' });
  }
  // 5. the run's dispatch record: what was sent, and to which workflow run
  const queue = new AgentWorkQueue(deps.store, { now });
  const dispatch = await queue.getDispatch(result.run);
  const rec = dispatch?.value;
  if (rec?.executor !== 'github-actions')
    return json(404, { error: 'nothing was dispatched to GitHub Actions for this run', run: result.run });
  if (rec.item !== result.item) {
    // Checked against the item's own repository first, so a stranger learns nothing.
    if (claimStr(claims.repository)?.toLowerCase() !== rec.repo?.toLowerCase())
      return json(401, { error: 'the token is not for this work item' });
    return json(410, { error: 'the run no longer waits for this item', run: result.run });
  }
  // 6. the claims bind the token to the item
  const bound = await bindClaims(deps, rec, result, claims);
  if (!bound.ok) {
    logger.warn('actions callback refused', { runId: result.run, item: result.item, reason: bound.reason });
    return json(401, { error: bound.reason });
  }
  if (result.pullRequest && rec.repo) {
    const path = new URL(result.pullRequest.url).pathname;
    if (path.toLowerCase() !== `/${rec.repo}/pull/${result.pullRequest.number}`.toLowerCase())
      return json(400, { error: 'pullRequest.url: not this repository’s pull request' });
  }
  // 7. a replay: the run took an answer for this item already (this one, or the workflow run's
  // completion), which the delivery finds in the run's own data and answers `duplicate` (409), or
  // the record says so (`finished`: a cancel, or an answer that ended the run without being kept).
  // Two callbacks at once both go on to deliver; the run's conditional commit takes one (results.ts).
  if (rec.state === 'finished')
    return json(409, { error: 'a result was already applied for this item', run: result.run });
  // The record as read, for the delivery (one read fewer), unless the fallback below rewrites it.
  let known = dispatch;
  if (rec.workflowRunId === undefined) {
    known = undefined;
    // Bound by the fallback: record the run, so a cancel and the completion find it.
    const owner = await queue.bindWorkflowRun(bound.runIdClaim, result.run, result.item);
    if (owner.item === result.item)
      await queue.updateDispatch(result.run, (d) =>
        d.item === result.item && d.workflowRunId === undefined
          ? { ...d, workflowRunId: bound.runIdClaim }
          : undefined,
      );
  }
  const ok = result.conclusion === 'success';
  const outcome = await deps.resume(
    {
      runId: result.run,
      item: result.item,
      correlation: rec.correlation,
      ok,
      by: rec.agent,
      payload: {
        executor: 'github-actions',
        via: 'oidc',
        conclusion: result.conclusion,
        workflowRunId: bound.runIdClaim,
        ...(result.summary ? { summary: result.summary } : {}),
        ...(result.pullRequest ? { url: result.pullRequest.url, pullRequest: result.pullRequest } : {}),
        ...(result.usage ? { usage: result.usage } : {}),
      },
    },
    known,
  );
  logger.info('actions callback accepted', { runId: result.run, item: result.item, ok, outcome });
  if (outcome === 'duplicate')
    return json(409, { error: 'a result was already applied for this item', run: result.run });
  if (outcome === 'stale')
    return json(410, { error: 'the run no longer waits for this result', run: result.run });
  return json(200, { status: 'accepted', run: result.run, item: result.item, outcome });
}
