import { resumeCiGates } from '../agents/gates.ts';
import { MetricName } from '../common/metric-names.ts';
import { type Counter, logger, metricsCounter } from '../common/observability.ts';
import type { Signal, StartRunInput, StartRunResult } from '../engine/engine.ts';
import { InvalidSubjectError, RunConflictError, RunPausedError } from '../engine/errors.ts';
import type { RunStore } from '../engine/ports.ts';
import type { Run, Subject } from '../engine/types.ts';
import type { GitHubClientFactory } from '../github/client.ts';
import { eventKey, type NormalizedEvent } from '../github/events.ts';
import type { Delivery, DeliveryOutcome } from '../github/webhook.ts';
import type { StepQueue } from '../queue/port.ts';
import { ciVerdict, isCiSignal, readCiRecord, recordCiSignal } from './guards.ts';
import type { ConfigProvider } from './repo-config.ts';
import { decide, type RoutingDecision } from './rules.ts';

/**
 * What a verified GitHub delivery does, inside the webhook request. Everything here is cheap:
 * cached config, one pure routing decision, at most one KV write (guard state) or one
 * `engine.startRun` (one DynamoDB transaction and one queue send). Anything that needs the
 * GitHub API (per-repo config fetch, PR files, CI confirmation) happens in the worker: in the
 * run's route node, or, when only a repository's own config could route a delivery, in a
 * route-later message that starts no run unless something applies (lib/routing/route-later.ts).
 */

/** A hook that may claim a delivery first (e.g. the GitHub Actions executor resuming a run on `workflow_run`). */
export type DeliveryHook = (delivery: Delivery) => Promise<DeliveryOutcome | undefined>;

export interface IngressDeps {
  engine: {
    startRun(input: StartRunInput): Promise<StartRunResult>;
    /** Resumes runs parked at a `ci` gate when a delivery turns the guard green. */
    signal?(runId: string, signal: Signal): Promise<Run>;
  };
  /** Where deliveries waiting for their repository's config are queued (the worker's queue). */
  queue: Pick<StepQueue, 'send'>;
  config: ConfigProvider;
  store: RunStore;
  /** Installation ids in payloads spare the worker a lookup. */
  github?: Pick<GitHubClientFactory, 'rememberInstallation'>;
  hooks?: DeliveryHook[];
  now?: () => Date;
  /** Deferred deliveries are counted here (Powertools Metrics by default). */
  metrics?: Counter;
}

/** Events worth a worker-side look (route later) when a repository's own config is not cached yet. */
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
    // Before the hooks read `config.central` (the commands allowlist, agent workflows): a pushed
    // version applies to this delivery once the refresh interval has passed, not to the next one.
    await deps.config.refreshCentral();
    for (const hook of deps.hooks ?? []) {
      const claimed = await hook(d);
      if (claimed) return claimed;
    }

    const central = deps.config.central;
    if (isCiSignal(ev)) {
      const res = await recordCiSignal(deps.store, ev, central, now());
      let resumed = 0;
      const signal = deps.engine.signal?.bind(deps.engine);
      if (res.outcome === 'recorded' && signal) {
        const verdict = ciVerdict(await readCiRecord(deps.store, ev.repo.fullName), central);
        if (verdict.state === 'green')
          resumed = await resumeCiGates(deps.store, { signal }, ev.repo.fullName);
      }
      logger.info('github ci signal', {
        delivery: d.id,
        event: key,
        repo: ev.repo.fullName,
        ...res,
        resumed,
      });
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
    const decision = decide(repoCfg.config, ev, { phase: 'ingress' });
    if (
      decision.outcome === 'ignore' &&
      !repoCfg.known &&
      PROBE_EVENTS.has(key) &&
      decision.prRouting !== 'off'
    ) {
      // The repository's own config may route this, but only the worker may fetch it. No
      // speculative run: the worker fetches the config, decides, and starts a run only if
      // something applies (idempotent on the delivery id, like a run started here).
      await deps.queue.send([{ message: { kind: 'route', delivery: d.id, event: ev } }]);
      (deps.metrics ?? metricsCounter).count(MetricName.DeliveriesDeferred);
      const reason = `${ev.repo.fullName} config not cached: routed in the worker`;
      logger.info('github event deferred', { delivery: d.id, event: key, repo: ev.repo.fullName, reason });
      return { statusCode: 202, body: { status: 'deferred', reason } };
    }
    return startRouted(deps, d.id, ev, decision);
  };
}

/**
 * Act on a routing decision for a delivery: ignore it, or start its run idempotently on the
 * delivery id. Shared by the webhook request and the worker's route-later handler, so a
 * delivery routed in either place (or both, for a redelivered copy) makes at most one run.
 */
export async function startRouted(
  deps: Pick<IngressDeps, 'engine'>,
  delivery: string,
  ev: NormalizedEvent,
  decision: RoutingDecision,
): Promise<DeliveryOutcome> {
  const key = eventKey(ev);
  const repo = ev.repo?.fullName;
  if (decision.outcome === 'ignore' || decision.outcome === 'forbidden' || !decision.workflow) {
    logger.info('github event ignored', { delivery, event: key, repo, reason: decision.reason });
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
        delivery,
        ...(ev.label ? { label: ev.label } : {}),
      },
      input,
      idempotencyKey: deliveryKey(delivery),
      concurrency: decision.concurrency,
    });
    logger.info('github run started', {
      delivery,
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
    if (err instanceof RunPausedError) {
      // The kill switch (npm run runs -- pause, /pause): refused and audited, not lost to a retry.
      logger.info('github run refused', { delivery, event: key, repo, reason: err.message });
      return { statusCode: 202, body: { status: 'paused', reason: err.message } };
    }
    if (err instanceof InvalidSubjectError) {
      // A rule sent an event without an issue (a push, a CI run) to a workflow that needs one:
      // the config's mistake or the sender's, never a run without its subject.
      logger.warn('github event ignored', { delivery, event: key, repo, reason: err.message });
      return ignored(err.message, { field: err.field });
    }
    throw err;
  }
}
