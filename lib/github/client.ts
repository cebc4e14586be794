import { createAppAuth } from '@octokit/auth-app';
import { Octokit as OctokitCore } from '@octokit/core';
import { retry } from '@octokit/plugin-retry';
import { throttling } from '@octokit/plugin-throttling';
import { logger, redact } from '../common/observability.ts';
import { type GitHubCredentials, getSecretValue, parseGitHubCredentials } from '../common/secrets.ts';
import { stepSignal, throwIfStepAborted } from '../engine/abort.ts';
import type { EventType } from '../engine/events.ts';
import type { NewEvent } from '../engine/types.ts';
import {
  GitHubApiError,
  GitHubCredentialsError,
  InstallationNotFoundError,
  PermissionDeniedError,
} from './errors.ts';
import type { AgentIdentity, Permission } from './permissions.ts';

/**
 * The one way Switchyard talks to GitHub's REST API: @octokit/core with the retry and throttling
 * plugins, authenticated as a GitHub App (an installation token per repository) or with a token.
 * Every call goes through a client built for one agent, which checks the agent's permissions
 * before anything is sent. Without credentials every call is a dry run: nothing is sent, and
 * the would-be request (method, path, body; never a credential) is recorded as a run event.
 */

const Octokit = OctokitCore.plugin(retry, throttling);
type OctokitClient = InstanceType<typeof Octokit>;

export const DEFAULT_GITHUB_API_URL = 'https://api.github.com';

export interface GitHubClientFactoryOptions {
  credentials?: GitHubCredentials | undefined;
  /**
   * Where the credentials come from when they can change (Secrets Manager on AWS, cached there
   * for a bounded time): asked before every call, and with `forceFetch` after a 401. A change
   * drops every client built with the old credentials. `credentials` is the first answer.
   */
  credentialsSource?: (opts?: { forceFetch?: boolean }) => Promise<GitHubCredentials | undefined>;
  /** GITHUB_API_URL: api.github.com, a GHES `/api/v3` base, or a fake on loopback in tests. */
  baseUrl?: string | undefined;
  /**
   * The throttling plugin spaces writes 1 s apart per process (GitHub's advice for content
   * creation). Tests turn it off to stay fast; production keeps it.
   */
  throttle?: boolean;
  retries?: number;
  /** Base of the retry plugin's quadratic backoff (ms). */
  retryAfterBaseValue?: number;
}

export type GitHubMode = 'app' | 'token' | 'dry-run';

/** Where audit events of a client go: a node's buffer (returned in its result) or a logger. */
export type EventSink = (event: NewEvent) => void | Promise<void>;

/**
 * Events raised during a step must travel in the step's result: a separate write to the run
 * would bump its version under the step's lease and lose the step's commit. Node handlers give
 * clients this collector's `sink` and return `drain()` as the result's events.
 */
export class EventCollector {
  private events: NewEvent[] = [];
  readonly sink: EventSink = (e) => {
    this.events.push(e);
  };
  drain(): NewEvent[] {
    return this.events.splice(0);
  }
}

export interface CallContext {
  runId?: string;
  node?: string;
  sink?: EventSink;
}

export type GitHubResult<T> = { dryRun: false; status: number; data: T } | { dryRun: true; data: undefined };

/** A route's parameters (path placeholders, query, body) as Octokit takes them. */
export type RequestParams = Record<string, unknown>;

const WRITE_METHODS = new Set(['POST', 'PATCH', 'PUT', 'DELETE']);

export function splitRepo(fullName: string): { owner: string; repo: string } {
  const [owner, repo, ...rest] = fullName.split('/');
  if (!owner || !repo || rest.length > 0)
    throw new GitHubApiError(`not a repository: ${fullName}`, { status: 400, method: '', path: '' });
  return { owner, repo };
}

function checkCredentials(creds: GitHubCredentials | undefined): void {
  if (creds?.kind === 'app' && !/BEGIN [A-Z ]*PRIVATE KEY/.test(creds.privateKey)) {
    throw new GitHubCredentialsError('GitHub App private key is not a PEM private key');
  }
  if (creds?.kind === 'app' && creds.installationId !== undefined) {
    const id = Number(creds.installationId);
    if (!Number.isInteger(id))
      throw new GitHubCredentialsError('GitHub App installation id must be a number');
  }
}

