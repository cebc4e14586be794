import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { FakeHookDeliveries } from './fake-deliveries.ts';
import { type ScriptedResponse, Scripts } from './scripted.ts';

/** One request as the fake received it. */
export interface RecordedRequest {
  method: string;
  /** Path with query string, e.g. `/repos/acme/app/issues/1/comments?per_page=100&page=1`. */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

export interface FakeIssue {
  number: number;
  title: string;
  body: string;
  labels: string[];
  state: string;
  user: string;
  pullRequest?: boolean;
}

export interface FakeComment {
  id: number;
  repo: string;
  issue: number;
  body: string;
  user: string;
}

export interface FakeWorkflowRun {
  id: number;
  name: string;
  workflow_id: number;
  head_branch: string;
  head_sha?: string;
  status: string;
  conclusion: string | null;
  updated_at: string;
  event: string;
  html_url?: string;
  display_title?: string;
}

export interface FakeCheckSuite {
  id: number;
  app: { slug: string; name: string };
  head_branch: string;
  status: string;
  conclusion: string | null;
  updated_at: string;
}

/**
 * GitHub's REST API played on loopback (point GITHUB_API_URL at `url`): records every request
 * and answers like GitHub for the endpoints Switchyard uses: issues, comments (list, create,
 * edit), labels, contents, PR files, workflow runs, check suites and runs, combined status,
 * workflow dispatches and cancels, app installations, webhook delivery logs. Anything can be overridden with `script`.
 * With `token` set, requests without `Authorization: token <token>` get 401.
 */
export class FakeGitHub {
  readonly requests: RecordedRequest[] = [];
  readonly issues = new Map<string, FakeIssue>();
  readonly comments = new Map<number, FakeComment>();
  /** Reactions added to comments (the bot's 👍 / 😕 answers to comment commands). */
  readonly reactions: Array<{ commentId: number; content: string }> = [];
  /** Collaborator permission by `repo#login` (lowercase): admin, maintain, write, triage, read or none. */
  readonly permissions = new Map<string, string>();
  readonly files = new Map<string, string>();
  readonly pullFiles = new Map<string, string[]>();
  readonly workflowRuns = new Map<string, FakeWorkflowRun[]>();
  readonly checkSuites = new Map<string, FakeCheckSuite[]>();
  readonly dispatches: Array<{ repo: string; workflow: string; ref: string; inputs: unknown }> = [];
  readonly cancelled: Array<{ repo: string; runId: number }> = [];
  readonly installations = new Map<string, number>();
  readonly defaultBranches = new Map<string, string>();
  /** Webhook delivery logs (`…/hook/deliveries`) and redelivery requests. */
  readonly deliveries = new FakeHookDeliveries();
  private readonly scripts = new Scripts();
  private server: Server | undefined;
  private nextCommentId = 1_000;
  url = '';

  constructor(readonly token?: string) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      void this.handle(req, res);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const addr = this.server.address();
    this.url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    return this;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  // ------------------------------------------------------------------------- seeding

  addIssue(repo: string, issue: Partial<FakeIssue> & { number: number }): FakeIssue {
    const full: FakeIssue = {
      title: `Issue ${issue.number}`,
      body: '',
      labels: [],
      state: 'open',
      user: 'octocat',
      ...issue,
    };
    this.issues.set(`${repo}#${issue.number}`, full);
    return full;
  }

  addComment(repo: string, issue: number, body: string, user = 'someone'): FakeComment {
    const c: FakeComment = { id: this.nextCommentId++, repo, issue, body, user };
    this.comments.set(c.id, c);
    return c;
  }

  commentsOn(repo: string, issue: number): FakeComment[] {
    return [...this.comments.values()].filter((c) => c.repo === repo && c.issue === issue);
  }

  /** Answer `method` + `path` (a regex over the path with query) with `response`. */
  script(method: string | undefined, path: RegExp, response: ScriptedResponse): void {
    this.scripts.add(method, path, response, true);
  }

  calls(method: string, path: RegExp): RecordedRequest[] {
    return this.requests.filter((r) => r.method === method && path.test(r.path));
  }

  // ------------------------------------------------------------------------- serving

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      body = raw;
    }
    const method = (req.method ?? 'GET').toUpperCase();
    const path = req.url ?? '/';
    this.requests.push({ method, path, headers: req.headers, body });
    const send = (status: number, payload?: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(payload === undefined ? '' : JSON.stringify(payload));
    };

