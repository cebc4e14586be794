import { logger } from '../common/observability.ts';
import type { GitHubClientFactory } from '../github/client.ts';
import { eventKey } from '../github/events.ts';
import type { DeliveryOutcome } from '../github/webhook.ts';
import type { RouteMessage } from '../queue/port.ts';
import { AgentRegistry } from './agents.ts';
import { type IngressDeps, startRouted } from './deliveries.ts';
import { formatIssue } from './errors.ts';
import type { ConfigProvider } from './repo-config.ts';
import { decide } from './rules.ts';

/**
 * Route later (issue 15: no speculative runs). When a repository's own `.github/switchyard.yml`
 * is not cached and the central config alone would ignore a delivery, the webhook request queues
 * the normalised delivery instead of starting a run. Here, in the worker, the overlay is fetched
 * (and cached, so the next delivery is decided at ingress), the same ingress-phase decision is
 * made with it, and a run starts only if something applies.
 *
 * Idempotent on the delivery id: the run is started with the same key as at ingress
 * (`github:<delivery>`), so a redelivered message, a concurrent copy, or a redelivery that
 * ingress routes itself once the overlay is cached, all make at most one run. A failure (GitHub
 * or the table unreachable) throws, and the queue redelivers the message: nothing is lost.
 */
export interface RouteLaterDeps {
  engine: IngressDeps['engine'];
  config: ConfigProvider;
  github: GitHubClientFactory;
}

export async function routeLater(deps: RouteLaterDeps, message: RouteMessage): Promise<DeliveryOutcome> {
  const ev = message.event;
  const repo = ev.repo?.fullName;
  if (!repo) return { statusCode: 202, body: { status: 'ignored', reason: 'no repository' } };
  // The installation id came with the payload; this process may not have seen it.
  if (ev.installationId !== undefined) deps.github.rememberInstallation(repo, ev.installationId);
  const client = deps.github.forAgent(new AgentRegistry(deps.config.central).identity('router'));
  const cfg = await deps.config.forRepo(repo, client);
  if (cfg.error) {
    logger.warn('repository config refused', {
      delivery: message.delivery,
      repo,
      issues: cfg.error.issues.map(formatIssue),
    });
  }
  const decision = decide(cfg.config, ev, { phase: 'ingress' });
  const outcome = await startRouted(deps, message.delivery, ev, decision);
  logger.info('github deferred delivery routed', {
    delivery: message.delivery,
    event: eventKey(ev),
    repo,
    config: cfg.origin,
    fetched: cfg.fetched,
    ...outcome.body,
  });
  return outcome;
}