export class GitHubClientFactory {
  readonly baseUrl: string;
  private credentials: GitHubCredentials | undefined;
  private credentialsKey: string;
  private readonly options: GitHubClientFactoryOptions;
  /** Never sends: only expands routes into method, path and body for refusals and dry runs. */
  private readonly parser: OctokitCore;
  private tokenClient: OctokitClient | undefined;
  private appClient: OctokitClient | undefined;
  private readonly installationClients = new Map<string, Promise<OctokitClient>>();
  private readonly installationIds = new Map<string, number>();

  constructor(options: GitHubClientFactoryOptions = {}) {
    this.options = options;
    this.baseUrl = (options.baseUrl ?? DEFAULT_GITHUB_API_URL).replace(/\/+$/, '');
    this.parser = new OctokitCore({ baseUrl: this.baseUrl });
    checkCredentials(options.credentials);
    this.credentials = options.credentials;
    this.credentialsKey = JSON.stringify(options.credentials ?? null);
  }

  get mode(): GitHubMode {
    return this.credentials ? this.credentials.kind : 'dry-run';
  }

  /**
   * Asks the credentials source again (its cache bounds the age; `forceFetch` skips it). When the
   * credentials changed, every client built with the old ones is dropped. Returns whether they
   * changed. Without a source the credentials are fixed.
   */
  async syncCredentials(forceFetch = false): Promise<boolean> {
    const source = this.options.credentialsSource;
    if (!source) return false;
    const next = await source(forceFetch ? { forceFetch } : undefined);
    const key = JSON.stringify(next ?? null);
    if (key === this.credentialsKey) return false;
    checkCredentials(next);
    this.credentials = next;
    this.credentialsKey = key;
    this.tokenClient = undefined;
    this.appClient = undefined;
    this.installationClients.clear();
    this.self = undefined;
    logger.info('github credentials changed: clients rebuilt', { mode: this.mode });
    return true;
  }

  get dryRun(): boolean {
    return this.mode === 'dry-run';
  }

  private self: Promise<string | undefined> | undefined;

  /**
   * Switchyard's own login, asked once and remembered: the token's user (`GET /user`), or for an
   * App its bot, `<slug>[bot]` (`GET /app` with the App's JWT). Undefined in dry-run. Marker
   * comments count as ours only when this login wrote them (`isOwnComment`).
   */
  selfLogin(): Promise<string | undefined> {
    this.self ??= this.lookupSelf();
    // A failed lookup must not be remembered.
    this.self.catch(() => {
      this.self = undefined;
    });
    return this.self;
  }

  private async lookupSelf(): Promise<string | undefined> {
    const creds = this.credentials;
    if (!creds) return undefined;
    if (creds.kind === 'token') {
      const res = await (await this.octokitFor(undefined)).request('GET /user');
      return (res.data as { login: string }).login;
    }
    this.appClient ??= this.build({
      authStrategy: createAppAuth,
      auth: { appId: creds.appId, privateKey: creds.privateKey },
    });
    const res = await this.appClient.request('GET /app');
    const slug = (res.data as { slug?: string } | null)?.slug;
    return slug ? `${slug}[bot]` : undefined;
  }

  /** Installation ids arrive in webhook payloads; remembering them saves a lookup per repository. */
  rememberInstallation(repo: string, installationId: number): void {
    this.installationIds.set(repo, installationId);
  }

  /** A client that acts as `agent`, with its permissions enforced. */
  forAgent(agent: AgentIdentity, ctx: CallContext = {}): GitHubClient {
    return new GitHubClient(this, agent, ctx);
  }

  /** Method, path (relative to the API base) and body of a route, without sending it. */
  describe(route: string, params: RequestParams): { method: string; path: string; body?: unknown } {
    const ep = this.parser.request.endpoint(route, params);
    const url = new URL(ep.url);
    const base = new URL(this.baseUrl);
    const basePath = base.pathname.replace(/\/+$/, '');
    const path = `${url.pathname.startsWith(basePath) ? url.pathname.slice(basePath.length) : url.pathname}${url.search}`;
    return { method: ep.method, path, ...(ep.body !== undefined ? { body: ep.body } : {}) };
  }

