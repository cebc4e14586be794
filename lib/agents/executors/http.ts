import { logger } from '../../common/observability.ts';
import { getNamedSecret } from '../../common/secrets.ts';
import type { RunStore } from '../../engine/ports.ts';
import { issueCallbackToken, signBody } from '../callbacks.ts';
import { DispatchError, NoExecutorError } from '../errors.ts';
import { executorUrlProblem } from './endpoint.ts';
import type { DispatchOutcome, DispatchRequest, Executor } from './types.ts';
import { payloadFor } from './types.ts';

/**
 * The HTTP executor: POSTs the task to the agent's URL with a callback URL carrying a one-time
 * token, and (unless the executor names a configured secret in `secretEnv`) a per-task signing
 * secret. The agent answers with `POST /callbacks/{token}`, signed `X-Switchyard-Signature:
 * sha256=<hex>` over the raw body; see callbacks.ts. The token expires with the run's gate.
 *
 * With a configured secret, the outgoing request is signed the same way, so the agent can check
 * that the task came from us.
 */

export interface HttpExecutorDeps {
  store: RunStore;
  /** Base URL of our API for callback URLs (else SWITCHYARD_PUBLIC_URL); a function when known only later. */
  publicUrl?: string | (() => string | undefined);
  env?: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/** The URL without query or credentials, for events and logs. */
function shown(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}

export class HttpExecutor implements Executor {
  readonly type = 'http' as const;

  constructor(private readonly deps: HttpExecutorDeps) {}

  async dispatch(req: DispatchRequest): Promise<DispatchOutcome> {
    const ex = req.agent.executor;
    if (ex.type !== 'http')
      throw new NoExecutorError(`agent ${req.agent.name} has no HTTP executor`, { runId: req.run.id });
    const env = this.deps.env ?? process.env;
    const fromDeps = this.deps.publicUrl;
    const base = (typeof fromDeps === 'function' ? fromDeps() : fromDeps) ?? env.SWITCHYARD_PUBLIC_URL;
    if (!base)
      throw new NoExecutorError('set SWITCHYARD_PUBLIC_URL: HTTP agents need a callback URL', {
        runId: req.run.id,
      });
    // Config refuses such URLs already; this keeps a secret off plain HTTP however the agent was built.
    const problem = executorUrlProblem(ex.url);
    if (problem)
      throw new NoExecutorError(`agent ${req.agent.name}: ${shown(ex.url)} ${problem}`, {
        runId: req.run.id,
      });
    const configured = ex.secretEnv ? await getNamedSecret(ex.secretEnv, env) : undefined;
    if (ex.secretEnv && !configured)
      throw new NoExecutorError(`the HTTP executor's secret ${ex.secretEnv} is not set`, {
        runId: req.run.id,
      });

    const payload = payloadFor(req, env);
    const { token, secret } = await issueCallbackToken(this.deps.store, {
      runId: req.run.id,
      item: req.item,
      correlation: req.correlation,
      agent: req.agent.name,
      expiresAt: req.expiresAt,
      ...(ex.secretEnv ? { secretEnv: ex.secretEnv } : {}),
      perTaskSecret: !configured,
    });
    const body = JSON.stringify({
      ...payload,
      callback: {
        url: `${base.replace(/\/+$/, '')}/callbacks/${token}`,
        expiresAt: req.expiresAt,
        signatureHeader: 'X-Switchyard-Signature',
        // Minted for this task only; absent when the executor uses a configured secret.
        ...(secret ? { secret } : {}),
      },
    });
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'switchyard',
      'x-switchyard-run': req.run.id,
      'x-switchyard-item': req.item,
    };
    if (configured) headers['x-switchyard-signature'] = signBody(configured, body);

    let res: Response;
    try {
      res = await (this.deps.fetch ?? fetch)(ex.url, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(ex.timeoutMs ?? DEFAULT_TIMEOUT_MS),
      });
    } catch (cause) {
      throw new DispatchError(`POST ${shown(ex.url)} failed: ${(cause as Error).message}`, {
        status: 0,
        cause,
        runId: req.run.id,
      });
    }
    await res.body?.cancel().catch(() => {});
    req.emit({
      type: 'agent.http.request',
      node: req.node,
      by: req.agent.name,
      detail: { agent: req.agent.name, method: 'POST', url: shown(ex.url), status: res.status },
    });
    if (!res.ok) {
      logger.warn('http agent refused the task', { runId: req.run.id, status: res.status });
      throw new DispatchError(`POST ${shown(ex.url)} answered ${res.status}`, {
        status: res.status,
        runId: req.run.id,
      });
    }
    return { executor: 'http', dryRun: false, details: { url: shown(ex.url), status: res.status } };
  }
}
