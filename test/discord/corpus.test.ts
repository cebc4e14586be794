import type { APIInteraction } from 'discord-api-types/v10';
import { describe, expect, it } from 'vitest';
import { createInteractionEndpoint } from '../../lib/discord/endpoint.ts';
import { importDiscordPublicKey } from '../../lib/discord/verify.ts';
import { MAX_BODY_BYTES, toRequest } from '../../lib/http/request.ts';
import {
  autocomplete,
  buttonClick,
  command,
  makeKeys,
  nowSeconds,
  opt,
  ping,
  type RawRequest,
  sign,
  signedRequest,
} from './support.ts';

/**
 * A generated corpus of forged and mutated requests. Every one must be refused with the status
 * the contract names (401 signature/timestamp, 400 content type/JSON, 413 size, 405 method), never
 * a 2xx and never a 5xx; every valid variant must be accepted.
 */
const keys = makeKeys(11);
const wrong = makeKeys(12);
const dispatched: APIInteraction[] = [];
// The corpus is generated once; a frozen clock keeps "299 s old" and "301 s ahead" exact however long the run takes.
const NOW = nowSeconds();
const inner = createInteractionEndpoint({
  publicKey: importDiscordPublicKey(keys.publicKeyHex),
  nowMs: () => NOW * 1000,
  dispatch: async (i) => {
    dispatched.push(i);
    return { type: 4, data: { content: 'ok', flags: 64 } };
  },
});
/** As the transport hands requests over: converted once (lib/http/request.ts), as in production. */
const endpoint = (req: RawRequest) => inner(toRequest(req));

const bases: Array<[string, string]> = [
  ['ping', JSON.stringify(ping())],
  [
    'plan with issue',
    JSON.stringify(command('plan', [opt.str('issue', '42'), opt.str('repo', 'acme/widgets')])),
  ],
  ['plan without issue', JSON.stringify(command('plan'))],
  ['status', JSON.stringify(command('status', [opt.str('run', 'r1abc')]))],
  ['approve', JSON.stringify(command('approve', [opt.str('run', 'r1abc'), opt.str('plan', 'v3')]))],
  [
    'cancel',
    JSON.stringify(command('cancel', [opt.str('run', 'r1abc'), opt.str('reason', 'wrong issue ☕')])),
  ],
  ['route', JSON.stringify(command('route', [opt.sub('pr', [opt.int('pr', 7), opt.bool('enabled', true)])]))],
  ['autocomplete', JSON.stringify(autocomplete('status', 'acme'))],
  ['button', JSON.stringify(buttonClick('sy:approve:r1abc:v3'))],
  ['unicode', JSON.stringify({ ...ping(), note: '計画 — ünïcödé 🚂'.repeat(20) })],
  ['large', JSON.stringify({ ...ping(), padding: 'p'.repeat(200_000) })],
  ['near limit', JSON.stringify({ ...ping(), padding: 'q'.repeat(MAX_BODY_BYTES - 2_000) })],
];

type Case = { name: string; req: RawRequest; expected: number };

function flipBit(buf: Buffer, bit: number): Buffer {
  const out = Buffer.from(buf);
  const i = Math.floor(bit / 8) % out.length;
  out[i] = out[i]! ^ (1 << (bit % 8));
  return out;
}

const replaceHeader = (req: RawRequest, name: string, value: string | undefined): RawRequest => {
  const headers = { ...req.headers };
  if (value === undefined) delete headers[name];
  else headers[name] = value;
  return { ...req, headers };
};

function forgeries(label: string, body: string): Case[] {
  const cases: Case[] = [];
  const ts = String(NOW);
  const good = signedRequest(keys, body, { timestamp: ts });
  const sig = good.headers['x-signature-ed25519']!;
  const bytes = Buffer.from(body, 'utf8');
  const add = (name: string, req: RawRequest, expected: number) =>
    cases.push({ name: `${label}: ${name}`, req, expected });

  // Flipped bits in the body, spread over its length (first, last and in between).
  const positions = [0, 1, 7, 8, 63, 64, 255, bytes.length * 4 - 1, bytes.length * 8 - 1];
  for (let k = 0; k < 40; k++) positions.push(Math.floor(((k + 1) / 42) * bytes.length * 8));
  for (const bit of new Set(positions)) {
    const flipped = flipBit(bytes, bit);
    add(
      `body bit ${bit} flipped`,
      { ...good, body: flipped.toString('latin1'), isBase64Encoded: false },
      401,
    );
  }
  for (const bit of [0, 100, bytes.length * 8 - 1]) {
    add(
      `base64 body bit ${bit} flipped`,
      { ...good, body: flipBit(bytes, bit).toString('base64'), isBase64Encoded: true },
      401,
    );
  }
  // Flipped bits in the signature (hex digits changed to another hex digit).
  for (const i of [0, 1, 31, 63, 64, 100, 126, 127]) {
    const c = sig[i]!;
    const swapped = `${sig.slice(0, i)}${c === '0' ? '1' : '0'}${sig.slice(i + 1)}`;
    add(`signature digit ${i} changed`, replaceHeader(good, 'x-signature-ed25519', swapped), 401);
  }
  // Timestamp changed after signing (one second, a digit, a prefix).
  add('timestamp +1 s', replaceHeader(good, 'x-signature-timestamp', String(Number(ts) + 1)), 401);
  add('timestamp -1 s', replaceHeader(good, 'x-signature-timestamp', String(Number(ts) - 1)), 401);
  add('timestamp with leading zero', replaceHeader(good, 'x-signature-timestamp', `0${ts}`), 401);
  // Signed with the wrong key.
  add(
    'wrong key',
    { ...good, headers: { ...good.headers, 'x-signature-ed25519': sign(wrong, ts, body) } },
    401,
  );
  // Missing and malformed headers.
  add('no signature', replaceHeader(good, 'x-signature-ed25519', undefined), 401);
  add('no timestamp', replaceHeader(good, 'x-signature-timestamp', undefined), 401);
  add('empty signature', replaceHeader(good, 'x-signature-ed25519', ''), 401);
  add('non-hex signature', replaceHeader(good, 'x-signature-ed25519', `${sig.slice(0, 126)}zz`), 401);
  add('signature too short', replaceHeader(good, 'x-signature-ed25519', sig.slice(0, 126)), 401);
  add('signature too long', replaceHeader(good, 'x-signature-ed25519', `${sig}00`), 401);
  add('signature with spaces', replaceHeader(good, 'x-signature-ed25519', ` ${sig.slice(1)}`), 401);
  for (const t of ['', 'abc', '1.7e9', '-5', `${ts} `, '0x1234', '99999999999999999999']) {
    add(`timestamp ${JSON.stringify(t)}`, replaceHeader(good, 'x-signature-timestamp', t), 401);
  }
  // Correctly signed, but stale or from the future.
  for (const offset of [-301, -3600, -86_400 * 365, 301, 7200]) {
    const t = String(NOW + offset);
    add(`signed timestamp ${offset} s`, signedRequest(keys, body, { timestamp: t }), 401);
  }
  // Content type, method, oversize.
  for (const ct of [
    undefined,
    'text/plain',
    'application/x-www-form-urlencoded',
    'application/jsonp',
    'multipart/form-data',
  ]) {
    add(`content type ${ct ?? 'missing'}`, replaceHeader(good, 'content-type', ct), 400);
  }
  for (const method of ['GET', 'PUT', 'DELETE']) add(`method ${method}`, { ...good, method }, 405);
  return cases;
}

