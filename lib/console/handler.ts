import { createHmac, randomBytes } from 'node:crypto';
import type { Workloads } from '../agents/work-queue.ts';
import type { Signal } from '../engine/engine.ts';
import { InvalidSignalError, StaleApprovalError } from '../engine/errors.ts';
import type { RunStore } from '../engine/ports.ts';
import { type NewEvent, RUN_STATUSES, type Run, type RunStatus } from '../engine/types.ts';
import type { Workflow } from '../engine/workflow.ts';
import type { Endpoint, HttpRequest, HttpResponse } from '../http/request.ts';
import {
  createSession,
  readSession,
  redeemLinkToken,
  type Session,
  sameToken,
  sessionCookie,
} from './access.ts';
import { ASSETS, etagOf } from './assets.ts';
import {
  CONSOLE_ACTIONS,
  type ConsoleAction,
  type PolicyDocument,
  type Rights,
  rightsFor,
} from './rights.ts';
import {
  type ListFilters,
  type ListModel,
  type RunModel,
  renderContinuePage,
  renderListLive,
  renderListPage,
  renderMessagePage,
  renderRunLive,
  renderRunPage,
} from './view.ts';

/**
 * The run console over API Gateway v2 events (the Lambda function and the local stack serve the
 * same code):
 *
 * | route | what |
 * |---|---|
 * | `GET /console` | run list (filters `status`, `repo`, `workflow`) and agent workloads |
 * | `GET /console/live` | the list's live part, for the page script (ETag / 304) |
 * | `GET /console/runs/{id}` | one run: facts, graph, gate, plan and tasks, Actions links, history |
 * | `GET /console/runs/{id}/live` | its live part |
 * | `POST /console/runs/{id}/actions` | approve (bound to the plan version shown), reject, cancel, retry |
 * | `GET /console/static/{file}` | the script and the stylesheet (no inline code: strict CSP) |
 * | `GET /console/auth?token=` | redeem a signed Discord link for a session cookie, then open `/console` |
 *
 * Access is `loopback` (the local stack: requests from and addressed to loopback only, no sign-in)
 * or `session` (AWS: a session from a signed link, else 401 without data). A run the viewer may
 * not see is answered exactly like a run that does not exist.
 */

export interface ConsoleEngine {
  signal(runId: string, signal: Signal): Promise<Run>;
  recordEvent(runId: string, event: NewEvent): Promise<void>;
  workflows: { get(name: string): Workflow<unknown> | undefined; names(): string[] };
}

export type ConsoleAccess = { mode: 'loopback' } | { mode: 'session'; linkKeys: () => Promise<string[]> };

export interface ConsoleDeps {
  store: Pick<RunStore, 'getRun' | 'listRuns' | 'listEvents' | 'kvGet' | 'kvPut' | 'kvDelete'>;
  engine: ConsoleEngine;
  /** The Discord policy document (the config's `discord` section), for rights on AWS. */
  policy: () => Promise<PolicyDocument>;
  access: ConsoleAccess;
  workloads?: () => Promise<Workloads>;
  now?: () => Date;
}

const RUN_ID = /^[A-Za-z0-9_-]{1,64}$/;
const REPO = /^[\w.-]+\/[\w.-]+$/;
const MAX_FORM_BYTES = 16 * 1024;
const LIST_READ = 100;
const LIST_SHOWN = 50;

/** No inline script or style anywhere; forms post only to us; nobody may frame the console. */
export const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
  "form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const SECURITY_HEADERS = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  // same-origin, not no-referrer: with no-referrer Chromium sends `Origin: null` on form posts.
  'referrer-policy': 'same-origin',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};

function htmlResponse(status: number, body: string, extra: Record<string, string> = {}): HttpResponse {
  return {
    statusCode: status,
    headers: { 'content-type': 'text/html; charset=utf-8', ...SECURITY_HEADERS, ...extra },
    body,
  };
}

const message = (status: number, title: string, text: string) =>
  htmlResponse(status, renderMessagePage(title, text));

const redirect = (location: string, extra: Record<string, string> = {}): HttpResponse => ({
  statusCode: 303,
  headers: { location, ...SECURITY_HEADERS, ...extra },
  body: '',
});

function isLoopbackAddress(ip: string | undefined): boolean {
  return ip === '127.0.0.1' || ip === '::1' || ip === '::ffff:127.0.0.1';
}

/** Host header names that are loopback: a DNS-rebound name is refused even from a local browser. */
function isLoopbackHost(host: string | undefined): boolean {
  if (!host) return false;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0];
  return name === '127.0.0.1' || name === 'localhost' || name === '[::1]';
}

interface Viewer {
  rights: Rights;
  csrf: string;
}

