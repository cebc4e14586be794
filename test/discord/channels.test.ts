import { describe, expect, it } from 'vitest';
import type { Plan } from '../../lib/agents/planner.ts';
import {
  channelFor,
  channelMapsRepo,
  channelsFromConfig,
  guildAllowed,
  repoMatches,
} from '../../lib/discord/channels.ts';
import { DiscordInputError } from '../../lib/discord/errors.ts';
import { editPlan, parsePlanText } from '../../lib/discord/plan-edit.ts';
import { authorizeFor, policyFromConfig } from '../../lib/discord/policy.ts';

const GUILD = '100000000000000100';
const CH_A = '100000000000000201';
const CH_B = '100000000000000202';
const APPROVER_ROLE = '100000000000000300';
const ADMIN = '100000000000000400';

const { policy, problems } = policyFromConfig({
  discord: {
    guilds: [GUILD],
    admins: { users: [ADMIN] },
    permissions: { approve: { roles: ['100000000000000999'] } },
    channels: [
      { repos: ['acme/special'], channel: CH_B, approvers: { users: ['100000000000000500'] } },
      { repos: ['acme/*'], channel: CH_A, approvers: { roles: [APPROVER_ROLE] }, mention: APPROVER_ROLE },
    ],
  },
});

describe('channel mappings', () => {
  it('reads guilds and channels without problems', () => {
    expect(problems).toEqual([]);
    expect(policy.guilds).toEqual([GUILD]);
    expect(policy.channels).toHaveLength(2);
  });

  it.each([
    ['acme/*', 'acme/app', true],
    ['acme/*', 'ACME/App', true],
    ['acme/*', 'other/app', false],
    ['acme/app', 'acme/app2', false],
    ['**', 'any/thing', true],
    ['acme/a.b', 'acme/aXb', false],
  ])('%s matches %s: %s', (glob, repo, expected) => {
    expect(repoMatches(glob, repo)).toBe(expected);
  });

  it('takes the first matching mapping', () => {
    expect(channelFor(policy.channels, 'acme/special')?.channel).toBe(CH_B);
    expect(channelFor(policy.channels, 'acme/app')?.channel).toBe(CH_A);
    expect(channelFor(policy.channels, 'other/app')).toBeUndefined();
    expect(channelMapsRepo(policy.channels, CH_A, 'acme/special')).toBe(false);
  });

  it('fails closed on guilds: none configured serves none, and a DM is never served', () => {
    expect(guildAllowed(policy, GUILD)).toBe(true);
    expect(guildAllowed(policy, '100000000000000101')).toBe(false);
    expect(guildAllowed(policy, undefined)).toBe(false);
    expect(guildAllowed({ guilds: [] }, GUILD)).toBe(false);
  });

  it('drops malformed mappings and says why (it can only take rights away)', () => {
    const out: string[] = [];
    const read = channelsFromConfig(
      {
        guilds: [123],
        channels: [
          { repos: ['not a repo'], channel: CH_A },
          { repos: ['a/b'], channel: 5 },
        ],
      },
      out,
    );
    expect(read).toEqual({ guilds: [], channels: [] });
    expect(out).toHaveLength(3);
  });
});

describe('per-repository rights', () => {
  const approver = { userId: '100000000000000600', roles: [APPROVER_ROLE] };
  it('lets the mapping approvers decide that repository runs, and only those', () => {
    expect(authorizeFor(policy, 'approve', approver, 'acme/app').allowed).toBe(true);
    expect(authorizeFor(policy, 'approve', approver, 'acme/special').allowed).toBe(false);
    expect(authorizeFor(policy, 'cancel', approver, 'acme/app').allowed).toBe(true);
  });
  it('keeps the global allowlist out of mapped repositories, and admins everywhere', () => {
    const global = { userId: '100000000000000700', roles: ['100000000000000999'] };
    expect(authorizeFor(policy, 'approve', global, 'acme/app').allowed).toBe(false);
    expect(authorizeFor(policy, 'approve', global, 'other/app').allowed).toBe(true);
    expect(authorizeFor(policy, 'approve', { userId: ADMIN, roles: [] }, 'acme/app').allowed).toBe(true);
  });
});

describe('plan edits', () => {
  const plan: Plan = {
    title: 'Fix it',
    summary: 's',
    tasks: [{ id: 't1', title: 'Fix the parser', agent: 'coder', files: ['src/parser.ts'], done: false }],
    files: ['src/parser.ts'],
    version: 'pold',
    planner: 'deterministic',
    repo: 'acme/app',
    issue: 1,
  };

  it('reads one `agent: title` per line, skipping blank lines', () => {
    expect(parsePlanText('coder: A\n\n  coverage:  B  \n', ['coder', 'coverage'])).toEqual([
      { agent: 'coder', title: 'A' },
      { agent: 'coverage', title: 'B' },
    ]);
  });

  it.each([
    ['an agent outside the decision', 'planner: x', 'line 1: planner is not an agent of this run'],
    ['a line without an agent', 'just do it', 'line 1: write it as "agent: title"'],
    ['no tasks', '\n\n', 'at least one task'],
    ['too many tasks', Array.from({ length: 21 }, (_, i) => `coder: t${i}`).join('\n'), 'at most 20 tasks'],
    ['a long title', `coder: ${'x'.repeat(201)}`, 'longer than 200'],
  ])('refuses %s', (_name, text, reason) => {
    expect(() => parsePlanText(text, ['coder'])).toThrow(DiscordInputError);
    expect(() => parsePlanText(text, ['coder'])).toThrow(reason);
  });

  it('makes a new version recording who edited it; a kept task keeps its files', () => {
    const next = editPlan(
      plan,
      [
        { agent: 'coder', title: 'Write a test' },
        { agent: 'coder', title: 'Fix the parser' },
      ],
      'discord:1',
      '2026-01-01T00:00:00.000Z',
    );
    expect(next.version).not.toBe(plan.version);
    expect(next.tasks[1]).toMatchObject({ id: 't2', files: ['src/parser.ts'] });
    expect(next.edited).toEqual({ by: 'discord:1', at: '2026-01-01T00:00:00.000Z', from: 'pold' });
  });
});

describe('config schema', () => {
  it('validates discord.guilds and discord.channels and names the bad line', async () => {
    const { parseConfig } = await import('../../lib/routing/config.ts');
    const ok = parseConfig(
      `version: 1\ndiscord:\n  guilds: ["${GUILD}"]\n  channels:\n    - repos: ["acme/*"]\n      channel: "${CH_A}"\n      mention: "${APPROVER_ROLE}"\n`,
    );
    expect(ok.discord.channels[0]).toEqual({
      repos: ['acme/*'],
      channel: CH_A,
      approvers: { roles: [], users: [] },
      mention: APPROVER_ROLE,
    });
    expect(() =>
      parseConfig(
        'version: 1\ndiscord:\n  channels:\n    - repos: ["acme/*"]\n      channel: 1234\n',
        'c.yml',
      ),
    ).toThrow(/c\.yml:5: .*quoted/);
  });
});
