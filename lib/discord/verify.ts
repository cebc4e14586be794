import { createPublicKey, type KeyObject, verify } from 'node:crypto';
import { DiscordKeyError } from './errors.ts';

/** An Ed25519 SubjectPublicKeyInfo is this fixed 12-byte DER prefix followed by the 32-byte key. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const HEX_KEY = /^[0-9a-fA-F]{64}$/;
const HEX_SIGNATURE = /^[0-9a-fA-F]{128}$/;
/** Unix seconds; 12 digits is far beyond any plausible clock and keeps Number() exact. */
const TIMESTAMP = /^[0-9]{1,12}$/;

/** Discord's replay window: a timestamp more than 5 minutes from now, either way, is refused. */
export const MAX_CLOCK_SKEW_SECONDS = 300;

/** Import the application's public key once; node:crypto verifies about 150x faster than tweetnacl. */
export function importDiscordPublicKey(hex: string): KeyObject {
  if (!HEX_KEY.test(hex)) {
    throw new DiscordKeyError('DISCORD_PUBLIC_KEY must be 64 hex characters (32 bytes)');
  }
  return createPublicKey({
    key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(hex, 'hex')]),
    format: 'der',
    type: 'spki',
  });
}

export type VerifyResult = { ok: true } | { ok: false; reason: VerifyFailure };
export type VerifyFailure =
  | 'missing-headers'
  | 'bad-signature-format'
  | 'bad-timestamp-format'
  | 'stale'
  | 'signature';

/**
 * Check a request's Ed25519 signature over `timestamp + rawBody`. Every malformed input is a
 * plain refusal, never an exception, so nothing a caller sends can turn into a 5xx.
 */
export function verifyDiscordRequest(
  key: KeyObject,
  signatureHex: string | undefined,
  timestamp: string | undefined,
  rawBody: Uint8Array,
  nowMs: number = Date.now(),
): VerifyResult {
  if (signatureHex === undefined || timestamp === undefined) return { ok: false, reason: 'missing-headers' };
  if (!HEX_SIGNATURE.test(signatureHex)) return { ok: false, reason: 'bad-signature-format' };
  if (!TIMESTAMP.test(timestamp)) return { ok: false, reason: 'bad-timestamp-format' };
  if (Math.abs(nowMs / 1000 - Number(timestamp)) > MAX_CLOCK_SKEW_SECONDS)
    return { ok: false, reason: 'stale' };
  const message = Buffer.concat([Buffer.from(timestamp, 'utf8'), rawBody]);
  let valid = false;
  try {
    valid = verify(null, message, key, Buffer.from(signatureHex, 'hex'));
  } catch {
    valid = false;
  }
  return valid ? { ok: true } : { ok: false, reason: 'signature' };
}
