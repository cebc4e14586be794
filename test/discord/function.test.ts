import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { defaultDeps, makeHandler } from '../../lib/app/discord.ts';
import type { DiscordServices } from '../../lib/discord/handler.ts';
import { servicesFromEnv } from '../../lib/discord/runtime.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { configToJson } from '../../scripts/config-to-json.ts';
import { createTestStore, testEndpoint } from '../support/dynamo.ts';
import { ADMIN, command, GUILD_ID, makeKeys, ping, STRANGER, signedRequest } from './support.ts';

/** The Lambda entry point: API Gateway HTTP API (payload v2) events in, structured results out. */
const keys = makeKeys(31);
let store: DynamoRunStore;
let handler: ReturnType<typeof makeHandler>;
let env: NodeJS.ProcessEnv;
let configFile: string;

function apiEvent(req: ReturnType<typeof signedRequest>, method = 'POST'): APIGatewayProxyEventV2 {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k.toLowerCase()] = v;
  return {
    version: '2.0',
    routeKey: 'POST /discord/interactions',
    rawPath: '/discord/interactions',
    rawQueryString: '',
    headers,
    requestContext: {
      accountId: '123456789012',
      apiId: 'abcdef1234',
      domainName: 'abcdef1234.execute-api.eu-west-1.amazonaws.com',
      domainPrefix: 'abcdef1234',
      http: {
        method,
        path: '/discord/interactions',
        protocol: 'HTTP/1.1',
        sourceIp: '162.159.128.233',
        userAgent: 'Discord-Interactions/1.0',
      },
      requestId: 'Xyz123=',
      routeKey: 'POST /discord/interactions',
      stage: '$default',
      time: '01/Jun/2025:10:00:00 +0000',
      timeEpoch: Date.now(),
    },
    ...(typeof req.body === 'string' ? { body: req.body } : {}),
    isBase64Encoded: req.isBase64Encoded ?? false,
  };
}

beforeAll(async () => {
  store = await createTestStore();
  const dir = mkdtempSync(join(tmpdir(), 'sy-discord-'));
  configFile = join(dir, 'switchyard.yml');
  writeFileSync(
    configFile,
    [
      'version: 1',
      'discord:',
      '  defaultRepo: acme/widgets',
      `  guilds: ["${GUILD_ID}"]`,
      '  admins:',
      `    users: ["${ADMIN.id}"]`,
      '  permissions:',
      '    status:',
      '      roles: []',
      '',
    ].join('\n'),
  );
  env = {
    TABLE_NAME: store.tableName,
    DYNAMODB_ENDPOINT: testEndpoint(),
    QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/switchyard-work',
    AWS_REGION: 'eu-west-1',
    DISCORD_PUBLIC_KEY: keys.publicKeyHex,
    SWITCHYARD_CONFIG: configFile,
  };
  handler = makeHandler(defaultDeps(env));
});

const statusContent = async (h: ReturnType<typeof makeHandler>, user = ADMIN) => {
  const res = await h(apiEvent(signedRequest(keys, command('status', [], { user }))));
  expect(res.statusCode).toBe(200);
  const body = JSON.parse(res.body ?? '{}') as {
    type: number;
    data: { content?: string; embeds?: unknown[] };
  };
  expect(body.type).toBe(4);
  return body.data;
};

