import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  effectiveRules,
  loadConfig,
  overlayConfig,
  parseConfig,
  parseConfigSource,
  readSource,
  workflowTuning,
} from '../../lib/routing/config.ts';
import { ConfigError } from '../../lib/routing/errors.ts';
import { buildRegistry } from '../../lib/workflows/index.ts';

const run = promisify(execFile);

function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.file}:${i.line}: ${i.message}`);
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('ships a valid default config whose tuning the workflow registry accepts', async () => {
    const config = await loadConfig('config/switchyard.yml');
    expect(config.routing.triggerLabel).toBe('ready');
    expect(config.routing.prRouteLabel).toBe('switchyard:route');
    expect(Object.keys(config.agents)).toEqual(expect.arrayContaining(['triage', 'planner', 'coder']));
    expect(() => buildRegistry({ 'issue-pipeline': workflowTuning(config, 'issue-pipeline') })).not.toThrow();
  });

  it('fills every section with defaults from an empty file, with the ready rule built in', () => {
    const config = parseConfig('{}', 'empty.yml');
    expect(config.escalation.maxFailures).toBe(3);
    expect(config.discord.admins).toEqual({ users: [], roles: [] });
    expect(config.guards.ci.enabled).toBe(true);
    expect(effectiveRules(config)).toEqual([
      expect.objectContaining({
        name: 'trigger-label',
        event: ['issues'],
        action: ['labeled'],
        label: ['ready'],
        workflow: 'issue-pipeline',
      }),
    ]);
  });

  it('maps workflow tuning onto the engine shape', () => {
    const config = parseConfig(
      'workflows:\n  issue-pipeline:\n    nodes:\n      plan: { timeoutMs: 5000, retry: { maxAttempts: 5 } }\n    disabledGates: [approval]\n',
    );
    expect(workflowTuning(config, 'issue-pipeline')).toEqual({
      nodes: { plan: { timeoutMs: 5000, retry: { maxAttempts: 5 } } },
      disabledGates: ['approval'],
    });
  });

  it.each([
    [
      'an unknown key, at the key',
      'routing:\n  triggerLabel: ready\n  trigerLabel: oops\n',
      'bad.yml:3: unknown key trigerLabel',
    ],
    [
      'a wrong type, at the value',
      'escalation:\n  maxFailures: many\n',
      'bad.yml:2: Invalid input: expected number, received string',
    ],
    [
      'a permission that does not exist',
      'agents:\n  coder:\n    type: coder\n    permissions:\n      - read\n      - merge\n',
      'bad.yml:6: Invalid option',
    ],
    [
      'a CEL syntax error',
      'routing:\n  rules:\n    - name: r\n      event: issues\n      when: "labels.exists(l,"\n',
      'bad.yml:5: invalid CEL',
    ],
    [
      'a reference to an agent that is not declared',
      'routing:\n  rules:\n    - name: r\n      event: issues\n      agents: [ghost]\n',
      'bad.yml:5: unknown agent ghost',
    ],
    [
      'an unquoted Discord id',
      'discord:\n  admins:\n    users: [123456789012345678]\n',
      'bad.yml:3: a Discord id must be quoted',
    ],
    ['YAML syntax', 'routing:\n  rules: [\n', 'bad.yml:3:'],
    ['a duplicate key', 'routing: {}\nrouting: {}\n', 'bad.yml:2:'],
  ])('refuses %s with file, line and reason', (_name, yaml, expected) => {
    const issues = issuesOf(() => parseConfig(yaml, 'bad.yml'));
    expect(issues.join('\n')).toContain(expected);
  });

  describe('repository overlay', () => {
    const central = parseConfigSource(
      [
        'agents:',
        '  planner: { type: planner }',
        '  coder: { type: coder }',
        'routing:',
        '  rules:',
        '    - name: ready-issue',
        '      event: issues',
        '      label: ready',
        '      agents: [planner]',
        'policies:',
        '  - name: hold',
        '    forbid: { labels: [on-hold] }',
      ].join('\n'),
      'central.yml',
    ).source;

    it('replaces a rule of the same name, adds new rules and appends policies', () => {
      const repo = readSource(
        [
          'routing:',
          '  rules:',
          '    - name: ready-issue',
          '      event: issues',
          '      label: go',
          '      agents: [planner, coder]',
          '    - name: docs',
          '      event: issues',
          '      label: docs',
          'policies:',
          '  - name: no-bots',
          '    forbid: { senders: ["*[bot]"] }',
        ].join('\n'),
        'acme/app:.github/switchyard.yml',
      );
      const merged = overlayConfig(central, repo);
      expect(merged.routing.rules.map((r) => [r.name, r.label])).toEqual([
        ['ready-issue', ['go']],
        ['docs', ['docs']],
      ]);
      expect(merged.policies.map((p) => p.name)).toEqual(['hold', 'no-bots']);
    });

    it('refuses central-only keys in a repository file, naming the line', () => {
      const repo = readSource(
        'routing: {}\nagents:\n  evil: { type: coder, permissions: [push] }\n',
        'acme/app:.github/switchyard.yml',
      );
      expect(issuesOf(() => overlayConfig(central, repo))).toEqual([
        'acme/app:.github/switchyard.yml:2: agents can only be set in the central config',
      ]);
    });

    it('names the repository file and line for an error in an overlaid rule', () => {
      const repo = readSource(
        'routing:\n  rules:\n    - name: extra\n      event: issues\n      agents: [nobody]\n',
        'acme/app:.github/switchyard.yml',
      );
      expect(issuesOf(() => overlayConfig(central, repo))).toEqual([
        'acme/app:.github/switchyard.yml:5: unknown agent nobody',
      ]);
    });
  });

  describe('npm run config:check', () => {
    const check = async (...args: string[]) => {
      try {
        const out = await run('npx', ['tsx', 'scripts/config-check.ts', ...args], { encoding: 'utf8' });
        return { code: 0, stdout: out.stdout, stderr: out.stderr };
      } catch (err) {
        const e = err as { code: number; stdout: string; stderr: string };
        return { code: e.code, stdout: e.stdout, stderr: e.stderr };
      }
    };

    it('passes the shipped config', async () => {
      const res = await check('config/switchyard.yml');
      expect(res.code).toBe(0);
      expect(res.stdout).toContain('ok: config/switchyard.yml');
    });

    it('prints file:line: reason and exits 1 for a bad file', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'sy-config-'));
      const file = join(dir, 'switchyard.yml');
      await writeFile(file, 'routing:\n  triggerLabel: ready\n  unmatched:\n    agent: ghost\n');
      const res = await check(file);
      expect(res.code).toBe(1);
      expect(res.stderr).toContain(`${file}:4: routing.unmatched.agent: unknown agent ghost`);
    });

    it('checks a repository overlay on top of the central config', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'sy-config-'));
      await writeFile(join(dir, 'x.yml'), 'discord:\n  defaultRepo: a/b\n');
      const res = await check(join(dir, 'x.yml'), '--repo');
      expect(res.code).toBe(1);
      expect(res.stderr).toContain(`${join(dir, 'x.yml')}:1: discord can only be set in the central config`);
    });
  });
});