export function makeConsole(deps: ConsoleDeps): Endpoint {
  const now = deps.now ?? (() => new Date());
  // Loopback has no session to hold a CSRF token: one per process, bound to nothing a page can guess.
  const localCsrf = createHmac('sha256', randomBytes(32)).update('console-csrf').digest('base64url');

  async function viewerOf(event: HttpRequest): Promise<Viewer | { reply: HttpResponse }> {
    if (deps.access.mode === 'loopback') {
      if (!isLoopbackAddress(event.sourceIp) || !isLoopbackHost(event.headers.host))
        return {
          reply: message(403, 'Loopback only', 'The local console answers requests from this machine only.'),
        };
      return { rights: rightsFor({ kind: 'local' }, undefined), csrf: localCsrf };
    }
    const session: Session | null = await readSession(deps.store, event.cookies, now());
    if (!session)
      return {
        reply: message(
          401,
          'Sign in from Discord',
          'Use /status in Discord and its "Open in browser" link to open the console.',
        ),
      };
    const rights = rightsFor(
      {
        kind: 'discord',
        userId: session.userId,
        roles: session.roles,
        ...(session.channelId ? { channelId: session.channelId } : {}),
      },
      await deps.policy(),
    );
    return { rights, csrf: session.csrf };
  }

  async function visibleRun(id: string, rights: Rights): Promise<Run | null> {
    if (!RUN_ID.test(id)) return null;
    const run = await deps.store.getRun(id);
    return run && rights.sees(run.subject.repo) ? run : null;
  }

  function filtersOf(event: HttpRequest): ListFilters | { reply: HttpResponse } {
    const q = event.query;
    const f: ListFilters = {};
    if (q.status) {
      if (!RUN_STATUSES.includes(q.status as RunStatus))
        return { reply: message(400, 'Bad filter', `status must be one of ${RUN_STATUSES.join(', ')}`) };
      f.status = q.status;
    }
    if (q.repo) {
      if (!REPO.test(q.repo)) return { reply: message(400, 'Bad filter', 'repo must be owner/name') };
      f.repo = q.repo;
    }
    if (q.workflow) {
      if (!deps.engine.workflows.names().includes(q.workflow))
        return { reply: message(400, 'Bad filter', 'no such workflow') };
      f.workflow = q.workflow;
    }
    return f;
  }

  async function listModel(f: ListFilters, rights: Rights): Promise<ListModel> {
    const [runs, workloads] = await Promise.all([
      deps.store.listRuns({
        limit: LIST_READ,
        ...(f.status ? { status: f.status as RunStatus } : {}),
        ...(f.repo ? { repo: f.repo } : {}),
      }),
      // Workloads are a nice-to-have next to the runs: never fail the page for them.
      deps.workloads?.().catch(() => undefined),
    ]);
    const shown = runs
      .filter((r) => rights.sees(r.subject.repo) && (!f.workflow || r.workflow === f.workflow))
      .slice(0, LIST_SHOWN);
    const visibleWork = workloads && {
      queue: workloads.queue,
      agents: workloads.agents.map((a) => ({ ...a, items: a.items.filter((i) => rights.sees(i.repo)) })),
    };
    return {
      runs: shown,
      filters: f,
      workflows: deps.engine.workflows.names(),
      ...(visibleWork ? { workloads: visibleWork } : {}),
      rights,
      now: now(),
    };
  }

  async function runModel(run: Run, v: Viewer, result?: string): Promise<RunModel> {
    const events = await deps.store.listEvents(run.id, { version: run.version });
    return {
      run,
      events,
      workflow: deps.engine.workflows.get(run.workflow),
      rights: v.rights,
      csrf: v.csrf,
      now: now(),
      ...(result ? { result } : {}),
    };
  }

  /** A live part: 304 when the browser already has this body. */
  function live(event: HttpRequest, body: string): HttpResponse {
    const etag = etagOf(body);
    if (event.headers['if-none-match'] === etag)
      return { statusCode: 304, headers: { etag, ...SECURITY_HEADERS }, body: '' };
    return htmlResponse(200, body, { etag });
  }

  async function exchange(event: HttpRequest): Promise<HttpResponse> {
    if (deps.access.mode === 'loopback') return redirect('/console');
    const token = event.query.token ?? '';
    const grant = await redeemLinkToken(deps.store, await deps.access.linkKeys(), token, now());
    if (!grant)
      return message(
        401,
        'Link not valid',
        'This link has expired, was already used, or is not ours. Ask /status again.',
      );
    const { id } = await createSession(deps.store, grant, now());
    // Not a 303: the link is opened from Discord, and a redirect in that cross-site navigation
    // would not carry a SameSite=Strict cookie. A same-origin refresh from this page does, and
    // replaces the URL holding the (now spent) token; no-referrer keeps it out of that request.
    return htmlResponse(200, renderContinuePage('/console'), {
      'set-cookie': sessionCookie(id),
      'referrer-policy': 'no-referrer',
    });
  }

  /** Same-origin checks on top of the CSRF token: a cross-site form post is refused before parsing. */
  function crossSite(event: HttpRequest): boolean {
    const site = event.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin') return true;
    const origin = event.headers.origin;
    if (origin === undefined) return false;
    try {
      return new URL(origin).host !== event.headers.host;
    } catch {
      return true;
    }
  }

  async function act(event: HttpRequest, runId: string, v: Viewer): Promise<HttpResponse> {
    if (crossSite(event)) return message(403, 'Refused', 'Cross-site request.');
    const type = (event.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded') return message(415, 'Bad request', 'Send a form.');
    const body = event.body;
    if (event.bodyProblem === 'too-large' || body.length > MAX_FORM_BYTES)
      return message(413, 'Too large', 'The form is too large.');
    const form = new URLSearchParams(body.toString('utf8'));
    if (!sameToken(form.get('csrf') ?? undefined, v.csrf))
      return message(403, 'Refused', 'The form is stale or not from this console. Reload the page.');
    const action = form.get('action') as ConsoleAction | null;
    if (!action || !CONSOLE_ACTIONS.includes(action)) return message(400, 'Bad request', 'Unknown action.');
    const run = await visibleRun(runId, v.rights);
    if (!run) return message(404, 'Not found', 'No such run.');
    const by = v.rights.by;
    const audit = { action, via: 'console', requestId: event.requestId ?? null };
    if (!v.rights.may(action, run.subject.repo)) {
      await deps.engine.recordEvent(run.id, {
        type: 'console.refused',
        by,
        detail: { ...audit, reason: `no ${action} rights` },
      });
      return message(403, 'Refused', `You may not ${action} this run.`);
    }
    let signal: Signal;
    if (action === 'approve') {
      const binding = form.get('binding') || undefined;
      // Approval binds to what the page showed: a form without the plan version is not an approval.
      if (run.gate?.binding !== undefined && binding === undefined)
        return message(400, 'Bad request', 'An approval must name the plan version it approves.');
      signal = { type: 'approve', by, ...(binding !== undefined ? { binding } : {}) };
    } else if (action === 'reject') {
      const reason = (form.get('reason') ?? '').trim().slice(0, 500);
      signal = { type: 'reject', by, reason: reason || 'rejected from the console' };
    } else if (action === 'cancel') signal = { type: 'cancel', by, reason: 'cancelled from the console' };
    else signal = { type: 'retry', by };
    let result: string;
    try {
      await deps.engine.signal(run.id, signal);
      result = { approve: 'approved', reject: 'rejected', cancel: 'cancelled', retry: 'retried' }[action];
      await deps.engine.recordEvent(run.id, { type: 'console.action', by, detail: audit });
    } catch (err) {
      if (err instanceof StaleApprovalError) result = 'stale';
      else if (err instanceof InvalidSignalError) result = 'invalid';
      else throw err;
    }
    return redirect(`/console/runs/${run.id}?result=${result}`);
  }

  return async (event) => {
    const { method, path } = event;

    const asset = /^\/console\/static\/([\w.-]+)$/.exec(path);
    if (asset) {
      const a = ASSETS[asset[1]!];
      if (!a || method !== 'GET') return message(404, 'Not found', 'No such file.');
      if (event.headers['if-none-match'] === a.etag)
        return { statusCode: 304, headers: { etag: a.etag }, body: '' };
      return {
        statusCode: 200,
        headers: {
          'content-type': a.type,
          etag: a.etag,
          'cache-control': 'no-cache',
          'x-content-type-options': 'nosniff',
        },
        body: a.body,
      };
    }
    if (path === '/console/auth') {
      if (method !== 'GET') return message(405, 'Method not allowed', 'GET only.');
      return exchange(event);
    }

    const viewer = await viewerOf(event);
    if ('reply' in viewer) return viewer.reply;

    if (path === '/console' || path === '/console/' || path === '/console/live') {
      if (method !== 'GET') return message(405, 'Method not allowed', 'GET only.');
      const f = filtersOf(event);
      if ('reply' in f) return f.reply;
      const model = await listModel(f, viewer.rights);
      return path === '/console/live'
        ? live(event, renderListLive(model))
        : htmlResponse(200, renderListPage(model));
    }
    const m = /^\/console\/runs\/([^/]+)(\/live|\/actions)?$/.exec(path);
    if (m) {
      const id = m[1]!;
      if (m[2] === '/actions') {
        if (method !== 'POST') return message(405, 'Method not allowed', 'POST only.');
        return act(event, id, viewer);
      }
      if (method !== 'GET') return message(405, 'Method not allowed', 'GET only.');
      const run = await visibleRun(id, viewer.rights);
      if (!run) return message(404, 'Not found', 'No such run.');
      const result = event.query.result;
      const model = await runModel(run, viewer, m[2] ? undefined : result);
      return m[2] ? live(event, renderRunLive(model)) : htmlResponse(200, renderRunPage(model));
    }
    return message(404, 'Not found', 'No such page.');
  };
}