  private build(auth: Record<string, unknown>): OctokitClient {
    const retries = this.options.retries ?? 3;
    return new Octokit({
      baseUrl: this.baseUrl,
      userAgent: 'switchyard',
      ...auth,
      retry: {
        retries,
        ...(this.options.retryAfterBaseValue !== undefined
          ? { retryAfterBaseValue: this.options.retryAfterBaseValue }
          : {}),
      },
      throttle:
        this.options.throttle === false
          ? { enabled: false }
          : {
              // Wait out a rate limit a couple of times inside a step; beyond that the step fails retryably.
              onRateLimit: (
                after: number,
                opts: { method: string; url: string },
                _o: unknown,
                count: number,
              ) => {
                logger.warn('github rate limit', { method: opts.method, url: opts.url, retryAfter: after });
                return count < 2;
              },
              onSecondaryRateLimit: (
                after: number,
                opts: { method: string; url: string },
                _o: unknown,
                count: number,
              ) => {
                logger.warn('github secondary rate limit', {
                  method: opts.method,
                  url: opts.url,
                  retryAfter: after,
                });
                return count < 2;
              },
            },
      log: {
        debug: () => {},
        info: () => {},
        warn: (m: string) => logger.warn(m),
        error: (m: string) => logger.error(m),
      },
    });
  }

  /** The authenticated Octokit for a repository (an installation token in app mode). */
  async octokitFor(repo: string | undefined): Promise<OctokitClient> {
    const creds = this.credentials;
    if (!creds) throw new GitHubCredentialsError('no GitHub credentials: dry-run mode');
    if (creds.kind === 'token') {
      this.tokenClient ??= this.build({ auth: creds.token });
      return this.tokenClient;
    }
    const fixed = creds.installationId !== undefined ? Number(creds.installationId) : undefined;
    const known = repo ? this.installationIds.get(repo) : undefined;
    const installationId = fixed ?? known;
    const key = installationId !== undefined ? `id:${installationId}` : `repo:${repo ?? ''}`;
    let client = this.installationClients.get(key);
    if (!client) {
      client = this.installationClient(creds, installationId, repo);
      this.installationClients.set(key, client);
      // A failed lookup must not be cached forever.
      client.catch(() => this.installationClients.delete(key));
    }
    return client;
  }

  /**
   * The Octokit for a webhook's own routes (`…/hook/deliveries`): the App's hook needs the App's
   * JWT (auth-app signs `/app/*` routes with it), a repository's or organisation's hook the
   * installation token (or the token). Used by the redelivery sweep (redelivery.ts).
   */
  async octokitForHook(
    hook: 'app' | { repo: string } | { org: string },
  ): Promise<InstanceType<typeof Octokit>> {
    const creds = this.credentials;
    if (!creds) throw new GitHubCredentialsError('no GitHub credentials: dry-run mode');
    if (hook === 'app') {
      if (creds.kind !== 'app')
        throw new GitHubCredentialsError("the App's hook deliveries need GitHub App credentials");
      this.appClient ??= this.build({
        authStrategy: createAppAuth,
        auth: { appId: creds.appId, privateKey: creds.privateKey },
      });
      return this.appClient;
    }
    if ('repo' in hook) return this.octokitFor(hook.repo);
    if (creds.kind === 'token' || creds.installationId !== undefined) return this.octokitFor(undefined);
    // An organisation's installation: found once through the App, then cached like a repository's.
    const key = `org:${hook.org.toLowerCase()}`;
    let id = this.installationIds.get(key);
    if (id === undefined) {
      const app = await this.octokitForHook('app');
      const res = await app.request('GET /orgs/{org}/installation', { org: hook.org });
      id = (res.data as { id: number }).id;
      this.installationIds.set(key, id);
    }
    return this.octokitFor(key);
  }

