import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import nacl from 'tweetnacl';
import { afterEach, describe, expect, it } from 'vitest';
import { formatChecks, main, runSmoke } from '../../scripts/smoke.ts';

const GITHUB_SECRET = 'smoke-secret';

/**
 * A stand-in for the deployed API that answers like the contract says. It verifies Discord
 * signatures with tweetnacl, an implementation independent of the node:crypto signing under test.
 */
function contractServer(discordPublicKey: Uint8Array): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const reply = (status: number, json: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
      };
      if (req.method === 'GET' && req.url === '/health') return reply(200, { status: 'ok' });
      if (req.method === 'POST' && req.url === '/discord/interactions') {
        const sig = Buffer.from(String(req.headers['x-signature-ed25519'] ?? ''), 'hex');
        const ts = String(req.headers['x-signature-timestamp'] ?? '');
        const message = Buffer.concat([Buffer.from(ts), body]);
        const valid = sig.length === 64 && nacl.sign.detached.verify(message, sig, discordPublicKey);
        if (!valid) return reply(401, { error: 'invalid signature' });
        return reply(200, { type: 1 });
      }
      if (req.method === 'POST' && req.url === '/github/webhook') {
        const given = Buffer.from(String(req.headers['x-hub-signature-256'] ?? ''));
        const expected = Buffer.from(
          `sha256=${createHmac('sha256', GITHUB_SECRET).update(body).digest('hex')}`,
        );
        if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
          return reply(401, { error: 'invalid signature' });
        }
        return reply(202, { accepted: true });
      }
      reply(404, { error: 'not found' });
    });
  };
}

/** An endpoint that forgot to verify anything. */
const acceptsEverything = (_req: IncomingMessage, res: ServerResponse) => {
  _req.resume();
  _req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"type":1}'));
};

let server: Server | undefined;

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  server = createServer(handler);
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

async function stop(): Promise<void> {
  const s = server;
  server = undefined;
  if (!s) return;
  s.closeAllConnections(); // fetch keeps connections alive; close() would wait for them
  await new Promise((resolve) => s.close(resolve));
}

afterEach(stop);

describe('smoke test', () => {
  const seed = randomBytes(32);
  const { publicKey } = nacl.sign.keyPair.fromSeed(seed);

  it('passes every check against an API that follows the contract', async () => {
    const url = await listen(contractServer(publicKey));
    const checks = await runSmoke({
      url,
      githubSecret: GITHUB_SECRET,
      discordPrivateKey: seed.toString('hex'),
    });
    expect(checks.map((c) => [c.name, c.status])).toEqual([
      ['GET /health', 'pass'],
      ['Discord ping, unsigned', 'pass'],
      ['Discord ping, signed with the wrong key', 'pass'],
      ['Discord ping, signed', 'pass'],
      ['GitHub ping, bad signature', 'pass'],
      ['GitHub ping, signed', 'pass'],
    ]);
  });

  it('skips the signed checks it has no key for, and still passes', async () => {
    const url = await listen(contractServer(publicKey));
    const checks = await runSmoke({ url });
    expect(checks.filter((c) => c.status === 'skip').map((c) => c.name)).toEqual([
      'Discord ping, signed',
      'GitHub ping, signed',
    ]);
    expect(checks.some((c) => c.status === 'fail')).toBe(false);
  });

  it('fails the signature checks of an endpoint that accepts anything', async () => {
    const url = await listen(acceptsEverything);
    const checks = await runSmoke({
      url,
      githubSecret: GITHUB_SECRET,
      discordPrivateKey: seed.toString('hex'),
    });
    expect(checks.filter((c) => c.status === 'fail').map((c) => c.name)).toEqual([
      'Discord ping, unsigned',
      'Discord ping, signed with the wrong key',
      'GitHub ping, bad signature',
    ]);
  });

  it('fails a signed ping whose key does not match the endpoint', async () => {
    const url = await listen(contractServer(publicKey));
    const checks = await runSmoke({ url, discordPrivateKey: randomBytes(32).toString('hex') });
    expect(checks.find((c) => c.name === 'Discord ping, signed')?.status).toBe('fail');
  });

  it('reports an unreachable API as failures rather than crashing', async () => {
    const url = await listen(acceptsEverything);
    await stop();
    const checks = await runSmoke({ url, timeoutMs: 2000 });
    expect(checks.filter((c) => c.status !== 'skip').every((c) => c.status === 'fail')).toBe(true);
  });

  it('prints a table and exits non-zero when a check fails', async () => {
    const url = await listen(acceptsEverything);
    const lines: string[] = [];
    const log = console.log;
    console.log = (line: string) => lines.push(line);
    try {
      expect(await main(['--url', url], {})).toBe(1);
    } finally {
      console.log = log;
    }
    expect(lines.join('\n')).toMatch(/\| FAIL \| Discord ping, unsigned \| 401 \| 200/);
    expect(formatChecks([])).toContain('all checks passed');
  });

  it('signs GitHub pings with the first secret of a rotation list from the environment', async () => {
    const url = await listen(contractServer(publicKey));
    const silent = console.log;
    console.log = () => {};
    try {
      expect(await main(['--url', url], { GITHUB_WEBHOOK_SECRET: `${GITHUB_SECRET},older` })).toBe(0);
    } finally {
      console.log = silent;
    }
  });
});