describe('functions/discord-interactions', () => {
  it('answers a base64-encoded PING', async () => {
    const res = await handler(apiEvent(signedRequest(keys, ping(), { base64: true })));
    expect(res).toMatchObject({ statusCode: 200, body: '{"type":1}' });
  });

  it('refuses a GET with 405 and an unsigned POST with 401', async () => {
    expect((await handler(apiEvent(signedRequest(keys, ping()), 'GET'))).statusCode).toBe(405);
    const unsigned = signedRequest(keys, ping());
    unsigned.headers['x-signature-ed25519'] = '00'.repeat(64);
    expect((await handler(apiEvent(unsigned))).statusCode).toBe(401);
  });

  it('reads permissions from the YAML config when unbundled (no DISCORD_POLICY_FILE): an admin gets /status', async () => {
    const res = await handler(apiEvent(signedRequest(keys, command('status'))));
    const body = JSON.parse(res.body ?? '{}') as { type: number; data: { flags: number; embeds: unknown[] } };
    expect(body.type).toBe(4);
    expect(body.data.flags).toBe(64);
    expect(body.data.embeds).toHaveLength(1);
  });

  it('and refuses it to anyone else (an empty allowlist means admins only)', async () => {
    const res = await handler(apiEvent(signedRequest(keys, command('status', [], { user: STRANGER }))));
    expect((JSON.parse(res.body ?? '{}') as { data: { content: string } }).data.content).toBe(
      '⛔ /status is limited to admins.',
    );
  });

  it('reads the policy from DISCORD_POLICY_FILE, the JSON the bundle carries, before any YAML', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-discord-json-'));
    const policyFile = join(dir, 'discord-policy.json');
    writeFileSync(policyFile, await configToJson(configFile, { discordPolicy: true }));
    // The YAML path is broken on purpose: only the JSON can let the admin in.
    const fromJson = makeHandler(
      defaultDeps({ ...env, DISCORD_POLICY_FILE: policyFile, SWITCHYARD_CONFIG: join(dir, 'missing.yml') }),
    );
    expect((await statusContent(fromJson)).embeds).toHaveLength(1);
    expect((await statusContent(fromJson, STRANGER)).content).toBe('⛔ /status is limited to admins.');
  });

  it('denies every command when the policy file cannot be read (fail closed)', async () => {
    const broken = makeHandler(
      defaultDeps({ ...env, DISCORD_POLICY_FILE: join(tmpdir(), 'sy-no-such-policy.json') }),
    );
    // No policy: no configured guild either, so the command is refused before any allowlist.
    expect((await statusContent(broken)).content).toBe('⛔ Switchyard is not configured for this server.');
  });

  it('loads the services on the first command, once, and not for a PING', async () => {
    const services = vi.fn(async (): Promise<DiscordServices> => servicesFromEnv(env));
    const lazy = makeHandler({ publicKey: keys.publicKeyHex, services });
    expect((await lazy(apiEvent(signedRequest(keys, ping())))).body).toBe('{"type":1}');
    const unsigned = signedRequest(keys, command('status'));
    unsigned.headers['x-signature-ed25519'] = '00'.repeat(64);
    expect((await lazy(apiEvent(unsigned))).statusCode).toBe(401);
    expect(services).not.toHaveBeenCalled();

    // Concurrent first commands share one load.
    const answers = await Promise.all([statusContent(lazy), statusContent(lazy), statusContent(lazy)]);
    for (const data of answers) expect(data.embeds).toHaveLength(1);
    await statusContent(lazy);
    expect(services).toHaveBeenCalledTimes(1);
  });

  it('tries a failed load again on the next command instead of failing for the life of the container', async () => {
    const services = vi
      .fn<() => Promise<DiscordServices>>()
      .mockRejectedValueOnce(new Error('throttled'))
      .mockImplementation(async () => servicesFromEnv(env));
    const lazy = makeHandler({ publicKey: keys.publicKeyHex, services });
    await expect(lazy(apiEvent(signedRequest(keys, command('status'))))).rejects.toThrow('throttled');
    expect((await statusContent(lazy)).embeds).toHaveLength(1);
    expect(services).toHaveBeenCalledTimes(2);
  });

  it('names a missing variable before any request, also those only commands use', () => {
    expect(() => defaultDeps({ TABLE_NAME: 't', QUEUE_URL: 'q', AWS_REGION: 'eu-west-1' })).toThrow(
      /DISCORD_PUBLIC_KEY/,
    );
    expect(() => defaultDeps({ DISCORD_PUBLIC_KEY: keys.publicKeyHex, QUEUE_URL: 'q' })).toThrow(
      /TABLE_NAME/,
    );
    expect(() => defaultDeps({ DISCORD_PUBLIC_KEY: keys.publicKeyHex, TABLE_NAME: 't' })).toThrow(
      /QUEUE_URL/,
    );
  });
});