  private async installationClient(
    creds: Extract<GitHubCredentials, { kind: 'app' }>,
    installationId: number | undefined,
    repo: string | undefined,
  ): Promise<OctokitClient> {
    let id = installationId;
    if (id === undefined) {
      if (!repo)
        throw new InstallationNotFoundError(
          'an app-authenticated call needs a repository to find its installation',
        );
      this.appClient ??= this.build({
        authStrategy: createAppAuth,
        auth: { appId: creds.appId, privateKey: creds.privateKey },
      });
      const { owner, repo: name } = splitRepo(repo);
      try {
        const res = await this.appClient.request('GET /repos/{owner}/{repo}/installation', {
          owner,
          repo: name,
        });
        id = (res.data as { id: number }).id;
      } catch (cause) {
        throw new InstallationNotFoundError(`the GitHub App is not installed on ${repo}`, { cause });
      }
      this.installationIds.set(repo, id);
    }
    // auth-app caches installation tokens (and refreshes them before they expire).
    return this.build({
      authStrategy: createAppAuth,
      auth: { appId: creds.appId, privateKey: creds.privateKey, installationId: id },
    });
  }
}

/** The minimal shapes of the REST resources we read. */
export interface IssueComment {
  id: number;
  body?: string | null;
  html_url?: string;
  user?: { login: string } | null;
}

/** Whether `comment` carries `marker` and was written by Switchyard itself (`self`, from `selfLogin`). */
export function isOwnComment(comment: IssueComment, marker: string, self: string | undefined): boolean {
  return (
    self !== undefined &&
    comment.user?.login?.toLowerCase() === self.toLowerCase() &&
    (comment.body?.includes(marker) ?? false)
  );
}

export interface Issue {
  number: number;
  title: string;
  body?: string | null;
  state?: string;
  html_url?: string;
  labels?: Array<string | { name?: string }>;
  pull_request?: unknown;
  user?: { login: string } | null;
  updated_at?: string;
}

export interface WorkflowRunSummary {
  id: number;
  name?: string | null;
  workflow_id: number;
  head_branch: string | null;
  head_sha?: string;
  status: string | null;
  conclusion: string | null;
  updated_at: string;
  html_url?: string;
  event?: string;
  display_title?: string;
}

/**
 * A workflow run dispatched by Switchyard for an agent: its run-name starts with `switchyard `
 * (examples/switchyard-agent.yml). Its failure is the agent's, never the branch's CI.
 */
export function isSwitchyardAgentRun(r: {
  event?: string | undefined;
  display_title?: string | undefined;
}): boolean {
  return r.event === 'workflow_dispatch' && /^switchyard\s/i.test(r.display_title ?? '');
}

export interface CheckSuiteSummary {
  id: number;
  app?: { slug?: string; name?: string; id?: number } | null;
  head_branch: string | null;
  status: string | null;
  conclusion: string | null;
  updated_at?: string | null;
}

/** What a dispatch learned about the workflow run it started. */
export interface DispatchedRun {
  /** `returned`: GitHub named the run; `absent`: 204 (not supported); `refused`: a 4xx naming the parameter, then the plain call; `dry-run`. */
  details: 'returned' | 'absent' | 'refused' | 'dry-run';
  workflowRunId?: number;
  /** The API URL of the run. */
  runUrl?: string;
  /** The run's page. */
  htmlUrl?: string;
}

/** A 4xx (400/422) whose message names `return_run_details`: the server does not know it. */
function refusesRunDetails(err: unknown): boolean {
  if (!(err instanceof GitHubApiError) || (err.status !== 400 && err.status !== 422)) return false;
  const cause = err.cause as { message?: unknown; response?: { data?: unknown } } | undefined;
  const text = `${String(cause?.message ?? '')} ${JSON.stringify(cause?.response?.data ?? '')}`;
  return text.includes('return_run_details');
}

/**
 * A GitHub client bound to one agent. `request` is the single gate: permission check, then
 * dry run or a real call; the typed helpers below all go through it.
 */
export class GitHubClient {
  constructor(
    private readonly factory: GitHubClientFactory,
    readonly agent: AgentIdentity,
    private readonly ctx: CallContext,
  ) {}

