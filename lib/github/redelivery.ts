import { logger } from '../common/observability.ts';
import type { RunStore } from '../engine/ports.ts';
import {
  GITHUB_REDELIVERY_WINDOW_HOURS,
  type HookTarget,
  type RedeliveryConfig,
} from '../routing/recovery-config.ts';
import type { GitHubClientFactory } from './client.ts';

/**
 * The redelivery sweep. GitHub does not redeliver a failed webhook delivery by itself; it keeps
 * each delivery for 3 days, during which `POST …/deliveries/{id}/attempts` sends it again with
 * the same `X-GitHub-Delivery` (so our idempotency keys make a copy that did get through
 * harmless). The sweep:
 *
 * 1. lists the hook's deliveries newest first (`GET /app/hook/deliveries` with the App's JWT, or
 *    a repository's / organisation's hook), following the `Link: rel="next"` cursor, and stops at
 *    the window's edge or after `maxPages`;
 * 2. groups attempts by `guid` (a redelivery is a new attempt with the same guid): a guid with any
 *    2xx attempt got through;
 * 3. claims each failed guid in KV (`redelivery/<guid>`, a conditional first write), then asks for
 *    one redelivery. The claim is what makes it "at most once": a later sweep, a concurrent
 *    sweeper, or our own redelivery failing again never asks twice. A request that GitHub did not
 *    take (5xx, network) gives the claim back, so the next sweep tries again; a refusal (4xx, e.g.
 *    too old) keeps it.
 *
 * One sweep per `everyMinutes` across all sweepers: a KV marker with a conditional write.
 */

export const REDELIVERY_GROUP = 'redelivery';
const SWEEP_KEY = 'sweep';
const DAY_S = 86_400;
/** Stay clear of the window's far edge: GitHub refuses a delivery that ages out mid-sweep. */
const EDGE_MARGIN_MS = 10 * 60_000;

/** One attempt as `GET …/hook/deliveries` lists it (GitHub's "simple webhook delivery"). */
export interface HookDelivery {
  id: number;
  guid: string;
  delivered_at: string;
  redelivery: boolean;
  duration?: number;
  status: string;
  status_code: number;
  event: string;
  action: string | null;
  installation_id?: number | null;
  repository_id?: number | null;
}

/** What the sweep recorded for a guid it redelivered. */
export interface RedeliveryRecord {
  guid: string;
  deliveryId: number;
  event: string;
  action: string | null;
  statusCode: number;
  deliveredAt: string;
  redeliveredAt: string;
  outcome: 'requested' | 'refused';
  status?: number;
}

export interface RedeliveryReport {
  /** Why nothing was listed (dry-run, disabled, not due, credentials). */
  skipped?: string;
  listed: number;
  failed: number;
  redelivered: number;
  /** Failed guids already redelivered earlier (or claimed by a concurrent sweeper). */
  already: number;
  refused: number;
  errors: number;
}

export interface RedeliveryDeps {
  github: GitHubClientFactory;
  store: RunStore;
  config: RedeliveryConfig;
  now?: () => Date;
}

const ok = (code: number) => code >= 200 && code < 300;

function hookRoutes(hook: HookTarget): {
  list: string;
  attempt: string;
  params: Record<string, unknown>;
  label: string;
} {
  if (hook === 'app')
    return {
      list: 'GET /app/hook/deliveries',
      attempt: 'POST /app/hook/deliveries/{delivery_id}/attempts',
      params: {},
      label: 'app',
    };
  if ('repo' in hook) {
    const [owner, repo] = hook.repo.split('/');
    return {
      list: 'GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries',
      attempt: 'POST /repos/{owner}/{repo}/hooks/{hook_id}/deliveries/{delivery_id}/attempts',
      params: { owner, repo, hook_id: hook.id },
      label: `${hook.repo} hook ${hook.id}`,
    };
  }
  return {
    list: 'GET /orgs/{org}/hooks/{hook_id}/deliveries',
    attempt: 'POST /orgs/{org}/hooks/{hook_id}/deliveries/{delivery_id}/attempts',
    params: { org: hook.org, hook_id: hook.id },
    label: `${hook.org} hook ${hook.id}`,
  };
}

/** The `cursor` of the `rel="next"` link, if there is a next page. */
export function nextCursor(link: string | undefined): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(',')) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part);
    if (m?.[1]) return new URL(m[1], 'https://api.github.com').searchParams.get('cursor') ?? undefined;
  }
  return undefined;
}

const statusOf = (err: unknown) =>
  typeof (err as { status?: unknown }).status === 'number' ? (err as { status: number }).status : 0;

