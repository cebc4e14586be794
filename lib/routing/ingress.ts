import { logger } from '../common/observability.ts';
import type { StartRunInput, StartRunResult } from '../engine/engine.ts';
import { RunConflictError } from '../engine/errors.ts';
import type { Subject } from '../engine/types.ts';
import type { GitHubClientFactory } from '../github/client.ts';
import { eventKey, type NormalizedEvent } from '../github/events.ts';
import type { Delivery, DeliveryOutcome } from '../github/webhook.ts';
import type { RunStore } from '../store/port.ts';
import { isCiSignal, recordCiSignal } from './guards.ts';
import type { ConfigProvider } from './repo-config.ts';
import { decide, type RoutingDecision } from './rules.ts';

/**
 * What a verified GitHub delivery does, inside the webhook request. Everything here is cheap:
 * cached config, one pure routing decision, at most one KV write (guard state) or one
 * `engine.startRun` (one DynamoDB transaction and one queue send). Anything that needs the
 * GitHub API (per-repo config fetch, PR files, CI confirmation) happens in the worker's route node.
 */

/** A hook that may claim a delivery first (e.g. the GitHub Actions executor resuming a run on `workflow_run`). */
export type DeliveryHook = (delivery: Delivery) => Promise<DeliveryOutcome | undefined>;

export interface IngressDeps {
  engine: { startRun(input: StartRunInput): Promise<StartRunResult> };
  config: ConfigProvider;
  store: RunStore;
  /** Installation ids in payloads spare the worker a lookup. */
  github?: Pick<GitHubClientFactory, 'rememberInstallation'>;
  hooks?: DeliveryHook[];
  now?: () => Date;
}

/** Events worth a worker-side look when a repository's own config is not cached yet. */
const PROBE_EVENTS = new Set([
  'issues.opened',
  'issues.labeled',
  'issues.reopened',
  'pull_request.opened',
  'pull_request.labeled',
]);

/** The run's input: small, because it is written on every transition. */
export interface PipelineInput extends Record<string, unknown> {
  event: NormalizedEvent;
  ingress: Omit<RoutingDecision, 'rules' | 'policies' | 'guards'>;
}

export function subjectFor(event: NormalizedEvent): Subject | string {
  const repo = event.repo?.fullName;
  if (!repo) return `github:${event.name}`;
  const n = event.subject?.number;
  return n === undefined ? { repo, key: repo } : { repo, issue: n, key: `${repo}#${n}` };
}

/** Idempotency key of a delivery: GitHub's id, namespaced so it cannot collide with a Discord interaction id. */
export const deliveryKey = (delivery: string) => `github:${delivery}`;

const ignored = (reason: string, extra: Record<string, unknown> = {}): DeliveryOutcome => ({
  statusCode: 202,
  body: { status: 'ignored', reason, ...extra },
});

export function createDeliveryHandler(deps: IngressDeps): (d: Delivery) => Promise<DeliveryOutcome> {
  const now = deps.now ?? (() => new Date());
  return async (d) => {
    const ev = d.event;
    const key = eventKey(ev);
    if (d.name === 'ping') {
      const zen = (d.payload as { zen?: unknown }).zen;
      return { statusCode: 200, body: { status: 'pong', ...(typeof zen === 'string' ? { zen } : {}) } };
    }
    if (ev.repo && ev.installationId !== undefined)
      deps.github?.rememberInstallation(ev.repo.fullName, ev.installationId);
    for (const hook of deps.hooks ?? []) {
      const claimed = await hook(d);
      if (claimed) return claimed;
    }

    const central = deps.config.central;
    if (isCiSignal(ev)) {
      const res = await recordCiSignal(deps.store, ev, central, now());
      logger.info('github ci signal', { delivery: d.id, event: key, repo: ev.repo.fullName, ...res });
      return { statusCode: 202, body: { status: 'guard', ...res } };
    }

    if (ev.push && ev.repo) {
      const branch = ev.repo.defaultBranch;
      if (
        branch &&
        ev.push.ref === `refs/heads/${branch}` &&
        ev.push.files.includes(central.repoConfig.path)
      ) {
        await deps.config.invalidate(ev.repo.fullName);
        logger.info('github repo config changed', { delivery: d.id, repo: ev.repo.fullName });
        return { statusCode: 202, body: { status: 'config-refresh' } };
      }
    }
    if (!ev.repo) {
      logger.info('github event ignored', { delivery: d.id, event: key, reason: 'no repository' });
      return ignored('no repository');
    }

    const repoCfg = await deps.config.cached(ev.repo.fullName);
    let decision = decide(repoCfg.config, ev, { phase: 'ingress' });
    if (
      decision.outcome === 'ignore' &&
      !repoCfg.known &&
      PROBE_EVENTS.has(key) &&
      decision.prRouting !== 'off'
    ) {
      // The repository's own config may route this; only the worker may fetch it. A run that
      // then matches nothing ends quietly at its route node (no status comment is posted).
      decision = {
        ...decision,
        outcome: 'run',
        workflow: repoCfg.config.routing.defaultWorkflow,
        deferred: ['repository config'],
        reason: `${ev.repo.fullName} config not cached: routing decided in the worker`,
      };
    }
    if (decision.outcome === 'ignore' || decision.outcome === 'forbidden' || !decision.workflow) {
      logger.info('github event ignored', {
        delivery: d.id,
        event: key,
        repo: ev.repo.fullName,
        reason: decision.reason,
      });
      return ignored(decision.reason, { outcome: decision.outcome });
    }

    const { rules: _r, policies: _p, guards: _g, ...ingress } = decision;
    const input: PipelineInput = { event: ev, ingress };
    try {
      const res = await deps.engine.startRun({
        workflow: decision.workflow,
        subject: subjectFor(ev),
        trigger: {
          source: 'github',
          ...(ev.sender ? { actor: ev.sender.login } : {}),
          event: key,
          delivery: d.id,
          ...(ev.label ? { label: ev.label } : {}),
        },
        input,
        idempotencyKey: deliveryKey(d.id),
        concurrency: decision.concurrency,
      });
      logger.info('github run started', {
        delivery: d.id,
        event: key,
        runId: res.run.id,
        outcome: res.outcome,
        rule: decision.rule,
      });
      return {
        statusCode: 202,
        body: {
          status: 'accepted',
          run: res.run.id,
          outcome: res.outcome,
          ...(decision.rule ? { rule: decision.rule } : {}),
        },
      };
    } catch (err) {
      if (err instanceof RunConflictError) {
        // The subject's concurrency policy is `reject`: a correct answer, not a failure.
        return {
          statusCode: 202,
          body: { status: 'rejected', reason: err.message, activeRun: err.activeRunId },
        };
      }
      throw err;
    }
  };
}