  get dryRun(): boolean {
    return this.factory.dryRun;
  }

  can(permission: Permission): boolean {
    return this.agent.permissions.includes(permission);
  }

  private async emit(type: EventType, detail: Record<string, unknown>): Promise<void> {
    const event: NewEvent = { type, by: this.agent.name, detail: { agent: this.agent.name, ...detail } };
    if (this.ctx.node) event.node = this.ctx.node;
    if (this.ctx.sink) await this.ctx.sink(event);
    else logger.info(`github ${type}`, { runId: this.ctx.runId, ...detail });
  }

  async request<T>(
    permission: Permission,
    route: string,
    params: RequestParams = {},
  ): Promise<GitHubResult<T>> {
    const call = this.factory.describe(route, params);
    if (!this.can(permission)) {
      await this.emit('github.refused', { permission, method: call.method, path: call.path });
      throw new PermissionDeniedError({
        agent: this.agent.name,
        permission,
        method: call.method,
        path: call.path,
        runId: this.ctx.runId,
        node: this.ctx.node,
      });
    }
    // Cheap when nothing changed (the source caches); picks up a rotation within its max age.
    await this.factory.syncCredentials();
    if (this.factory.dryRun) {
      await this.emit('github.dry-run', {
        method: call.method,
        path: call.path,
        ...(call.body !== undefined ? { body: redact(call.body) } : {}),
      });
      return { dryRun: true, data: undefined };
    }
    const repo =
      typeof params.owner === 'string' && typeof params.repo === 'string'
        ? `${params.owner}/${params.repo}`
        : undefined;
    // No call starts after the step timed out, and one in flight is aborted with the step.
    throwIfStepAborted(`GitHub ${call.method} ${call.path}`);
    const signal = stepSignal();
    for (let reauthorised = false; ; reauthorised = true) {
      const octokit = await this.factory.octokitFor(repo);
      try {
        const res = await octokit.request(route, signal ? { ...params, request: { signal } } : params);
        if (WRITE_METHODS.has(call.method)) {
          await this.emit('github.request', { method: call.method, path: call.path, status: res.status });
        }
        return { dryRun: false, status: res.status, data: res.data as T };
      } catch (err) {
        const status =
          typeof (err as { status?: unknown }).status === 'number' ? (err as { status: number }).status : 0;
        // A 401: the credentials were likely rotated. Re-read them now and retry once with the
        // new ones; unchanged credentials would only 401 again.
        if (
          status === 401 &&
          !reauthorised &&
          !this.factory.dryRun &&
          (await this.factory.syncCredentials(true))
        ) {
          logger.warn('github 401: retrying with re-read credentials', {
            method: call.method,
            path: call.path,
          });
          if (this.factory.dryRun) return this.request<T>(permission, route, params);
          continue;
        }
        throw new GitHubApiError(
          `GitHub ${call.method} ${call.path} failed: ${status || (err as Error).message}`,
          { status, method: call.method, path: call.path, cause: err, runId: this.ctx.runId },
        );
      }
    }
  }

  /** Pages through a list endpoint (100 per page), up to `maxItems`. */
  async paginate<T>(
    permission: Permission,
    route: string,
    params: RequestParams,
    maxItems = 1_000,
    pick?: (d: unknown) => T[],
  ): Promise<T[] | undefined> {
    const out: T[] = [];
    for (let page = 1; out.length < maxItems; page++) {
      const res = await this.request<unknown>(permission, route, { ...params, per_page: 100, page });
      if (res.dryRun) return undefined;
      const items = pick ? pick(res.data) : (res.data as T[]);
      out.push(...items);
      if (items.length < 100) break;
    }
    return out.slice(0, maxItems);
  }

  // ---------------------------------------------------------------------------- issues

  async getIssue(repo: string, issue: number): Promise<Issue | undefined> {
    const res = await this.request<Issue>('read', 'GET /repos/{owner}/{repo}/issues/{issue_number}', {
      ...splitRepo(repo),
      issue_number: issue,
    });
    return res.data;
  }

