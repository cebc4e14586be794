import type { KeyObject } from 'node:crypto';
import type { APIInteraction, APIInteractionResponse } from 'discord-api-types/v10';
import { logger } from '../common/observability.ts';
import { readPostBody } from '../http/body.ts';
import { type Endpoint, json, MAX_BODY_BYTES } from '../http/request.ts';
import { InteractionType, ResponseType } from './protocol.ts';
import { verifyDiscordRequest } from './verify.ts';

export type InteractionDispatcher = (interaction: APIInteraction) => Promise<APIInteractionResponse>;

export interface EndpointOptions {
  publicKey: KeyObject;
  dispatch: InteractionDispatcher;
  /** Bodies above this many bytes get 413 (at most the request's 1 MiB). */
  maxBodyBytes?: number;
  nowMs?: () => number;
}

/**
 * The interactions endpoint over the one HTTP request (lib/http/request.ts), independent of
 * transport: the Lambda adapter (API Gateway payload v2) and the local stack supply only the I/O.
 * Checks run in a fixed order: method, content type, size, signature over the
 * raw bytes, then JSON. Bad input gets a 4xx, never a 5xx; PING is answered here.
 */
export function createInteractionEndpoint(opts: EndpointOptions): Endpoint {
  const max = opts.maxBodyBytes ?? MAX_BODY_BYTES;
  const nowMs = opts.nowMs ?? Date.now;
  return async (req) => {
    const read = readPostBody(req, { maxBytes: max, mediaTypes: ['application/json'] });
    if (!read.ok) return json(read.status, { error: read.error }, read.headers);
    const { bytes } = read;

    const verdict = verifyDiscordRequest(
      opts.publicKey,
      req.headers['x-signature-ed25519'],
      req.headers['x-signature-timestamp'],
      bytes,
      nowMs(),
    );
    if (!verdict.ok) {
      logger.info('discord request refused', { reason: verdict.reason });
      return json(401, { error: 'invalid request signature' });
    }

    let interaction: unknown;
    try {
      interaction = JSON.parse(bytes.toString('utf8'));
    } catch {
      return json(400, { error: 'malformed JSON' });
    }
    if (
      typeof interaction !== 'object' ||
      interaction === null ||
      Array.isArray(interaction) ||
      typeof (interaction as { type?: unknown }).type !== 'number'
    ) {
      return json(400, { error: 'not an interaction' });
    }
    const typed = interaction as APIInteraction;
    if (typed.type === InteractionType.Ping) return json(200, { type: ResponseType.Pong });
    return json(200, await opts.dispatch(typed));
  };
}
