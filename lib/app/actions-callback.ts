import {
  type ActionsCallbackDeps,
  handleActionsCallback,
  type WorkflowRunFacts,
} from '../agents/actions-callback.ts';
import type { HubEngine } from '../agents/results.ts';
import { instrumented } from '../common/observability.ts';
import type { RunStore } from '../engine/ports.ts';
import { type GitHubClientFactory, githubClientFactoryFromEnv, splitRepo } from '../github/client.ts';
import type { LambdaHttpHandler } from '../http/apigw.ts';
import type { StepQueue } from '../queue/port.ts';
import { queueFromEnv, storeFromEnv } from './core.ts';
import { type DepsOrLoader, endpointHandler } from './http-function.ts';
import { resultResumer } from './signals.ts';

/**
 * POST /callbacks/actions: an agent workflow's result, authenticated by its GitHub OIDC token.
 * The core (lib/agents/actions-callback.ts) checks the request, the token and its claims; the
 * hub delivers the result to the waiting run, as for `POST /callbacks/{token}` (lib/app/signals.ts).
 */
export function makeHandler(deps: DepsOrLoader<ActionsCallbackDeps>): LambdaHttpHandler {
  return endpointHandler(deps, (d) => (req) => handleActionsCallback(d, req));
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
  queue: StepQueue;
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
  engine?: HubEngine;
  github?: () => Promise<GitHubClientFactory>;
}): ActionsCallbackDeps {
  const env = opts.env ?? process.env;
  let factory: Promise<GitHubClientFactory> | undefined;
  const github = opts.github ?? (() => (factory ??= githubClientFactoryFromEnv(env)));
  return {
    store: opts.store,
    env,
    ...(opts.now ? { now: opts.now } : {}),
    resume: resultResumer(opts),
    workflowRun: workflowRunReader(github),
  };
}

/** Production dependencies from the environment (TABLE_NAME, QUEUE_URL, GITHUB_OIDC_*, GITHUB_CREDENTIALS). */
export function defaultDeps(env: NodeJS.ProcessEnv = process.env): ActionsCallbackDeps {
  return createActionsCallbackDeps({ store: storeFromEnv(env), queue: queueFromEnv(env), env });
}

/** The deployed function: built on the first request, so importing it needs no environment. */
export function actionsCallbackFunction(env: NodeJS.ProcessEnv = process.env) {
  return instrumented(makeHandler(() => defaultDeps(env)));
}
