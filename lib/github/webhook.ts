import { MetricName } from '../common/metric-names.ts';
import { type Counter, logger, metricsCounter } from '../common/observability.ts';
import { readPostBody } from '../http/body.ts';
import { type HttpRequest, type HttpResponse, json, MAX_BODY_BYTES } from '../http/request.ts';
import { type NormalizedEvent, normalizeEvent } from './events.ts';
import { checkPayload } from './payload.ts';
import { verifyGitHubSignature } from './verify.ts';

/**
 * The GitHub webhook core, written once over raw body and headers. The Lambda handler and the
 * local HTTP adapter only provide the I/O (octokit/webhooks.js `createMiddleware` habit).
 *
 * Checks run in a fixed order: method, content type, size, signature on the raw bytes, then
 * parse. Bad input gets a 4xx and never reaches the routing hub; only our own failures are 5xx.
 */

export interface Delivery {
  /** `X-GitHub-Event` */
  name: string;
  /** `X-GitHub-Delivery` */
  id: string;
  event: NormalizedEvent;
  payload: unknown;
}

/** What the hub decided for a verified delivery; the body is echoed to GitHub (visible under "Recent Deliveries"). */
export interface DeliveryOutcome {
  statusCode: 200 | 202;
  body: Record<string, unknown>;
}

export interface WebhookCoreDeps {
  /** Current secret first, then older ones still accepted while rotating. */
  secrets: () => readonly string[] | Promise<readonly string[]>;
  /** Called once per verified, parsed delivery (including ping). */
  onDelivery: (delivery: Delivery) => Promise<DeliveryOutcome>;
  /** Below the request's 1 MiB (GitHub caps payloads at 25 MB, but nothing we route needs more). */
  maxBodyBytes?: number;
  /** Where refused deliveries are counted (Powertools Metrics by default). */
  metrics?: Counter;
}

/**
 * GitHub offers two content types. We accept both: `application/json`, and the
 * `application/x-www-form-urlencoded` form whose `payload` field holds the JSON. The signature
 * covers the raw (form-encoded) body either way, so accepting the form costs nothing and saves a
 * silently broken hook when someone picks the other option in the settings page.
 */
const ID = /^[\w.:-]{1,200}$/;

export async function handleGitHubWebhook(deps: WebhookCoreDeps, req: HttpRequest): Promise<HttpResponse> {
  // 1-3. method, content type, size (of the decoded bytes)
  const read = readPostBody(req, {
    maxBytes: deps.maxBodyBytes ?? MAX_BODY_BYTES,
    mediaTypes: ['application/json', 'application/x-www-form-urlencoded'],
  });
  if (!read.ok) return json(read.status, { error: read.error }, read.headers);
  const { bytes } = read;
  const media = read.mediaType === 'application/json' ? 'json' : 'form';
  if (bytes.byteLength === 0) return json(400, { error: 'empty body' });

  // 4. signature, over the exact bytes received. GitHub sends UTF-8; a body that is not would
  //    decode lossily and so cannot match, which fails closed.
  const raw = bytes.toString('utf8');
  const check = await verifyGitHubSignature(await deps.secrets(), raw, req.headers['x-hub-signature-256']);
  if (!check.ok) {
    logger.warn('github webhook refused', { reason: check.reason });
    return json(401, { error: check.reason === 'missing' ? 'missing signature' : 'invalid signature' });
  }

  // 5. parse
  const name = req.headers['x-github-event'];
  const id = req.headers['x-github-delivery'];
  if (!name || !ID.test(name)) return json(400, { error: 'missing or malformed X-GitHub-Event' });
  if (!id || !ID.test(id)) return json(400, { error: 'missing or malformed X-GitHub-Delivery' });
  let text = raw;
  if (media === 'form') {
    const payload = new URLSearchParams(raw).get('payload');
    if (payload === null) return json(400, { error: 'form body has no payload field' });
    text = payload;
  }
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch {
    return json(400, { error: 'malformed JSON' });
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    return json(400, { error: 'payload is not a JSON object' });
  }

  // 6. shape: signed is not the same as sane. A delivery lacking a field its event needs is
  //    answered 2xx (GitHub must not redeliver it) and goes no further: no hook, no run.
  const shape = checkPayload(name, payload as Record<string, unknown>);
  if (!shape.ok) {
    const action = (payload as { action?: unknown }).action;
    logger.warn('github delivery malformed', {
      delivery: id,
      event: typeof action === 'string' ? `${name}.${action}` : name,
      field: shape.field,
      reason: shape.reason,
    });
    (deps.metrics ?? metricsCounter).count(MetricName.DeliveriesMalformed);
    return json(202, {
      delivery: id,
      status: 'ignored',
      reason: `malformed payload: ${shape.reason}`,
      field: shape.field,
    });
  }

  const event = normalizeEvent(name, id, payload);
  try {
    const outcome = await deps.onDelivery({ name, id, event, payload });
    return json(outcome.statusCode, { delivery: id, ...outcome.body });
  } catch (err) {
    // Our own failure (the table is down, a bug): 5xx so GitHub marks the delivery failed and it can be redelivered.
    logger.error('github webhook failed', { delivery: id, event: name, error: err as Error });
    return json(500, { delivery: id, error: 'internal error' });
  }
}
