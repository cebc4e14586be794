import type { HttpRequest } from './request.ts';

export type PostBody =
  | { ok: true; bytes: Buffer; mediaType: string }
  | { ok: false; status: 400 | 405 | 413; error: string; headers?: Record<string, string> };

/**
 * The checks every POST endpoint makes before it reads anything, in one order: the method, the
 * media type, the declared size (base64 inflates the transport body by a third, hence 1.4×), the
 * decoding, and the decoded size (the endpoint's own limit, at most the request's). Each refusal
 * is a 4xx with a plain reason.
 */
export function readPostBody(
  req: HttpRequest,
  opts: { maxBytes: number; mediaTypes: readonly string[] },
): PostBody {
  if (req.method !== 'POST')
    return { ok: false, status: 405, error: 'method not allowed', headers: { allow: 'POST' } };
  const mediaType = req.headers['content-type']?.split(';', 1)[0]?.trim().toLowerCase();
  if (!mediaType || !opts.mediaTypes.includes(mediaType))
    return { ok: false, status: 400, error: `unsupported content type: use ${opts.mediaTypes.join(' or ')}` };
  const max = opts.maxBytes;
  const tooLarge = { ok: false, status: 413, error: `body larger than ${max} bytes` } as const;
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > max * 1.4) return tooLarge;
  if (req.bodyProblem === 'not-base64') return { ok: false, status: 400, error: 'body is not valid base64' };
  if (req.bodyProblem === 'too-large' || req.body.byteLength > max) return tooLarge;
  return { ok: true, bytes: req.body, mediaType };
}
