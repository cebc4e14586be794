import { verifyWithFallback } from '@octokit/webhooks-methods';

export type SignatureCheck = { ok: true } | { ok: false; reason: 'missing' | 'format' | 'mismatch' };

/** GitHub sends `sha256=` and 64 lowercase hex digits; anything else cannot match, so refuse it before hashing. */
const SIGNATURE = /^sha256=[0-9a-f]{64}$/;

/**
 * Check `X-Hub-Signature-256` over the raw body with @octokit/webhooks-methods (constant-time
 * compare). `secrets` lists the current secret first, then older ones still accepted during a
 * rotation (`verifyWithFallback`). Never throws: every malformed input is a refusal.
 */
export async function verifyGitHubSignature(
  secrets: readonly string[],
  rawBody: string,
  header: string | undefined,
): Promise<SignatureCheck> {
  if (header === undefined || header === '') return { ok: false, reason: 'missing' };
  if (!SIGNATURE.test(header)) return { ok: false, reason: 'format' };
  const [current, ...older] = secrets;
  if (current === undefined || rawBody === '') return { ok: false, reason: 'mismatch' };
  try {
    const ok: unknown = await verifyWithFallback(
      current,
      rawBody,
      header,
      older.length > 0 ? older : undefined,
    );
    return ok === true ? { ok: true } : { ok: false, reason: 'mismatch' };
  } catch {
    return { ok: false, reason: 'mismatch' };
  }
}