  async listIssueComments(repo: string, issue: number): Promise<IssueComment[] | undefined> {
    return this.paginate<IssueComment>('read', 'GET /repos/{owner}/{repo}/issues/{issue_number}/comments', {
      ...splitRepo(repo),
      issue_number: issue,
    });
  }

  async createComment(repo: string, issue: number, body: string): Promise<IssueComment | undefined> {
    const res = await this.request<IssueComment>(
      'comment',
      'POST /repos/{owner}/{repo}/issues/{issue_number}/comments',
      {
        ...splitRepo(repo),
        issue_number: issue,
        body,
      },
    );
    return res.data;
  }

  async updateComment(repo: string, commentId: number, body: string): Promise<IssueComment | undefined> {
    const res = await this.request<IssueComment>(
      'comment',
      'PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}',
      {
        ...splitRepo(repo),
        comment_id: commentId,
        body,
      },
    );
    return res.data;
  }

  async addLabels(repo: string, issue: number, labels: string[]): Promise<void> {
    await this.request('apply_labels', 'POST /repos/{owner}/{repo}/issues/{issue_number}/labels', {
      ...splitRepo(repo),
      issue_number: issue,
      labels,
    });
  }

  /** Removing a label that is not there is not an error (GitHub answers 404). */
  async removeLabel(repo: string, issue: number, label: string): Promise<void> {
    try {
      await this.request('apply_labels', 'DELETE /repos/{owner}/{repo}/issues/{issue_number}/labels/{name}', {
        ...splitRepo(repo),
        issue_number: issue,
        name: label,
      });
    } catch (err) {
      if (err instanceof GitHubApiError && err.status === 404) return;
      throw err;
    }
  }

  // ------------------------------------------------------------------------ repository

  async getRepository(repo: string): Promise<{ default_branch: string; full_name: string } | undefined> {
    const res = await this.request<{ default_branch: string; full_name: string }>(
      'read',
      'GET /repos/{owner}/{repo}',
      splitRepo(repo),
    );
    return res.data;
  }

  /** A file's text, `null` when it does not exist, `undefined` in dry-run. */
  async getFileText(repo: string, path: string, ref?: string): Promise<string | null | undefined> {
    try {
      // Slashes stay literal: octokit would send `{path}` as `a%2Fb`, which GitHub answers with
      // 404 for fine-grained tokens (octokit/octokit.js#2422).
      const encoded = path.split('/').map(encodeURIComponent).join('/');
      const res = await this.request<{ content?: string; encoding?: string; type?: string }>(
        'read',
        `GET /repos/{owner}/{repo}/contents/${encoded}`,
        { ...splitRepo(repo), ...(ref ? { ref } : {}) },
      );
      if (res.dryRun) return undefined;
      if (res.data.type !== undefined && res.data.type !== 'file') return null;
      const content = res.data.content ?? '';
      return res.data.encoding === 'base64' ? Buffer.from(content, 'base64').toString('utf8') : content;
    } catch (err) {
      if (err instanceof GitHubApiError && err.status === 404) return null;
      throw err;
    }
  }

  async listPullFiles(repo: string, pr: number): Promise<string[] | undefined> {
    const files = await this.paginate<{ filename: string }>(
      'read',
      'GET /repos/{owner}/{repo}/pulls/{pull_number}/files',
      { ...splitRepo(repo), pull_number: pr },
      3_000,
    );
    return files?.map((f) => f.filename);
  }

  // --------------------------------------------------------------------------------- CI

  async listWorkflowRuns(
    repo: string,
    query: { branch?: string; status?: string; event?: string; perPage?: number } = {},
  ): Promise<WorkflowRunSummary[] | undefined> {
    const res = await this.request<{ workflow_runs: WorkflowRunSummary[] }>(
      'read',
      'GET /repos/{owner}/{repo}/actions/runs',
      {
        ...splitRepo(repo),
        ...(query.branch ? { branch: query.branch } : {}),
        ...(query.status ? { status: query.status } : {}),
        ...(query.event ? { event: query.event } : {}),
        exclude_pull_requests: true,
        per_page: query.perPage ?? 50,
      },
    );
    return res.data?.workflow_runs;
  }

