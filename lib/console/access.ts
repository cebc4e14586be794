import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ConfigurationError } from '../common/errors.ts';
import type { RunStore } from '../engine/ports.ts';

/**
 * Access to the console on AWS: Discord `/status` answers with a link carrying a signed token
 * (HMAC-SHA256, 1 hour, bound to the Discord user); `/console/auth` redeems it once for a session
 * cookie (HttpOnly, Secure, SameSite=Strict) and moves on to `/console`, so the token leaves the
 * address bar.
 *
 * - The token holds only the user id, a nonce and the expiry. The roles Discord reported with the
 *   `/status` interaction are kept server-side under the nonce, and the nonce is deleted when the
 *   link is redeemed, so a link works once.
 * - The session id in the cookie is random; the store keeps only its SHA-256, so a read of the
 *   table cannot be replayed as a cookie.
 * - Each session has its own CSRF token, sent back in every action form.
 */

export type KvStore = Pick<RunStore, 'kvGet' | 'kvPut' | 'kvDelete'>;

export const LINK_TTL_SECONDS = 3600;
export const SESSION_TTL_SECONDS = 8 * 3600;
export const LINK_GROUP = 'console-link';
export const SESSION_GROUP = 'console-session';
/** `__Host-`: the browser keeps it only if Secure, Path=/ and without Domain. */
export const SESSION_COOKIE = '__Host-switchyard-console';
const LINK_CONTEXT = 'switchyard-console-link.v1.';

const b64url = (b: Buffer) => b.toString('base64url');
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** CONSOLE_LINK_KEY may list several keys (`new,old`): the first signs, any verifies (rotation). */
export function parseLinkKeys(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k.length >= 16);
}

const mac = (key: string, payload: string) =>
  createHmac('sha256', key)
    .update(LINK_CONTEXT + payload)
    .digest();

export interface LinkGrant {
  userId: string;
  roles: string[];
  /** The Discord channel `/status` was asked in (rights may depend on it). */
  channelId?: string;
}

export interface Session extends LinkGrant {
  csrf: string;
  expiresAt: number;
}

export async function createLinkToken(
  kv: KvStore,
  keys: readonly string[],
  grant: LinkGrant,
  now: Date,
): Promise<string> {
  const key = keys[0];
  if (!key) throw new ConfigurationError('no console link key');
  const nonce = b64url(randomBytes(16));
  const exp = Math.floor(now.getTime() / 1000) + LINK_TTL_SECONDS;
  await kv.kvPut(LINK_GROUP, nonce, { ...grant, roles: [...grant.roles] }, { expectedVersion: 0, ttl: exp });
  const payload = b64url(Buffer.from(JSON.stringify({ u: grant.userId, n: nonce, e: exp })));
  return `${payload}.${b64url(mac(key, payload))}`;
}

/** The grant of a valid, unexpired, unused link; null otherwise (the caller answers 401). */
export async function redeemLinkToken(
  kv: KvStore,
  keys: readonly string[],
  token: string,
  now: Date,
): Promise<LinkGrant | null> {
  if (token.length > 512) return null;
  const [payload, sig, extra] = token.split('.');
  if (!payload || !sig || extra !== undefined) return null;
  const given = Buffer.from(sig, 'base64url');
  const signed = keys.some((k) => {
    const want = mac(k, payload);
    return want.length === given.length && timingSafeEqual(want, given);
  });
  if (!signed) return null;
  let claims: { u?: unknown; n?: unknown; e?: unknown };
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof claims;
  } catch {
    return null;
  }
  if (typeof claims.u !== 'string' || typeof claims.n !== 'string' || typeof claims.e !== 'number')
    return null;
  if (claims.e * 1000 <= now.getTime()) return null;
  const item = await kv.kvGet<LinkGrant>(LINK_GROUP, claims.n);
  if (!item || item.value.userId !== claims.u) return null;
  // Single use: only the request that deletes the nonce gets a session.
  if (!(await kv.kvDelete(LINK_GROUP, claims.n, { expectedVersion: item.version }))) return null;
  const channelId = typeof item.value.channelId === 'string' ? item.value.channelId : undefined;
  return {
    userId: claims.u,
    roles: Array.isArray(item.value.roles) ? item.value.roles : [],
    ...(channelId ? { channelId } : {}),
  };
}

export async function createSession(
  kv: KvStore,
  grant: LinkGrant,
  now: Date,
): Promise<{ id: string; session: Session }> {
  const id = b64url(randomBytes(32));
  const expiresAt = Math.floor(now.getTime() / 1000) + SESSION_TTL_SECONDS;
  const session: Session = { ...grant, csrf: b64url(randomBytes(24)), expiresAt };
  await kv.kvPut(SESSION_GROUP, sha256(id), session, { expectedVersion: 0, ttl: expiresAt });
  return { id, session };
}

export async function readSession(
  kv: KvStore,
  cookies: readonly string[],
  now: Date,
): Promise<Session | null> {
  const id = cookieValue(cookies, SESSION_COOKIE);
  if (!id || id.length > 100) return null;
  const item = await kv.kvGet<Session>(SESSION_GROUP, sha256(id));
  if (!item || item.value.expiresAt * 1000 <= now.getTime()) return null;
  return item.value;
}

export async function endSession(kv: KvStore, cookies: readonly string[]): Promise<void> {
  const id = cookieValue(cookies, SESSION_COOKIE);
  if (id) await kv.kvDelete(SESSION_GROUP, sha256(id));
}

export function cookieValue(cookies: readonly string[], name: string): string | undefined {
  for (const c of cookies) {
    for (const part of c.split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
    }
  }
  return undefined;
}

export const sessionCookie = (id: string) =>
  `${SESSION_COOKIE}=${id}; Path=/; Max-Age=${SESSION_TTL_SECONDS}; HttpOnly; Secure; SameSite=Strict`;
export const clearedCookie = () => `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict`;

/** Constant-time string comparison for CSRF tokens. */
export function sameToken(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