/** Whether this sweeper is the one to sweep now (at most once per `everyMinutes` across all). */
async function due(store: RunStore, everyMs: number, now: Date): Promise<boolean> {
  const last = await store.kvGet<{ at: string }>(REDELIVERY_GROUP, SWEEP_KEY);
  if (last && now.getTime() - Date.parse(last.value.at) < everyMs) return false;
  return store.kvPut(
    REDELIVERY_GROUP,
    SWEEP_KEY,
    { at: now.toISOString() },
    { expectedVersion: last?.version ?? 0, ttl: Math.floor(now.getTime() / 1000) + DAY_S },
  );
}

export async function sweepRedeliveries(deps: RedeliveryDeps): Promise<RedeliveryReport> {
  const report: RedeliveryReport = {
    listed: 0,
    failed: 0,
    redelivered: 0,
    already: 0,
    refused: 0,
    errors: 0,
  };
  const cfg = deps.config;
  const now = (deps.now ?? (() => new Date()))();
  if (!cfg.enabled) return { ...report, skipped: 'disabled' };
  if (deps.github.dryRun) return { ...report, skipped: 'dry-run: no GitHub credentials' };
  if (cfg.hook === 'app' && deps.github.mode !== 'app')
    return {
      ...report,
      skipped: "the App's hook needs GitHub App credentials (set recovery.redelivery.hook)",
    };
  if (!(await due(deps.store, cfg.everyMinutes * 60_000, now))) return { ...report, skipped: 'not due' };

  const routes = hookRoutes(cfg.hook);
  const octokit = await deps.github.octokitForHook(
    cfg.hook === 'app' ? 'app' : 'repo' in cfg.hook ? { repo: cfg.hook.repo } : { org: cfg.hook.org },
  );
  const windowMs = Math.min(cfg.windowHours, GITHUB_REDELIVERY_WINDOW_HOURS) * 3_600_000;
  const oldest =
    now.getTime() - Math.min(windowMs, GITHUB_REDELIVERY_WINDOW_HOURS * 3_600_000 - EDGE_MARGIN_MS);

  // Newest first: a guid's later attempts (redeliveries) are seen before its first one.
  const byGuid = new Map<string, HookDelivery[]>();
  let cursor: string | undefined;
  for (let page = 0; page < cfg.maxPages; page++) {
    const res = await octokit.request(routes.list, {
      ...routes.params,
      per_page: 100,
      ...(cursor ? { cursor } : {}),
    });
    const items = res.data as HookDelivery[];
    let past = false;
    for (const d of items) {
      if (Date.parse(d.delivered_at) < oldest) {
        past = true;
        continue;
      }
      report.listed++;
      const list = byGuid.get(d.guid) ?? [];
      list.push(d);
      byGuid.set(d.guid, list);
    }
    cursor = nextCursor(res.headers.link);
    if (past || !cursor || items.length === 0) break;
  }

  const failed = [...byGuid.values()].filter((attempts) => !attempts.some((a) => ok(a.status_code)));
  report.failed = failed.length;
  const ttl = Math.floor(now.getTime() / 1000) + 4 * DAY_S;
  for (const attempts of failed) {
    if (report.redelivered + report.refused >= cfg.maxPerSweep) break;
    // The newest attempt: GitHub redelivers any attempt of a guid as the same delivery.
    const d = attempts[0]!;
    const record: RedeliveryRecord = {
      guid: d.guid,
      deliveryId: d.id,
      event: d.event,
      action: d.action,
      statusCode: d.status_code,
      deliveredAt: d.delivered_at,
      redeliveredAt: now.toISOString(),
      outcome: 'requested',
    };
    if (!(await deps.store.kvPut(REDELIVERY_GROUP, d.guid, record, { expectedVersion: 0, ttl }))) {
      report.already++;
      continue;
    }
    try {
      await octokit.request(routes.attempt, { ...routes.params, delivery_id: d.id });
      report.redelivered++;
      logger.info('webhook redelivered', {
        hook: routes.label,
        guid: d.guid,
        deliveryId: d.id,
        event: d.event,
        action: d.action,
        statusCode: d.status_code,
        deliveredAt: d.delivered_at,
      });
    } catch (err) {
      const status = statusOf(err);
      if (status >= 400 && status < 500 && status !== 429) {
        // GitHub will not take it (too old, gone): keep the claim, note why.
        report.refused++;
        await deps.store.kvPut(REDELIVERY_GROUP, d.guid, { ...record, outcome: 'refused', status }, { ttl });
        logger.warn('webhook redelivery refused', { hook: routes.label, guid: d.guid, status });
      } else {
        // Not taken: give the claim back so the next sweep asks again.
        report.errors++;
        await deps.store.kvDelete(REDELIVERY_GROUP, d.guid);
        logger.warn('webhook redelivery failed', {
          hook: routes.label,
          guid: d.guid,
          status,
          error: (err as Error).message,
        });
      }
    }
  }
  return report;
}
