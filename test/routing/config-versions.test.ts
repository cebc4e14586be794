import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { authorize } from '../../lib/discord/policy.ts';
import { policyWithVersions } from '../../lib/discord/policy-versions.ts';
import { parseConfigSource } from '../../lib/routing/config.ts';
import { activeConfig, pushConfig } from '../../lib/routing/config-versions.ts';
import { ConfigError } from '../../lib/routing/errors.ts';
import { ConfigProvider } from '../../lib/routing/repo-config.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { main } from '../../scripts/config-push.ts';
import { createTestStore, testEndpoint } from '../support/dynamo.ts';

/** Runtime config versions on DynamoDB Local: push, pick-up within the max age, pull, refusal. */
const APPROVER = '200000000000000099';
const pushed = `version: 1
routing:
  triggerLabel: go
discord:
  guilds: ['1098765432109876543']
  admins:
    users: ['${APPROVER}']
`;

let store: DynamoRunStore;
beforeAll(async () => {
  store = await createTestStore();
  // The CLI reads its table from the environment, as it would from a deployed stack's.
  process.env.DYNAMODB_ENDPOINT = testEndpoint();
  process.env.TABLE_NAME = store.tableName;
});

describe('config versions', () => {
  it('a ConfigProvider with a clock sees a pushed version only after the max age, and the Discord policy gains the approver', async () => {
    let t = Date.parse('2026-11-30T12:00:00Z');
    const provider = new ConfigProvider({
      central: parseConfigSource('version: 1\n', 'bundled.yml'),
      store,
      now: () => new Date(t),
    });
    const bundledPolicy = async () => ({
      triggerLabel: 'ready',
      admins: { users: [], roles: [] },
      permissions: {},
      guilds: [],
      channels: [],
    });
    const policy = policyWithVersions(store, bundledPolicy, { now: () => t });
    await provider.cached('acme/app');
    expect(provider.central.routing.triggerLabel).toBe('ready');
    expect(authorize(await policy(), 'approve', { userId: APPROVER, roles: [] }).allowed).toBe(false);

    const stored = await pushConfig(store, pushed, { file: 'next.yml', by: 'test' });
    expect(stored).toMatchObject({ version: 1, by: 'test', file: 'next.yml', text: pushed });
    expect((await pushConfig(store, pushed, { file: 'next.yml', by: 'test' })).version).toBe(2);

    t += 59_000;
    await provider.cached('acme/app');
    expect(provider.central.routing.triggerLabel).toBe('ready');
    expect(authorize(await policy(), 'approve', { userId: APPROVER, roles: [] }).allowed).toBe(false);

    t += 1_000;
    await provider.cached('acme/app');
    expect(provider.centralVersion).toBe(2);
    expect(provider.central.routing.triggerLabel).toBe('go');
    // No restart: the same policy reader now lets the pushed admin approve.
    expect(authorize(await policy(), 'approve', { userId: APPROVER, roles: [] })).toEqual({
      allowed: true,
      via: 'admin-user',
    });
  });

  it('refuses a bad push with file:line: reason, exit code 1, and keeps the active version', async () => {
    const before = await activeConfig(store);
    const dir = await mkdtemp(join(tmpdir(), 'cfg-'));
    const bad = join(dir, 'bad.yml');
    await writeFile(bad, 'version: 1\nrouting:\n  triggerLabel: 5\n');
    await expect(
      pushConfig(store, 'version: 1\nrouting:\n  triggerLabel: 5\n', { file: 'bad.yml', by: 't' }),
    ).rejects.toBeInstanceOf(ConfigError);

    const errors: string[] = [];
    const code = await main(
      ['push', bad],
      () => {},
      (s) => errors.push(s),
    );
    expect(code).toBe(1);
    expect(errors.join('\n')).toMatch(new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:3: `));
    expect((await activeConfig(store))?.version).toBe(before?.version);
  });

  it('config:pull prints the active version and its YAML', async () => {
    const lines: string[] = [];
    expect(await main(['pull'], (s) => lines.push(s))).toBe(0);
    expect(lines[0]).toMatch(/^# version 2 \(pushed by test at .* from next\.yml\)$/);
    expect(lines[1]).toBe(pushed.trimEnd());
  });
});
