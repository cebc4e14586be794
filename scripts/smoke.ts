/**
 * Smoke test of a deployed (or local) Switchyard API:
 *
 *   npm run smoke -- --url <api base> [--github-secret s] [--discord-private-key hex | --discord-key-file f]
 *
 * - GET /health answers 200.
 * - Discord: an unsigned ping and a ping signed with the wrong key both get 401 (Discord itself
 *   sends such pings and removes an endpoint that accepts them). Only Discord holds the private
 *   key of a real application, so a properly signed ping is sent only when a private key (a 32-byte
 *   hex seed, e.g. of a test application or the local stack) is given; it must get {type:1}.
 * - GitHub: a ping with a bad signature gets 401; with the webhook secret (--github-secret or env
 *   GITHUB_WEBHOOK_SECRET) a properly signed ping gets 2xx.
 * Prints a pass/fail table and exits non-zero if any check fails.
 */
import {
  createHmac,
  createPrivateKey,
  generateKeyPairSync,
  type KeyObject,
  randomUUID,
  sign,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { parseWebhookSecrets } from '../lib/common/secrets.ts';

/** PKCS#8 DER header of an Ed25519 private key; the 32-byte seed follows it. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export interface SmokeOptions {
  /** API base URL, e.g. https://abc.execute-api.eu-west-1.amazonaws.com or http://127.0.0.1:3000 */
  url: string;
  githubSecret?: string;
  /** Ed25519 private key seed, 64 hex characters. */
  discordPrivateKey?: string;
  timeoutMs?: number;
}

export interface SmokeCheck {
  name: string;
  status: 'pass' | 'fail' | 'skip';
  expected: string;
  actual: string;
}

interface Reply {
  status: number;
  body: string;
}

export function ed25519KeyFromSeed(seedHex: string): KeyObject {
  const seed = Buffer.from(seedHex.trim(), 'hex');
  if (seed.length !== 32) throw new Error('a Discord private key is a 32-byte seed, 64 hex characters');
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/** Discord's headers for a body: an Ed25519 signature over timestamp + body. */
export function discordHeaders(key: KeyObject, body: string, timestamp = Math.floor(Date.now() / 1000)) {
  const ts = String(timestamp);
  return {
    'content-type': 'application/json',
    'x-signature-ed25519': sign(null, Buffer.from(ts + body), key).toString('hex'),
    'x-signature-timestamp': ts,
  };
}

/** GitHub's headers for a delivery: X-Hub-Signature-256 = sha256=HMAC(secret, raw body). */
export function githubHeaders(secret: string, body: string, event = 'ping') {
  return {
    'content-type': 'application/json',
    'user-agent': 'GitHub-Hookshot/switchyard-smoke',
    'x-github-event': event,
    'x-github-delivery': randomUUID(),
    'x-github-hook-id': '0',
    'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
  };
}

export async function runSmoke(options: SmokeOptions): Promise<SmokeCheck[]> {
  const base = options.url.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? 10_000;
  const request = async (
    method: string,
    path: string,
    body?: string,
    headers: Record<string, string> = {},
  ) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: res.status, body: await res.text() } satisfies Reply;
  };
  const checks: SmokeCheck[] = [];
  const check = async (
    name: string,
    expected: string,
    send: () => Promise<Reply>,
    ok: (reply: Reply) => boolean,
  ): Promise<void> => {
    try {
      const reply = await send();
      const actual = `${reply.status} ${reply.body.replace(/\s+/g, ' ').slice(0, 60)}`.trim();
      checks.push({ name, status: ok(reply) ? 'pass' : 'fail', expected, actual });
    } catch (err) {
      checks.push({
        name,
        status: 'fail',
        expected,
        actual: err instanceof Error ? err.message : String(err),
      });
    }
  };
  const skip = (name: string, expected: string, why: string) =>
    checks.push({ name, status: 'skip', expected, actual: why });

  await check(
    'GET /health',
    '200',
    () => request('GET', '/health'),
    (r) => r.status === 200,
  );

  const ping = JSON.stringify({ type: 1, id: `smoke-${randomUUID()}`, application_id: '0', version: 1 });
  await check(
    'Discord ping, unsigned',
    '401',
    () => request('POST', '/discord/interactions', ping, { 'content-type': 'application/json' }),
    (r) => r.status === 401,
  );
  const stranger = generateKeyPairSync('ed25519').privateKey;
  await check(
    'Discord ping, signed with the wrong key',
    '401',
    () => request('POST', '/discord/interactions', ping, discordHeaders(stranger, ping)),
    (r) => r.status === 401,
  );
  if (options.discordPrivateKey !== undefined) {
    const key = ed25519KeyFromSeed(options.discordPrivateKey);
    await check(
      'Discord ping, signed',
      '200 {"type":1}',
      () => request('POST', '/discord/interactions', ping, discordHeaders(key, ping)),
      (r) => r.status === 200 && (JSON.parse(r.body) as { type?: unknown }).type === 1,
    );
  } else {
    skip('Discord ping, signed', '200 {"type":1}', 'no --discord-private-key (only Discord holds it)');
  }

  const hook = JSON.stringify({
    zen: 'Smoke test.',
    hook_id: 0,
    hook: { type: 'Repository', id: 0, active: true, events: ['*'], config: { content_type: 'json' } },
  });
  await check(
    'GitHub ping, bad signature',
    '401',
    () => request('POST', '/github/webhook', hook, githubHeaders(`not-the-secret-${randomUUID()}`, hook)),
    (r) => r.status === 401,
  );
  if (options.githubSecret !== undefined) {
    const secret = options.githubSecret;
    await check(
      'GitHub ping, signed',
      '2xx',
      () => request('POST', '/github/webhook', hook, githubHeaders(secret, hook)),
      (r) => r.status >= 200 && r.status < 300,
    );
  } else {
    skip('GitHub ping, signed', '2xx', 'no --github-secret or GITHUB_WEBHOOK_SECRET');
  }
  return checks;
}

