import { verifyKey } from 'discord-interactions';
import { describe, expect, it } from 'vitest';
import { DiscordKeyError } from '../../lib/discord/errors.ts';
import {
  importDiscordPublicKey,
  MAX_CLOCK_SKEW_SECONDS,
  verifyDiscordRequest,
} from '../../lib/discord/verify.ts';
import { command, makeKeys, nowSeconds, ping, sign } from './support.ts';

const keys = makeKeys(1);
const other = makeKeys(2);
const key = importDiscordPublicKey(keys.publicKeyHex);

const bodies: Array<[string, string]> = [
  ['a PING', JSON.stringify(ping())],
  ['a /plan command', JSON.stringify(command('plan', [{ name: 'issue', type: 3, value: '42' }]))],
  ['unicode text', JSON.stringify({ type: 2, data: { name: 'plan', note: 'café ☕ 計画 🚂' } })],
  ['an empty body', ''],
];

describe('verifyDiscordRequest', () => {
  it.each(bodies)('accepts %s signed by tweetnacl with the right key', (_name, body) => {
    const ts = String(nowSeconds());
    expect(verifyDiscordRequest(key, sign(keys, ts, body), ts, Buffer.from(body))).toEqual({ ok: true });
  });

  it.each(bodies)(
    'agrees with discord-interactions verifyKey on %s (valid and forged)',
    async (_name, body) => {
      const ts = String(nowSeconds());
      const good = sign(keys, ts, body);
      const forged = sign(other, ts, body);
      for (const sig of [good, forged]) {
        const ours = verifyDiscordRequest(key, sig, ts, Buffer.from(body)).ok;
        const theirs = await verifyKey(body, sig, ts, keys.publicKeyHex);
        expect(ours).toBe(theirs);
      }
    },
  );

  it('refuses a signature made with another key', () => {
    const ts = String(nowSeconds());
    expect(verifyDiscordRequest(key, sign(other, ts, '{}'), ts, Buffer.from('{}'))).toEqual({
      ok: false,
      reason: 'signature',
    });
  });

  it.each([
    ['stale', -MAX_CLOCK_SKEW_SECONDS - 1],
    ['future', MAX_CLOCK_SKEW_SECONDS + 1],
  ])('refuses a correctly signed %s timestamp', (_name, offset) => {
    // One clock for signing and checking: read twice, a second boundary between the reads made
    // the future case 300 s away, inside the window.
    const nowMs = Date.now();
    const ts = String(Math.floor(nowMs / 1000) + offset);
    expect(verifyDiscordRequest(key, sign(keys, ts, '{}'), ts, Buffer.from('{}'), nowMs)).toEqual({
      ok: false,
      reason: 'stale',
    });
  });

  it.each([
    ['missing signature', undefined, '1', 'missing-headers'],
    ['missing timestamp', 'ab'.repeat(64), undefined, 'missing-headers'],
    ['short signature', 'ab'.repeat(63), '1', 'bad-signature-format'],
    ['non-hex signature', `${'ab'.repeat(63)}zz`, '1', 'bad-signature-format'],
    ['decimal timestamp', 'ab'.repeat(64), '1.5', 'bad-timestamp-format'],
    ['negative timestamp', 'ab'.repeat(64), '-1', 'bad-timestamp-format'],
  ] as const)('refuses a %s without throwing', (_name, sig, ts, reason) => {
    expect(verifyDiscordRequest(key, sig, ts, Buffer.from('{}'))).toEqual({ ok: false, reason });
  });
});

describe('importDiscordPublicKey', () => {
  it.each(['', 'abc', 'zz'.repeat(32), 'ab'.repeat(33)])('rejects %j as a public key', (hex) => {
    expect(() => importDiscordPublicKey(hex)).toThrow(DiscordKeyError);
  });

  it('imports the 32-byte key as an Ed25519 key object', () => {
    expect(key.asymmetricKeyType).toBe('ed25519');
  });
});
