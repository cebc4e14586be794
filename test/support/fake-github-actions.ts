import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { FakeGitHub, type RecordedRequest } from './fake-github.ts';

/**
 * GitHub Actions, played on loopback in front of FakeGitHub (which answers everything else):
 * workflow dispatches that create workflow runs named by the workflow's `run-name`
 * (`switchyard <switchyard_run>`), listing runs with their `display_title`, cancelling them,
 * a run's jobs, and job logs (a 302 to a plain-text file, as GitHub does). It also builds the
 * `workflow_run` webhook payloads those runs would send.
 */

export interface FakeActionsRun {
  id: number;
  repo: string;
  workflow: string;
  name: string;
  display_title: string;
  head_branch: string;
  head_sha: string;
  event: string;
  status: 'queued' | 'in_progress' | 'completed';
  conclusion: string | null;
  created_at: string;
  updated_at: string;
  html_url: string;
  inputs: Record<string, string>;
}

export interface FakeJob {
  id: number;
  name: string;
  conclusion: string | null;
  status: string;
  log: string;
}

export class FakeGitHubActions {
  readonly github: FakeGitHub;
  readonly runs: FakeActionsRun[] = [];
  readonly jobs = new Map<number, FakeJob[]>();
  readonly cancelled: number[] = [];
  /** Pull requests by `<repo>#<number>` (what an agent opened): their head branch and SHA. */
  readonly pulls = new Map<
    string,
    { number: number; head: { ref: string; sha: string }; html_url: string; state: string }
  >();
  readonly requests: RecordedRequest[] = [];
  /** `run-name` as a function of the inputs; default `switchyard <switchyard_run>`. */
  runName: (inputs: Record<string, string>) => string = (i) => `switchyard ${i.switchyard_run ?? ''}`;
  /**
   * How dispatches treat `return_run_details`: `return` (GitHub since 2026-02: 200 with the run's
   * id and URLs), `ignore` (204, as before), `refuse` (422 naming the parameter, as older GitHub
   * Enterprise Server does; nothing is dispatched).
   */
  runDetails: 'return' | 'ignore' | 'refuse' = 'return';
  /** Called with each new dispatched run before the dispatch is answered (the caller is mid-request). */
  onDispatch: ((run: FakeActionsRun) => Promise<void>) | undefined;
  private server: Server | undefined;
  private nextId = 9_000_000;
  private nextIssue = 500;
  url = '';

  constructor(github?: FakeGitHub) {
    this.github = github ?? new FakeGitHub();
  }

  async start(): Promise<this> {
    if (!this.github.url) await this.github.start();
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
    await this.github.stop();
  }

  /** Every dispatch received (this fake's and the inner fake's records). */
  get dispatches(): FakeActionsRun[] {
    return this.runs.filter((r) => r.event === 'workflow_dispatch');
  }

  /** A completed or failed push run of a workflow on a branch (for CI triage). */
  addRun(repo: string, over: Partial<FakeActionsRun> = {}): FakeActionsRun {
    const at = new Date().toISOString();
    const id = this.nextId++;
    const run: FakeActionsRun = {
      id,
      repo,
      workflow: 'ci.yml',
      name: 'CI',
      display_title: 'CI',
      head_branch: 'main',
      head_sha: 'a'.repeat(40),
      event: 'push',
      status: 'completed',
      conclusion: 'failure',
      created_at: at,
      updated_at: at,
      html_url: `https://github.com/${repo}/actions/runs/${id}`,
      inputs: {},
      ...over,
    };
    this.runs.push(run);
    return run;
  }

  /** A pull request as an agent's push would leave it (a new push: call again with the new SHA). */
  openPull(repo: string, number: number, branch: string, sha: string) {
    const pr = {
      number,
      head: { ref: branch, sha },
      html_url: `https://github.com/${repo}/pull/${number}`,
      state: 'open',
    };
    this.pulls.set(`${repo}#${number}`, pr);
    return pr;
  }

  /** Move a run on, like GitHub would (the test then delivers the matching webhook). */
  finish(run: FakeActionsRun, conclusion: string): FakeActionsRun {
    run.status = 'completed';
    run.conclusion = conclusion;
    run.updated_at = new Date().toISOString();
    return run;
  }

  /** The `workflow_run` webhook payload GitHub would send for `run`. */
  payload(run: FakeActionsRun, action: 'requested' | 'in_progress' | 'completed' = 'completed') {
    const [owner = '', name = ''] = run.repo.split('/');
    return {
      action,
      workflow_run: {
        id: run.id,
        name: run.name,
        display_title: run.display_title,
        head_branch: run.head_branch,
        head_sha: run.head_sha,
        path: `.github/workflows/${run.workflow}`,
        event: run.event,
        status:
          action === 'completed' ? 'completed' : run.status === 'completed' ? 'in_progress' : run.status,
        conclusion: action === 'completed' ? run.conclusion : null,
        workflow_id: 4242,
        run_number: 1,
        created_at: run.created_at,
        updated_at: run.updated_at,
        html_url: run.html_url,
      },
      workflow: { id: 4242, name: run.name, path: `.github/workflows/${run.workflow}` },
      repository: {
        id: 1,
        name,
        full_name: run.repo,
        owner: { login: owner },
        default_branch: 'main',
        private: false,
      },
      sender: { login: 'octocat', type: 'User' },
      installation: { id: 77 },
    };
  }