export function formatChecks(checks: SmokeCheck[]): string {
  const mark = { pass: 'PASS', fail: 'FAIL', skip: 'skip' } as const;
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  const lines = [
    '| result | check | expected | actual |',
    '|---|---|---|---|',
    ...checks.map((c) => `| ${mark[c.status]} | ${c.name} | ${cell(c.expected)} | ${cell(c.actual)} |`),
  ];
  const failed = checks.filter((c) => c.status === 'fail').length;
  lines.push('', failed === 0 ? 'smoke: all checks passed' : `smoke: ${failed} check(s) FAILED`);
  return lines.join('\n');
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      url: { type: 'string' },
      'github-secret': { type: 'string' },
      'discord-private-key': { type: 'string' },
      'discord-key-file': { type: 'string' },
      timeout: { type: 'string' },
    },
  });
  if (values.url === undefined) {
    console.error(
      'usage: npm run smoke -- --url <api base> [--github-secret s] [--discord-private-key hex | --discord-key-file f]',
    );
    return 2;
  }
  const discordPrivateKey =
    values['discord-private-key'] ??
    (values['discord-key-file'] !== undefined
      ? readFileSync(values['discord-key-file'], 'utf8').trim()
      : undefined);
  // A rotation list ("new,old" or a JSON array) signs with its first, current, secret.
  const githubSecret = parseWebhookSecrets(values['github-secret'] ?? env.GITHUB_WEBHOOK_SECRET)[0];
  const checks = await runSmoke({
    url: values.url,
    ...(githubSecret ? { githubSecret } : {}),
    ...(discordPrivateKey ? { discordPrivateKey } : {}),
    ...(values.timeout ? { timeoutMs: Number(values.timeout) } : {}),
  });
  console.log(formatChecks(checks));
  return checks.some((c) => c.status === 'fail') ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
