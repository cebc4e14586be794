import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { policyFromConfig } from '../../lib/discord/policy.ts';
import { loadConfig, parseConfig } from '../../lib/routing/config.ts';
import { discordPolicyDocument } from '../../scripts/config-to-json.ts';
import { ADMIN, APPROVER } from './support.ts';

/**
 * The Discord function reads its policy from JSON written at bundle time (scripts/config-to-json.ts),
 * not from the YAML: the JSON must give exactly the policy the YAML gives.
 */
const FULL = [
  'version: 1',
  'routing:',
  '  triggerLabel: go',
  'discord:',
  '  defaultRepo: acme/widgets',
  '  notifyRole: "300000000000000009"',
  '  admins:',
  `    users: ["${ADMIN.id}"]`,
  '    roles: ["300000000000000001"]',
  '  permissions:',
  '    approve:',
  `      users: ["${APPROVER.id}"]`,
  '      roles: ["300000000000000002"]',
  '    status:',
  '      roles: []',
  '',
].join('\n');

const run = promisify(execFile);
const script = (args: string[]) =>
  run(process.execPath, ['--import', 'tsx', 'scripts/config-to-json.ts', ...args], {
    env: { PATH: process.env.PATH },
    cwd: process.cwd(),
  });

describe('the Discord policy as JSON', () => {
  it.each([
    ['a full discord section', async () => parseConfig(FULL)],
    ['config/switchyard.yml', () => loadConfig('config/switchyard.yml')],
    ['a config without a discord section', async () => parseConfig('version: 1\n')],
  ])('gives the same policy as the config it comes from: %s', async (_, load) => {
    const config = await load();
    // Through JSON, as the function reads it.
    const document = JSON.parse(JSON.stringify(discordPolicyDocument(config))) as unknown;
    const fromJson = policyFromConfig(document);
    expect(fromJson.problems).toEqual([]);
    expect(fromJson.policy).toEqual(policyFromConfig(config).policy);
  });

  it('holds only what the Discord function reads', () => {
    const document = discordPolicyDocument(parseConfig(FULL));
    expect(Object.keys(document).sort()).toEqual(['discord', 'routing']);
    expect(document.routing).toEqual({ triggerLabel: 'go' });
    expect(policyFromConfig(document).policy).toMatchObject({
      triggerLabel: 'go',
      defaultRepo: 'acme/widgets',
      notifyRole: '300000000000000009',
      admins: { users: [ADMIN.id], roles: ['300000000000000001'] },
      permissions: { approve: { users: [APPROVER.id], roles: ['300000000000000002'] } },
    });
  });

  it('runs as a script: writes the file the stack puts in the Discord asset', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-policy-json-'));
    const [yml, out] = [join(dir, 'switchyard.yml'), join(dir, 'discord-policy.json')];
    writeFileSync(yml, FULL);
    await script(['--discord-policy', yml, out]);
    expect(policyFromConfig(JSON.parse(readFileSync(out, 'utf8'))).policy).toEqual(
      policyFromConfig(parseConfig(FULL)).policy,
    );
  });

  it('fails the build on a config that does not validate, with file:line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-policy-json-'));
    const yml = join(dir, 'switchyard.yml');
    // An unquoted snowflake has already lost its last digits.
    writeFileSync(yml, 'version: 1\ndiscord:\n  admins:\n    users: [200000000000000001]\n');
    const failed = await script(['--discord-policy', yml, join(dir, 'out.json')]).then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toMatch(new RegExp(`${yml.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4: `));
  });
});
