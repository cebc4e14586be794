import type { KeyObject } from 'node:crypto';
import type { APIInteraction, APIInteractionResponse } from 'discord-api-types/v10';
import { logger } from '../common/observability.ts';
import { InteractionType, ResponseType } from './protocol.ts';
import { verifyDiscordRequest } from './verify.ts';

/**
 * The interactions endpoint over raw bytes and headers, independent of transport: the Lambda
 * adapter (API Gateway payload v2) and the local HTTP adapter each supply only the I/O.
 */
export interface RawRequest {
  method: string;
  /** Header names in any case (payload v2 lowercases them). */
  headers: Record<string, string | undefined>;
  body: string | Uint8Array | undefined | null;
  isBase64Encoded?: boolean;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export type InteractionDispatcher = (interaction: APIInteraction) => Promise<APIInteractionResponse>;

export interface EndpointOptions {
  publicKey: KeyObject;
  dispatch: InteractionDispatcher;
  /** Bodies above this many bytes get 413. */
  maxBodyBytes?: number;
  nowMs?: () => number;
}

export const MAX_BODY_BYTES = 1024 * 1024;

const JSON_HEADERS = { 'content-type': 'application/json' } as const;

function reply(status: number, body: unknown): RawResponse {
  return { status, headers: { ...JSON_HEADERS }, body: JSON.stringify(body) };
}

const refuse = (status: number, error: string): RawResponse => reply(status, { error });

function lowerHeaders(headers: Record<string, string | undefined>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(headers)) out[k.toLowerCase()] = v;
  return out;
}

function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const media = value.split(';', 1)[0]?.trim().toLowerCase();
  return media === 'application/json';
}

/** Decode the body to bytes, or report that it is too large without decoding all of it. */
function bodyBytes(req: RawRequest, max: number): Buffer | 'too-large' {
  const body = req.body ?? '';
  if (typeof body !== 'string') {
    return body.byteLength > max ? 'too-large' : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  }
  if (req.isBase64Encoded) {
    // 4 base64 characters carry 3 bytes: refuse huge bodies before allocating them.
    if (Math.floor((body.length * 3) / 4) > max + 3) return 'too-large';
    const bytes = Buffer.from(body, 'base64');
    return bytes.byteLength > max ? 'too-large' : bytes;
  }
  if (body.length > max) return 'too-large';
  const bytes = Buffer.from(body, 'utf8');
  return bytes.byteLength > max ? 'too-large' : bytes;
}

/**
 * Build the endpoint. Checks run in a fixed order: method, content type, size, signature over the
 * raw bytes, then JSON. Bad input gets a 4xx, never a 5xx; PING is answered here.
 */
export function createInteractionEndpoint(opts: EndpointOptions): (req: RawRequest) => Promise<RawResponse> {
  const max = opts.maxBodyBytes ?? MAX_BODY_BYTES;
  const nowMs = opts.nowMs ?? Date.now;
  return async (req) => {
    if (req.method.toUpperCase() !== 'POST') {
      return { ...refuse(405, 'method not allowed'), headers: { ...JSON_HEADERS, allow: 'POST' } };
    }
    const headers = lowerHeaders(req.headers);
    if (!isJsonContentType(headers['content-type']))
      return refuse(400, 'content type must be application/json');
    const declared = headers['content-length'];
    if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > max) {
      return refuse(413, 'body too large');
    }
    const bytes = bodyBytes(req, max);
    if (bytes === 'too-large') return refuse(413, 'body too large');

    const verdict = verifyDiscordRequest(
      opts.publicKey,
      headers['x-signature-ed25519'],
      headers['x-signature-timestamp'],
      bytes,
      nowMs(),
    );
    if (!verdict.ok) {
      logger.info('discord request refused', { reason: verdict.reason });
      return refuse(401, 'invalid request signature');
    }

    let interaction: unknown;
    try {
      interaction = JSON.parse(bytes.toString('utf8'));
    } catch {
      return refuse(400, 'malformed JSON');
    }
    if (
      typeof interaction !== 'object' ||
      interaction === null ||
      Array.isArray(interaction) ||
      typeof (interaction as { type?: unknown }).type !== 'number'
    ) {
      return refuse(400, 'not an interaction');
    }
    const typed = interaction as APIInteraction;
    if (typed.type === InteractionType.Ping) return reply(200, { type: ResponseType.Pong });
    return reply(200, await opts.dispatch(typed));
  };
}