const FORGED: Case[] = bases.flatMap(([label, body]) => forgeries(label, body));

// Correctly signed bodies that are not interactions, and bodies over the limit.
for (const [name, body] of [
  ['malformed JSON', '{"type":1,'],
  ['truncated JSON', '{"type": 2, "data": {"name": "pl'],
  ['JSON array', '[1,2,3]'],
  ['JSON string', '"ping"'],
  ['JSON null', 'null'],
  ['no type', '{"id":"1"}'],
  ['type as string', '{"type":"1"}'],
  ['empty body', ''],
] as const) {
  FORGED.push({ name: `signed ${name}`, req: signedRequest(keys, body), expected: 400 });
}
for (const extra of [1, 100, 4096, 1024 * 1024]) {
  const body = JSON.stringify({ ...ping(), padding: 'x'.repeat(MAX_BODY_BYTES) }).slice(
    0,
    MAX_BODY_BYTES + extra,
  );
  FORGED.push({ name: `oversize by ${extra} bytes`, req: signedRequest(keys, body), expected: 413 });
  FORGED.push({
    name: `oversize base64 by ${extra} bytes`,
    req: signedRequest(keys, body, { base64: true }),
    expected: 413,
  });
  FORGED.push({
    name: `oversize by ${extra} bytes, unsigned`,
    req: { ...signedRequest(keys, '{}'), body },
    expected: 413,
  });
}

function validVariants(label: string, body: string): Case[] {
  const ts = String(NOW);
  const good = signedRequest(keys, body, { timestamp: ts });
  const sig = good.headers['x-signature-ed25519']!;
  const upper: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(good.headers))
    upper[k.replace(/(^|-)([a-z])/g, (m) => m.toUpperCase())] = v;
  return [
    { name: `${label}: as sent`, req: good, expected: 200 },
    {
      name: `${label}: base64 body`,
      req: signedRequest(keys, body, { timestamp: ts, base64: true }),
      expected: 200,
    },
    { name: `${label}: header names in any case`, req: { ...good, headers: upper }, expected: 200 },
    {
      name: `${label}: uppercase hex`,
      req: replaceHeader(good, 'x-signature-ed25519', sig.toUpperCase()),
      expected: 200,
    },
    {
      name: `${label}: content type with charset`,
      req: replaceHeader(good, 'content-type', 'application/json; charset=utf-8'),
      expected: 200,
    },
    {
      name: `${label}: 299 s old`,
      req: signedRequest(keys, body, { timestamp: String(NOW - 299) }),
      expected: 200,
    },
    {
      name: `${label}: 299 s ahead`,
      req: signedRequest(keys, body, { timestamp: String(NOW + 299) }),
      expected: 200,
    },
    { name: `${label}: bytes body`, req: { ...good, body: Buffer.from(body, 'utf8') }, expected: 200 },
  ];
}

const VALID: Case[] = bases.flatMap(([label, body]) => validVariants(label, body));

describe('a corpus of forged and mutated requests', () => {
  it('has at least 1,000 distinct forgeries', () => {
    expect(FORGED.length).toBeGreaterThanOrEqual(1000);
  });

  it.each(FORGED)('refuses $name with $expected', async ({ req, expected }) => {
    const before = dispatched.length;
    const res = await endpoint(req);
    expect(res.statusCode).toBe(expected);
    expect(dispatched.length).toBe(before);
  });

  it('answers none of them with a 2xx or a 5xx', async () => {
    const statuses = await Promise.all(FORGED.map(async (c) => (await endpoint(c.req)).statusCode));
    expect(statuses.filter((s) => s < 400 || s >= 500)).toEqual([]);
  });
});

describe('valid requests', () => {
  it.each(VALID)('accepts $name', async ({ req, expected }) => {
    const res = await endpoint(req);
    expect(res.statusCode).toBe(expected);
    const type = (JSON.parse(res.body) as { type: number }).type;
    expect([1, 4]).toContain(type);
  });
});
