import { type HeaderMap, header } from './headers.ts';

/** A request as the endpoints receive it from API Gateway v2 or the local adapter. */
export interface RawRequest {
  method: string;
  headers: HeaderMap;
  body: string | Uint8Array | null | undefined;
  /** API Gateway may base64-encode the body. */
  isBase64Encoded?: boolean;
}

/** The exact bytes received, or undefined when a base64 body does not round-trip. */
export function bodyBytes(req: Pick<RawRequest, 'body' | 'isBase64Encoded'>): Buffer | undefined {
  const b = req.body;
  if (b === null || b === undefined) return Buffer.alloc(0);
  if (typeof b !== 'string') return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (!req.isBase64Encoded) return Buffer.from(b, 'utf8');
  // Buffer.from(base64) silently skips bad characters; refuse anything that does not round-trip.
  const bytes = Buffer.from(b, 'base64');
  if (bytes.toString('base64').replace(/=+$/, '') !== b.replace(/\s/g, '').replace(/=+$/, ''))
    return undefined;
  return bytes;
}

export type PostBody =
  | { ok: true; bytes: Buffer; mediaType: string }
  | { ok: false; status: 400 | 405 | 413; error: string; headers?: Record<string, string> };

/**
 * The checks every POST endpoint makes before it reads anything, in one order: the method, the
 * media type, the declared size (base64 inflates the transport body by a third, hence 1.4×), the
 * decoding, and the decoded size. Each refusal is a 4xx with a plain reason.
 */
export function readPostBody(
  req: RawRequest,
  opts: { maxBytes: number; mediaTypes: readonly string[] },
): PostBody {
  if (req.method.toUpperCase() !== 'POST')
    return { ok: false, status: 405, error: 'method not allowed', headers: { allow: 'POST' } };
  const mediaType = header(req.headers, 'content-type')?.split(';', 1)[0]?.trim().toLowerCase();
  if (!mediaType || !opts.mediaTypes.includes(mediaType))
    return { ok: false, status: 400, error: `unsupported content type: use ${opts.mediaTypes.join(' or ')}` };
  const max = opts.maxBytes;
  const declared = Number(header(req.headers, 'content-length'));
  if (Number.isFinite(declared) && declared > max * 1.4)
    return { ok: false, status: 413, error: `body larger than ${max} bytes` };
  const bytes = bodyBytes(req);
  if (!bytes) return { ok: false, status: 400, error: 'body is not valid base64' };
  if (bytes.byteLength > max) return { ok: false, status: 413, error: `body larger than ${max} bytes` };
  return { ok: true, bytes, mediaType };
}