    const scripted = this.scripts.take(method, path);
    if (scripted) {
      send(scripted.status, scripted.body, scripted.headers);
      return;
    }
    const isAppCall = /^\/(app(\/|$|\?)|repos\/[^/]+\/[^/]+\/installation$)/.test(path);
    const auth = req.headers.authorization ?? '';
    if (this.token && !isAppCall && auth !== `token ${this.token}`) {
      send(401, { message: 'Bad credentials' });
      return;
    }
    const hook = await this.deliveries.route(method, path, this.url);
    if (hook) {
      send(hook.status, hook.body, hook.headers);
      return;
    }
    const out = this.route(method, path, body);
    send(out.status, out.body);
  }

  private route(method: string, fullPath: string, body: unknown): { status: number; body?: unknown } {
    const url = new URL(fullPath, 'http://fake');
    const p = url.pathname;
    const q = url.searchParams;
    const notFound = { status: 404, body: { message: 'Not Found' } };
    const b = (body ?? {}) as Record<string, unknown>;
    let m: RegExpExecArray | null;

    m = method === 'POST' ? /^\/app\/installations\/(\d+)\/access_tokens$/.exec(p) : null;
    if (m) {
      return {
        status: 201,
        body: { token: `inst-${m[1]}`, expires_at: new Date(Date.now() + 3600_000).toISOString() },
      };
    }
    // Who we are: the token's user, or (with an App's JWT) the App, whose bot login is `<slug>[bot]`.
    if (p === '/user' && method === 'GET')
      return { status: 200, body: { login: 'switchyard[bot]', type: 'Bot' } };
    if (p === '/app' && method === 'GET') return { status: 200, body: { slug: 'switchyard', id: 1 } };
    m = /^\/repos\/([^/]+)\/([^/]+)(\/.*)?$/.exec(p);
    if (!m) return notFound;
    const repo = `${m[1]}/${m[2]}`;
    const rest = m[3] ?? '';

    if (rest === '' && method === 'GET') {
      return {
        status: 200,
        body: { full_name: repo, default_branch: this.defaultBranches.get(repo) ?? 'main' },
      };
    }
    if (rest === '/installation' && method === 'GET') {
      const id = this.installations.get(repo);
      return id === undefined ? notFound : { status: 200, body: { id } };
    }
    if (rest === '/issues' && method === 'GET') {
      const labels = q.get('labels')?.split(',').filter(Boolean) ?? [];
      const list = [...this.issues.entries()]
        .filter(
          ([k, i]) =>
            k.startsWith(`${repo}#`) &&
            i.state === (q.get('state') ?? 'open') &&
            labels.every((l) => i.labels.includes(l)),
        )
        .map(([, i]) => this.issueJson(repo, i));
      return { status: 200, body: this.page(list, q) };
    }
    m = /^\/issues\/(\d+)$/.exec(rest);
    if (m) {
      const issue = this.issues.get(`${repo}#${m[1]}`);
      if (!issue) return notFound;
      if (method === 'GET') return { status: 200, body: this.issueJson(repo, issue) };
      if (method === 'PATCH') {
        if (typeof b.title === 'string') issue.title = b.title;
        if (typeof b.body === 'string') issue.body = b.body;
        if (typeof b.state === 'string') issue.state = b.state;
        return { status: 200, body: this.issueJson(repo, issue) };
      }
    }
    m = /^\/issues\/(\d+)\/comments$/.exec(rest);
    if (m) {
      const n = Number(m[1]);
      if (method === 'GET')
        return {
          status: 200,
          body: this.page(
            this.commentsOn(repo, n).map((c) => this.commentJson(c)),
            q,
          ),
        };
      if (method === 'POST') {
        if (typeof b.body !== 'string') return { status: 422, body: { message: 'body is required' } };
        return { status: 201, body: this.commentJson(this.addComment(repo, n, b.body, 'switchyard[bot]')) };
      }
    }
    m = /^\/issues\/comments\/(\d+)\/reactions$/.exec(rest);
    if (m && method === 'POST') {
      const c = this.comments.get(Number(m[1]));
      if (!c || c.repo !== repo) return notFound;
      this.reactions.push({ commentId: c.id, content: String(b.content) });
      return { status: 201, body: { id: this.reactions.length, content: b.content } };
    }
    m = /^\/collaborators\/([^/]+)\/permission$/.exec(rest);
    if (m && method === 'GET') {
      const permission = this.permissions.get(`${repo}#${decodeURIComponent(m[1]!).toLowerCase()}`) ?? 'none';
      return { status: 200, body: { permission, role_name: permission, user: { login: m[1] } } };
    }
    m = /^\/issues\/comments\/(\d+)$/.exec(rest);
    if (m) {
      const c = this.comments.get(Number(m[1]));
      if (!c || c.repo !== repo) return notFound;
      if (method === 'PATCH' && typeof b.body === 'string') {
        c.body = b.body;
        return { status: 200, body: this.commentJson(c) };
      }
      if (method === 'GET') return { status: 200, body: this.commentJson(c) };
    }
    m = method === 'POST' ? /^\/issues\/(\d+)\/labels$/.exec(rest) : null;
    if (m) {
      const issue = this.issues.get(`${repo}#${m[1]}`);
      if (!issue) return notFound;
      for (const l of (b.labels as string[] | undefined) ?? [])
        if (!issue.labels.includes(l)) issue.labels.push(l);
      return { status: 200, body: issue.labels.map((name) => ({ name })) };
    }
    m = method === 'DELETE' ? /^\/issues\/(\d+)\/labels\/(.+)$/.exec(rest) : null;
    if (m) {
      const issue = this.issues.get(`${repo}#${m[1]}`);
      const name = decodeURIComponent(m[2] ?? '');
      if (!issue?.labels.includes(name)) return { status: 404, body: { message: 'Label does not exist' } };
      issue!.labels = issue!.labels.filter((l) => l !== name);
      return { status: 200, body: issue!.labels.map((n) => ({ name: n })) };
    }
    if (method === 'GET' && (rest === '/contents' || rest === '/contents/')) {
      // The root listing: the first path segment of every seeded file (directories end up as `dir`).
      const entries = new Map<string, string>();
      for (const key of this.files.keys()) {
        if (!key.startsWith(`${repo}:`)) continue;
        const [first, ...more] = key.slice(repo.length + 1).split('/');
        if (first) entries.set(first, more.length > 0 ? 'dir' : 'file');
      }
      if (entries.size === 0) return { status: 404, body: { message: 'This repository is empty.' } };
      return { status: 200, body: [...entries].map(([name, type]) => ({ name, path: name, type })) };
    }
    m = method === 'GET' ? /^\/contents\/(.+)$/.exec(rest) : null;
    if (m) {
      const path = decodeURIComponent(m[1] ?? '');
      const text = this.files.get(`${repo}:${path}`);
      if (text === undefined) return notFound;
      return {
        status: 200,
        body: { type: 'file', path, encoding: 'base64', content: Buffer.from(text).toString('base64') },
      };
    }
    m = method === 'GET' ? /^\/pulls\/(\d+)\/files$/.exec(rest) : null;
    if (m) {
      const files = (this.pullFiles.get(`${repo}#${m[1]}`) ?? []).map((filename) => ({
        filename,
        status: 'modified',
      }));
      return { status: 200, body: this.page(files, q) };
    }
    if (rest === '/actions/runs' && method === 'GET') {
      const runs = (this.workflowRuns.get(repo) ?? [])
        .filter(
          (r) =>
            (!q.get('branch') || r.head_branch === q.get('branch')) &&
            (!q.get('status') || r.status === q.get('status')),
        )
        .sort((a, b2) => b2.updated_at.localeCompare(a.updated_at));
      return { status: 200, body: { total_count: runs.length, workflow_runs: runs } };
    }
    m = method === 'POST' ? /^\/actions\/workflows\/([^/]+)\/dispatches$/.exec(rest) : null;
    if (m) {
      this.dispatches.push({
        repo,
        workflow: decodeURIComponent(m[1] ?? ''),
        ref: String(b.ref),
        inputs: b.inputs,
      });
      return { status: 204 };
    }
    m = method === 'POST' ? /^\/actions\/runs\/(\d+)\/cancel$/.exec(rest) : null;
    if (m) {
      this.cancelled.push({ repo, runId: Number(m[1]) });
      return { status: 202, body: {} };
    }
    m = method === 'GET' ? /^\/commits\/([^/]+)\/check-suites$/.exec(rest) : null;
    if (m) {
      const ref = decodeURIComponent(m[1] ?? '');
      const suites = (this.checkSuites.get(repo) ?? []).filter((s) => s.head_branch === ref);
      return { status: 200, body: { total_count: suites.length, check_suites: suites } };
    }
    m = method === 'GET' ? /^\/commits\/([^/]+)\/check-runs$/.exec(rest) : null;
    if (m) {
      const ref = decodeURIComponent(m[1] ?? '');
      const runs = (this.workflowRuns.get(repo) ?? [])
        .filter((r) => r.head_branch === ref)
        .map((r) => ({
          id: r.id,
          name: r.name,
          status: r.status,
          conclusion: r.conclusion,
          completed_at: r.updated_at,
        }));
      return { status: 200, body: { total_count: runs.length, check_runs: runs } };
    }
    m = method === 'GET' ? /^\/commits\/([^/]+)\/status$/.exec(rest) : null;
    if (m) {
      const ref = decodeURIComponent(m[1] ?? '');
      const runs = (this.workflowRuns.get(repo) ?? []).filter(
        (r) => r.head_branch === ref && r.status === 'completed',
      );
      const state = runs.some((r) => r.conclusion === 'failure')
        ? 'failure'
        : runs.length > 0
          ? 'success'
          : 'pending';
      return { status: 200, body: { state, total_count: runs.length, statuses: [] } };
    }
    return notFound;
  }

  private page<T>(items: T[], q: URLSearchParams): T[] {
    const per = Number(q.get('per_page') ?? 30);
    const page = Number(q.get('page') ?? 1);
    return items.slice((page - 1) * per, page * per);
  }

  private issueJson(repo: string, i: FakeIssue) {
    return {
      number: i.number,
      title: i.title,
      body: i.body,
      state: i.state,
      html_url: `https://github.com/${repo}/issues/${i.number}`,
      labels: i.labels.map((name) => ({ name })),
      user: { login: i.user },
      ...(i.pullRequest
        ? { pull_request: { url: `https://api.github.com/repos/${repo}/pulls/${i.number}` } }
        : {}),
    };
  }

  private commentJson(c: FakeComment) {
    return {
      id: c.id,
      body: c.body,
      html_url: `https://github.com/${c.repo}/issues/${c.issue}#issuecomment-${c.id}`,
      user: { login: c.user },
    };
  }
}

export type { ScriptedResponse };