  /** A run as the REST API returns it (the webhook's `workflow_run` has the same fields). */
  restRun(run: FakeActionsRun) {
    return {
      id: run.id,
      name: run.name,
      display_title: run.display_title,
      head_branch: run.head_branch,
      head_sha: run.head_sha,
      path: `.github/workflows/${run.workflow}`,
      event: run.event,
      status: run.status,
      conclusion: run.conclusion,
      workflow_id: 4242,
      run_number: 1,
      created_at: run.created_at,
      updated_at: run.updated_at,
      html_url: run.html_url,
    };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const method = (req.method ?? 'GET').toUpperCase();
    const path = req.url ?? '/';
    let body: unknown;
    try {
      body = raw.length > 0 ? JSON.parse(raw.toString('utf8')) : undefined;
    } catch {
      body = raw.toString('utf8');
    }
    const send = (status: number, payload?: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(payload === undefined ? '' : JSON.stringify(payload));
    };
    const url = new URL(path, 'http://fake');
    const p = url.pathname;
    const logFile = /^\/_logs\/(\d+)$/.exec(p);
    if (logFile) {
      const job = [...this.jobs.values()].flat().find((j) => j.id === Number(logFile[1]));
      res.writeHead(job ? 200 : 404, { 'content-type': 'text/plain' });
      res.end(job?.log ?? 'Not Found');
      return;
    }
    const newIssue = method === 'POST' ? /^\/repos\/([^/]+\/[^/]+)\/issues$/.exec(p) : null;
    if (newIssue) {
      const m = newIssue;
      // Issue creation (FakeGitHub stores issues; it has no create route).
      this.requests.push({ method, path, headers: req.headers, body });
      const b = (body ?? {}) as { title?: string; body?: string; labels?: string[] };
      const number = this.nextIssue++;
      const issue = this.github.addIssue(m[1]!, {
        number,
        title: b.title ?? '',
        body: b.body ?? '',
        labels: b.labels ?? [],
        user: 'switchyard[bot]',
      });
      send(201, {
        number: issue.number,
        title: issue.title,
        body: issue.body,
        html_url: `https://github.com/${m[1]}/issues/${number}`,
      });
      return;
    }
    const pull = method === 'GET' ? /^\/repos\/([^/]+\/[^/]+)\/pulls\/(\d+)$/.exec(p) : null;
    if (pull) {
      this.requests.push({ method, path, headers: req.headers, body });
      const pr = this.pulls.get(`${pull[1]}#${pull[2]}`);
      return pr ? send(200, pr) : send(404, { message: 'Not Found' });
    }
    const actions = /^\/repos\/([^/]+\/[^/]+)\/actions\/(.*)$/.exec(p);
    const repo = actions?.[1];
    const rest = actions?.[2] ?? '';
    const route = (verb: string, re: RegExp) => (repo && method === verb ? re.exec(rest) : null);
    const dispatch = route('POST', /^workflows\/([^/]+)\/dispatches$/);
    if (repo && dispatch) {
      const m = dispatch;
      this.requests.push({ method, path, headers: req.headers, body });
      const b = (body ?? {}) as {
        ref?: string;
        inputs?: Record<string, string>;
        return_run_details?: unknown;
      };
      if (b.return_run_details !== undefined && this.runDetails === 'refuse') {
        send(422, {
          message: 'Invalid request.\n\n"return_run_details" is not a permitted key.',
          documentation_url:
            'https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event',
        });
        return;
      }
      // The inner fake keeps its own record (and may be scripted to refuse).
      const inner = await this.forward(req, method, path, raw);
      if (inner.status >= 300) {
        res.writeHead(inner.status, { 'content-type': 'application/json' });
        res.end(inner.body);
        return;
      }
      const inputs = b.inputs ?? {};
      const at = new Date().toISOString();
      const id = this.nextId++;
      const created: FakeActionsRun = {
        id,
        repo,
        workflow: decodeURIComponent(m[1] ?? ''),
        name: 'Switchyard agent',
        display_title: this.runName(inputs),
        head_branch: b.ref ?? 'main',
        head_sha: 'b'.repeat(40),
        event: 'workflow_dispatch',
        status: 'queued',
        conclusion: null,
        created_at: at,
        updated_at: at,
        html_url: `https://github.com/${repo}/actions/runs/${id}`,
        inputs,
      };
      this.runs.push(created);
      await this.onDispatch?.(created);
      if (b.return_run_details === true && this.runDetails === 'return') {
        send(200, {
          workflow_run_id: id,
          run_url: `https://api.github.com/repos/${repo}/actions/runs/${id}`,
          html_url: created.html_url,
        });
        return;
      }
      send(204);
      return;
    }
    if (repo && rest === 'runs' && method === 'GET') {
      this.requests.push({ method, path, headers: req.headers, body });
      const q = url.searchParams;
      const created = /^>=(.+)$/.exec(q.get('created') ?? '')?.[1];
      const list = this.runs
        .filter(
          (r) =>
            r.repo === repo &&
            (!created || Date.parse(r.created_at) >= Date.parse(created)) &&
            (!q.get('event') || r.event === q.get('event')) &&
            (!q.get('status') || r.status === q.get('status')) &&
            (!q.get('branch') || r.head_branch === q.get('branch')) &&
            (!q.get('head_sha') || r.head_sha === q.get('head_sha')),
        )
        .sort((a, b) => b.updated_at.localeCompare(a.updated_at))
        .map((r) => ({ ...r, workflow_id: 4242 }));
      send(200, { total_count: list.length, workflow_runs: pageOf(list, q) });
      return;
    }
    const one = route('GET', /^runs\/(\d+)$/);
    if (one) {
      this.requests.push({ method, path, headers: req.headers, body });
      const run = this.runs.find((r) => r.id === Number(one[1]) && r.repo === repo);
      if (!run) return send(404, { message: 'Not Found' });
      return send(200, this.restRun(run));
    }
    const ofWorkflow = route('GET', /^workflows\/([^/]+)\/runs$/);
    if (repo && ofWorkflow) {
      this.requests.push({ method, path, headers: req.headers, body });
      const q = url.searchParams;
      const workflow = decodeURIComponent(ofWorkflow[1] ?? '');
      // `created=>=<ISO>` (GitHub's search syntax for dates); other forms are not used by Switchyard.
      const created = /^>=(.+)$/.exec(q.get('created') ?? '')?.[1];
      const list = this.runs
        .filter(
          (r) =>
            r.repo === repo &&
            r.workflow === workflow &&
            (!q.get('event') || r.event === q.get('event')) &&
            (!q.get('status') || r.status === q.get('status')) &&
            (!created || r.created_at >= created),
        )
        .sort((a, b) => b.created_at.localeCompare(a.created_at))
        .map((r) => this.restRun(r));
      send(200, { total_count: list.length, workflow_runs: pageOf(list, q) });
      return;
    }
    const cancel = route('POST', /^runs\/(\d+)\/cancel$/);
    if (cancel) {
      this.requests.push({ method, path, headers: req.headers, body });
      const run = this.runs.find((r) => r.id === Number(cancel[1]) && r.repo === repo);
      if (!run) return send(404, { message: 'Not Found' });
      if (run.status === 'completed')
        return send(409, { message: 'Cannot cancel a workflow run that is completed.' });
      this.cancelled.push(run.id);
      this.finish(run, 'cancelled');
      send(202, {});
      return;
    }
    const jobList = route('GET', /^runs\/(\d+)\/jobs$/);
    if (jobList) {
      this.requests.push({ method, path, headers: req.headers, body });
      const runId = Number(jobList[1]);
      const jobs = (this.jobs.get(runId) ?? []).map(({ log: _log, ...j }) => ({ ...j, run_id: runId }));
      send(200, { total_count: jobs.length, jobs });
      return;
    }
    const jobLog = route('GET', /^jobs\/(\d+)\/logs$/);
    if (jobLog) {
      this.requests.push({ method, path, headers: req.headers, body });
      res.writeHead(302, { location: `${this.url}/_logs/${jobLog[1]}` });
      res.end();
      return;
    }
    const inner = await this.forward(req, method, path, raw);
    res.writeHead(inner.status, inner.headers);
    res.end(inner.body);
  }

  private async forward(
    req: IncomingMessage,
    method: string,
    path: string,
    raw: Buffer,
  ): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined || k === 'host' || k === 'content-length' || k === 'connection') continue;
      headers[k] = Array.isArray(v) ? v.join(',') : v;
    }
    const res = await fetch(`${this.github.url}${path}`, {
      method,
      headers,
      ...(raw.length > 0 && method !== 'GET' && method !== 'HEAD' ? { body: raw } : {}),
    });
    const out: Record<string, string> = {};
    res.headers.forEach((v, k) => {
      if (k !== 'content-length' && k !== 'transfer-encoding' && k !== 'connection') out[k] = v;
    });
    return { status: res.status, headers: out, body: Buffer.from(await res.arrayBuffer()) };
  }
}

/** One page of a listing, as GitHub pages it: `per_page` (default 30, at most 100) and `page` (from 1). */
function pageOf<T>(list: T[], q: URLSearchParams): T[] {
  const perPage = Math.min(100, Math.max(1, Number(q.get('per_page') ?? 30) || 30));
  const page = Math.max(1, Number(q.get('page') ?? 1) || 1);
  return list.slice((page - 1) * perPage, page * perPage);
}
