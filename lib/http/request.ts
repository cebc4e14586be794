/**
 * The one request and response every endpoint speaks (the webhook, both callbacks, Discord, the
 * runs API, the console). A transport converts what it receives once, here (`toRequest`), and
 * writes the response back once (lib/http/apigw.ts for Lambda; the local stack plays API Gateway
 * in front of the same conversion). Endpoints never see base64, header case or the size limit
 * again (Hono's aws-lambda adapter habit: `createRequest` in, `createResult` out).
 */

/** 1 MiB: larger bodies get 413 (ARCHITECTURE.md §1). No endpoint accepts more. */
export const MAX_BODY_BYTES = 1024 * 1024;

export interface HttpRequest {
  /** Upper case. */
  readonly method: string;
  readonly path: string;
  /** Lower-case names; a repeated header counts as its first value. */
  readonly headers: Readonly<Record<string, string>>;
  readonly query: Readonly<Record<string, string>>;
  /** Path parameters of the route (`{token}`, `{id}`). */
  readonly params: Readonly<Record<string, string>>;
  readonly cookies: readonly string[];
  /** The exact bytes received; empty when `bodyProblem` says why they could not be read. */
  readonly body: Buffer;
  /** A body over the limit is not decoded; a base64 body that does not round-trip is refused. */
  readonly bodyProblem?: 'too-large' | 'not-base64';
  readonly sourceIp?: string;
  readonly requestId?: string;
}

export interface HttpResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
  isBase64Encoded?: boolean;
}

export type Endpoint = (req: HttpRequest) => Promise<HttpResponse>;

/** A request as a transport hands it over: header names in any case, a body maybe base64-encoded. */
export interface WireRequest {
  method: string;
  path?: string | undefined;
  headers?: Readonly<Record<string, string | readonly string[] | undefined>> | null | undefined;
  query?: Readonly<Record<string, string | undefined>> | null | undefined;
  params?: Readonly<Record<string, string | undefined>> | null | undefined;
  cookies?: readonly string[] | null | undefined;
  body?: string | Uint8Array | null | undefined;
  isBase64Encoded?: boolean | undefined;
  sourceIp?: string | undefined;
  requestId?: string | undefined;
}

function defined(
  map: Readonly<Record<string, string | undefined>> | null | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(map ?? {})) if (v !== undefined) out[k] = v;
  return out;
}

type Body = Pick<HttpRequest, 'body' | 'bodyProblem'>;

const EMPTY = Buffer.alloc(0);

/** The body's bytes, without allocating more than `max` + a little for a body that is too large. */
function decodeBody(body: WireRequest['body'], base64: boolean, max: number): Body {
  if (body === null || body === undefined) return { body: EMPTY };
  if (typeof body !== 'string') {
    if (body.byteLength > max) return { body: EMPTY, bodyProblem: 'too-large' };
    return { body: Buffer.from(body.buffer, body.byteOffset, body.byteLength) };
  }
  if (base64) {
    // 4 base64 characters carry 3 bytes: refuse a huge body before allocating it.
    if (Math.floor((body.length * 3) / 4) > max + 3) return { body: EMPTY, bodyProblem: 'too-large' };
    const bytes = Buffer.from(body, 'base64');
    // Buffer.from(base64) silently skips bad characters; refuse anything that does not round-trip.
    if (bytes.toString('base64').replace(/=+$/, '') !== body.replace(/\s/g, '').replace(/=+$/, ''))
      return { body: EMPTY, bodyProblem: 'not-base64' };
    return bytes.byteLength > max ? { body: EMPTY, bodyProblem: 'too-large' } : { body: bytes };
  }
  // UTF-8 takes at least a byte per UTF-16 unit, so a longer string is too large already.
  if (body.length > max) return { body: EMPTY, bodyProblem: 'too-large' };
  const bytes = Buffer.from(body, 'utf8');
  return bytes.byteLength > max ? { body: EMPTY, bodyProblem: 'too-large' } : { body: bytes };
}

/** The one conversion of a received request: raw bytes, lower-case headers, the size limit. */
export function toRequest(wire: WireRequest, opts: { maxBytes?: number } = {}): HttpRequest {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(wire.headers ?? {})) {
    const value = typeof v === 'string' ? v : v?.[0];
    const name = k.toLowerCase();
    if (value !== undefined && headers[name] === undefined) headers[name] = value;
  }
  return {
    method: wire.method.toUpperCase(),
    path: wire.path ?? '/',
    headers,
    query: defined(wire.query),
    params: defined(wire.params),
    cookies: wire.cookies ?? [],
    ...decodeBody(wire.body, wire.isBase64Encoded ?? false, opts.maxBytes ?? MAX_BODY_BYTES),
    ...(wire.sourceIp !== undefined ? { sourceIp: wire.sourceIp } : {}),
    ...(wire.requestId !== undefined ? { requestId: wire.requestId } : {}),
  };
}

/** The one JSON response. */
export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpResponse {
  return {
    statusCode,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  };
}
