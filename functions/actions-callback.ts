import {
  type ActionsCallbackDeps,
  handleActionsCallback,
  type WorkflowRunFacts,
} from '../lib/agents/actions-callback.ts';
import { deliverResult, type HubEngine } from '../lib/agents/results.ts';
import { AgentWorkQueue } from '../lib/agents/work-queue.ts';
import { queueFromEnv, storeFromEnv } from '../lib/app/core.ts';
import { instrumented } from '../lib/common/observability.ts';
import { Engine } from '../lib/engine/engine.ts';
import type { RunStore } from '../lib/engine/ports.ts';
import { type GitHubClientFactory, githubClientFactoryFromEnv, splitRepo } from '../lib/github/client.ts';
import type { HttpEvent, HttpResult } from '../lib/http/apigw.ts';
import type { WorkQueue } from '../lib/queue/port.ts';
import { buildRegistry } from '../lib/workflows/index.ts';

/**
 * POST /callbacks/actions: an agent workflow's result, authenticated by its GitHub OIDC token.
 * Thin: the core (lib/agents/actions-callback.ts) checks the request, the token and its claims;
 * the hub delivers the result to the waiting run. The local stack serves this same handler.
 */
export function makeHandler(
  deps: ActionsCallbackDeps | (() => ActionsCallbackDeps),
): (event: HttpEvent) => Promise<HttpResult> {
  let resolved: ActionsCallbackDeps | undefined = typeof deps === 'function' ? undefined : deps;
  return async (event) => {
    resolved ??= (deps as () => ActionsCallbackDeps)();
    const res = await handleActionsCallback(resolved, {
      method: event.requestContext?.http?.method ?? 'POST',
      headers: event.headers ?? {},
      body: event.body,
      isBase64Encoded: event.isBase64Encoded,
    });
    return { statusCode: res.statusCode, headers: res.headers, body: res.body };
  };
}

/** The Actions API read the no-run-id fallback needs (`read` only). */
export function workflowRunReader(
  github: () => Promise<GitHubClientFactory>,
): (repo: string, id: number) => Promise<WorkflowRunFacts | undefined> {
  return async (repo, id) => {
    const client = (await github()).forAgent({ name: 'hub', permissions: ['read'] }, {});
    const res = await client.request<Record<string, unknown>>(
      'read',
      'GET /repos/{owner}/{repo}/actions/runs/{run_id}',
      { ...splitRepo(repo), run_id: id },
    );
    if (res.dryRun) return undefined;
    const s = (v: unknown) => (typeof v === 'string' ? v : undefined);
    const facts: WorkflowRunFacts = {};
    const title = s(res.data.display_title);
    const path = s(res.data.path);
    const ev = s(res.data.event);
    if (title) facts.displayTitle = title;
    if (path) facts.path = path;
    if (ev) facts.event = ev;
    return facts;
  };
}

export function createActionsCallbackDeps(opts: {
  store: RunStore;
  queue: WorkQueue;
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
  engine?: HubEngine;
  github?: () => Promise<GitHubClientFactory>;
}): ActionsCallbackDeps {
  // Signalling never executes a step, so the engine needs the graphs but no services.
  const engine =
    opts.engine ??
    new Engine<unknown>({
      store: opts.store,
      queue: opts.queue,
      workflows: buildRegistry(),
      services: {},
      ...(opts.now ? { now: opts.now } : {}),
    });
  const work = new AgentWorkQueue(opts.store, opts.now ? { now: opts.now } : {});
  const env = opts.env ?? process.env;
  let factory: Promise<GitHubClientFactory> | undefined;
  const github = opts.github ?? (() => (factory ??= githubClientFactoryFromEnv(env)));
  return {
    store: opts.store,
    env,
    ...(opts.now ? { now: opts.now } : {}),
    resume: (result) => deliverResult(engine, work, result, opts.now),
    workflowRun: workflowRunReader(github),
  };
}

/** Production dependencies from the environment (TABLE_NAME, QUEUE_URL, GITHUB_OIDC_*, GITHUB_CREDENTIALS). */
export function defaultDeps(env: NodeJS.ProcessEnv = process.env): ActionsCallbackDeps {
  return createActionsCallbackDeps({ store: storeFromEnv(env), queue: queueFromEnv(env), env });
}

export const handler = instrumented(makeHandler(() => defaultDeps()));
