import type { RunStore } from '../engine/ports.ts';
import { RUN_STATUSES, type RunStatus, toPublicRun } from '../engine/types.ts';
import { type Endpoint, type HttpResponse, json } from '../http/request.ts';

export interface RunsApiDeps {
  store: RunStore;
  version: string;
  /** Extra facts for /runs (queue depth, agent workloads) when the agents module provides them. */
  workloads?: () => Promise<Record<string, unknown>>;
  now?: () => Date;
}

/** Events per page of GET /runs/{id} (default and most). */
const EVENTS_PAGE = 500;
const EVENTS_PAGE_MAX = 1000;

function problem(statusCode: number, error: string, detail?: string): HttpResponse {
  return json(statusCode, { error, ...(detail ? { detail } : {}) });
}

/**
 * GET /health, GET /runs, GET /runs/{id}. On AWS the /runs routes are IAM-authorized at the API;
 * this code does not repeat that check.
 */
export function makeRunsApi(deps: RunsApiDeps): Endpoint {
  const now = deps.now ?? (() => new Date());
  return async (req) => {
    const { method, path } = req;
    if (method !== 'GET') return problem(405, 'method not allowed');

    if (path === '/health') {
      try {
        await deps.store.kvGet('health', 'ping');
        return json(200, {
          status: 'ok',
          version: deps.version,
          timestamp: now().toISOString(),
          checks: { store: 'ok' },
        });
      } catch (err) {
        return json(503, {
          status: 'degraded',
          version: deps.version,
          timestamp: now().toISOString(),
          checks: { store: (err as Error).name },
        });
      }
    }

    if (path === '/runs' || path === '/runs/') {
      const q = req.query;
      const status = q.status || undefined;
      if (status !== undefined && !RUN_STATUSES.includes(status as RunStatus)) {
        return problem(400, 'invalid status', `status must be one of ${RUN_STATUSES.join(', ')}`);
      }
      let limit = 50;
      if (q.limit !== undefined && q.limit !== '') {
        limit = Number(q.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 500) {
          return problem(400, 'invalid limit', 'limit must be an integer from 1 to 500');
        }
      }
      const repo = q.repo || undefined;
      if (repo !== undefined && !/^[\w.-]+\/[\w.-]+$/.test(repo)) {
        return problem(400, 'invalid repo', 'repo must be owner/name');
      }
      const runs = await deps.store.listRuns({
        limit,
        ...(status ? { status: status as RunStatus } : {}),
        ...(repo ? { repo } : {}),
        ...(q.subject ? { subject: q.subject } : {}),
      });
      const extra = deps.workloads ? await deps.workloads() : {};
      return json(200, { runs: runs.map(toPublicRun), ...extra });
    }

    const m = /^\/runs\/([A-Za-z0-9_-]{1,64})$/.exec(path);
    if (m?.[1]) {
      // Events come a page at a time (`?after=<seq>&limit=`), so a long history never pushes the
      // response past Lambda's 6 MB: `nextAfter` is the cursor of the next page, when there is one.
      const q = req.query;
      let limit = EVENTS_PAGE;
      if (q.limit !== undefined && q.limit !== '') {
        limit = Number(q.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > EVENTS_PAGE_MAX) {
          return problem(400, 'invalid limit', `limit must be an integer from 1 to ${EVENTS_PAGE_MAX}`);
        }
      }
      let after: number | undefined;
      if (q.after !== undefined && q.after !== '') {
        after = Number(q.after);
        if (!Number.isFinite(after) || after < 0) {
          return problem(400, 'invalid after', 'after must be the seq of an event already seen');
        }
      }
      const run = await deps.store.getRun(m[1]);
      if (!run) return problem(404, 'run not found');
      const page = await deps.store.listEvents(run.id, {
        version: run.version,
        limit: limit + 1,
        ...(after !== undefined ? { after } : {}),
      });
      const events = page.slice(0, limit);
      const last = events[events.length - 1];
      return json(200, {
        run: toPublicRun(run),
        events: events.map((e) => ({
          seq: e.seq,
          at: e.at,
          type: e.type,
          ...(e.node !== undefined ? { node: e.node } : {}),
          ...(e.by !== undefined ? { by: e.by } : {}),
          detail: e.detail,
        })),
        ...(page.length > limit && last ? { nextAfter: last.seq } : {}),
      });
    }
    return problem(404, 'not found');
  };
}
