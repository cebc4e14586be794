import { describe, expect, it } from 'vitest';
import {
  authorize,
  type CommandName,
  DENY_ALL,
  type DiscordPolicy,
  policyFromConfig,
} from '../../lib/discord/policy.ts';

const ADMIN_USER = '100000000000000001';
const ADMIN_ROLE = '100000000000000010';
const APPROVER_ROLE = '100000000000000020';
const PLANNER_USER = '100000000000000003';
const NOBODY = '100000000000000099';

const policy: DiscordPolicy = {
  triggerLabel: 'ready',
  admins: { users: [ADMIN_USER], roles: [ADMIN_ROLE] },
  permissions: {
    approve: { roles: [APPROVER_ROLE] },
    plan: { users: [PLANNER_USER], roles: [] },
    status: { users: [], roles: [] },
  },
  guilds: [],
  channels: [],
};

describe('authorize', () => {
  it.each<[string, CommandName, string, string[], boolean]>([
    ['an admin user, any command', 'route', ADMIN_USER, [], true],
    ['an admin role, any command', 'cancel', NOBODY, [ADMIN_ROLE], true],
    ['an allowlisted role', 'approve', NOBODY, [APPROVER_ROLE], true],
    ['an allowlisted user', 'plan', PLANNER_USER, [], true],
    ['an allowlisted role on another command', 'cancel', NOBODY, [APPROVER_ROLE], false],
    ['anyone on a command with no allowlist (fail closed)', 'route', NOBODY, [], false],
    ['anyone on a command with an empty allowlist (fail closed)', 'status', NOBODY, [APPROVER_ROLE], false],
    ['a user on the wrong list', 'approve', PLANNER_USER, [], false],
  ])('%s → %s', (_name, command, userId, roles, allowed) => {
    expect(authorize(policy, command, { userId, roles }).allowed).toBe(allowed);
  });

  it('allows nobody when nothing is configured', () => {
    for (const command of ['plan', 'status', 'approve', 'cancel', 'route'] as const) {
      expect(authorize(DENY_ALL, command, { userId: ADMIN_USER, roles: [ADMIN_ROLE] }).allowed).toBe(false);
    }
  });

  it('says why a refusal happened', () => {
    expect(authorize(policy, 'route', { userId: NOBODY, roles: [] })).toEqual({
      allowed: false,
      reason: '/route is limited to admins',
    });
  });
});

describe('policyFromConfig', () => {
  it('reads the discord section and the trigger label', () => {
    const { policy: p, problems } = policyFromConfig({
      routing: { triggerLabel: 'switchyard' },
      discord: {
        defaultRepo: 'acme/widgets',
        notifyRole: APPROVER_ROLE,
        admins: { users: [ADMIN_USER], roles: [] },
        permissions: { approve: { roles: [APPROVER_ROLE] } },
      },
    });
    expect(problems).toEqual([]);
    expect(p).toEqual({
      triggerLabel: 'switchyard',
      defaultRepo: 'acme/widgets',
      notifyRole: APPROVER_ROLE,
      guilds: [],
      channels: [],
      admins: { users: [ADMIN_USER], roles: [] },
      permissions: { approve: { users: [], roles: [APPROVER_ROLE] } },
    });
  });

  it('defaults the trigger label to ready and allows nobody without a discord section', () => {
    const { policy: p } = policyFromConfig({});
    expect(p.triggerLabel).toBe('ready');
    expect(authorize(p, 'status', { userId: ADMIN_USER, roles: [] }).allowed).toBe(false);
  });

  it.each([
    ['a number id that lost precision', { admins: { users: [123456789012345680000] } }],
    ['a name instead of an id', { admins: { roles: ['maintainers'] } }],
    ['an unknown command', { permissions: { deploy: { users: [ADMIN_USER] } } }],
    ['a list that is not a list', { permissions: { plan: { users: ADMIN_USER } } }],
  ])('drops %s and reports it, never widening access', (_name, discord) => {
    const { policy: p, problems } = policyFromConfig({ discord });
    expect(problems.length).toBeGreaterThan(0);
    expect(p.admins.users).toEqual([]);
    expect(p.admins.roles).toEqual([]);
    expect(Object.values(p.permissions).every((l) => (l?.users?.length ?? 0) === 0)).toBe(true);
  });
});