  async listCheckSuites(repo: string, ref: string): Promise<CheckSuiteSummary[] | undefined> {
    const res = await this.request<{ check_suites: CheckSuiteSummary[] }>(
      'read',
      'GET /repos/{owner}/{repo}/commits/{ref}/check-suites',
      {
        ...splitRepo(repo),
        ref,
        per_page: 100,
      },
    );
    return res.data?.check_suites;
  }

  /**
   * `workflow_dispatch` asking for the new run's details (`return_run_details`, GitHub 2026-02):
   * GitHub answers 200 with `workflow_run_id`, `run_url` and `html_url`, which bind the results
   * to the exact run. A server that does not know the parameter either ignores it (204: the
   * dispatch happened, so it is NOT sent again; matching falls back to the run-name) or refuses
   * it with a 4xx naming it (older GitHub Enterprise Server: nothing was dispatched, so the plain
   * call is made).
   */
  async dispatchWorkflow(
    repo: string,
    workflow: string,
    ref: string,
    inputs: Record<string, string>,
  ): Promise<DispatchedRun> {
    const route = 'POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches';
    const params = { ...splitRepo(repo), workflow_id: workflow, ref, inputs };
    let res: GitHubResult<unknown>;
    try {
      res = await this.request('dispatch_workflow', route, { ...params, return_run_details: true });
    } catch (err) {
      if (!refusesRunDetails(err)) throw err;
      await this.emit('github.dispatch.fallback', {
        reason: `the server refused return_run_details (${(err as GitHubApiError).status})`,
      });
      await this.request('dispatch_workflow', route, params);
      return { details: 'refused' };
    }
    if (res.dryRun) return { details: 'dry-run' };
    const data = (res.data ?? {}) as Record<string, unknown>;
    const id = data.workflow_run_id;
    if (res.status !== 200 || typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0)
      return { details: 'absent' };
    const url = (v: unknown) =>
      typeof v === 'string' && /^https?:\/\//.test(v) ? v.slice(0, 500) : undefined;
    const runUrl = url(data.run_url);
    const htmlUrl = url(data.html_url);
    return {
      details: 'returned',
      workflowRunId: id,
      ...(runUrl ? { runUrl } : {}),
      ...(htmlUrl ? { htmlUrl } : {}),
    };
  }

  async cancelWorkflowRun(repo: string, runId: number): Promise<void> {
    await this.request('cancel_workflow', 'POST /repos/{owner}/{repo}/actions/runs/{run_id}/cancel', {
      ...splitRepo(repo),
      run_id: runId,
    });
  }
}

/**
 * Build the factory from the environment: GITHUB_APP_ID + GITHUB_APP_PRIVATE_KEY
 * (+ GITHUB_APP_INSTALLATION_ID), else GITHUB_CREDENTIALS (Secrets Manager on AWS) or GITHUB_TOKEN,
 * else dry-run. GITHUB_API_URL sets the base.
 */
export async function githubClientFactoryFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  extra: Omit<GitHubClientFactoryOptions, 'credentials' | 'baseUrl'> = {},
): Promise<GitHubClientFactory> {
  let credentials: GitHubCredentials | undefined;
  const appId = env.GITHUB_APP_ID;
  const key = env.GITHUB_APP_PRIVATE_KEY;
  if (appId && key) {
    credentials = {
      kind: 'app',
      appId,
      privateKey: key.replace(/\\n/g, '\n'),
      ...(env.GITHUB_APP_INSTALLATION_ID ? { installationId: env.GITHUB_APP_INSTALLATION_ID } : {}),
    };
  } else if (appId || key) {
    throw new GitHubCredentialsError('set both GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY, or neither');
  } else {
    const source = async (opts?: { forceFetch?: boolean }) =>
      parseGitHubCredentials(await getSecretValue('GITHUB_CREDENTIALS', env, opts));
    return new GitHubClientFactory({
      ...extra,
      credentials: await source(),
      credentialsSource: source,
      baseUrl: env.GITHUB_API_URL,
    });
  }
  return new GitHubClientFactory({ ...extra, credentials, baseUrl: env.GITHUB_API_URL });
}
