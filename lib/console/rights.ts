import picomatch from 'picomatch';
import {
  type Actor,
  authorize,
  type CommandName,
  type DiscordPolicy,
  policyFromConfig,
} from '../discord/policy.ts';

/**
 * What a console viewer may see and do. On the local stack the viewer is the operator on
 * loopback (everything, like the CLI). On AWS the viewer is the Discord user a signed link was
 * made for, and the rights are the ones Discord gives them, from the same config:
 * - admins see and do everything;
 * - without `discord.channels[]` mappings, a user allowed `/status` sees every repository, as
 *   `/status` shows them;
 * - with mappings, a user allowed `/status` sees the repositories mapped to the channel the link
 *   was asked for in, and an approver of a mapping sees (and may approve or reject in) that
 *   mapping's repositories;
 * - approve/reject need `/approve` rights (Discord's Reject button is part of approving), cancel
 *   needs `/cancel`, retry needs `/retry` (admins only until the config grants it).
 * A run without a repository is visible only to viewers who see every repository.
 */

export type ConsoleAction = 'approve' | 'reject' | 'cancel' | 'retry';
export const CONSOLE_ACTIONS: readonly ConsoleAction[] = ['approve', 'reject', 'cancel', 'retry'];

export type Viewer =
  | { kind: 'local' }
  | { kind: 'discord'; userId: string; roles: readonly string[]; channelId?: string };

export interface Rights {
  /** Recorded as the signal's `by` and in audit events. */
  by: string;
  /** Shown in the page header. */
  label: string;
  /** Sees every repository (and runs without one). */
  all: boolean;
  sees(repo: string | undefined): boolean;
  may(action: ConsoleAction, repo: string | undefined): boolean;
}

/** The part of the config the console reads: the Discord policy document (raw or validated). */
export type PolicyDocument = unknown;

interface ChannelGrant {
  channel: string | undefined;
  match: (repo: string) => boolean;
  users: string[];
  roles: string[];
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string' && s !== '') : [];

/** `discord.channels[]` approvers; malformed entries grant nothing (fail closed). */
export function channelGrants(doc: PolicyDocument): ChannelGrant[] {
  const discord = isRecord(doc) && isRecord(doc.discord) ? doc.discord : {};
  const out: ChannelGrant[] = [];
  for (const c of Array.isArray(discord.channels) ? discord.channels : []) {
    if (!isRecord(c)) continue;
    const repos = typeof c.repos === 'string' ? [c.repos] : strings(c.repos);
    const approvers = isRecord(c.approvers) ? c.approvers : {};
    if (repos.length === 0) continue;
    const match = picomatch(repos, { nocase: true });
    out.push({
      channel: typeof c.channel === 'string' ? c.channel : undefined,
      match,
      users: strings(approvers.users),
      roles: strings(approvers.roles),
    });
  }
  return out;
}

const ACTION_COMMAND: Record<ConsoleAction, string> = {
  approve: 'approve',
  reject: 'approve',
  cancel: 'cancel',
  retry: 'retry',
};

export function rightsFor(viewer: Viewer, doc: PolicyDocument): Rights {
  if (viewer.kind === 'local') {
    return { by: 'console:local', label: 'local operator', all: true, sees: () => true, may: () => true };
  }
  const { policy } = policyFromConfig(doc);
  return discordRights(viewer, policy, channelGrants(doc));
}

function discordRights(
  viewer: { userId: string; roles: readonly string[]; channelId?: string },
  policy: DiscordPolicy,
  grants: ChannelGrant[],
): Rights {
  const actor: Actor = { userId: viewer.userId, roles: viewer.roles };
  // Commands this config does not know (yet) are admin-only: authorize fails closed on them.
  const allowed = (command: string) => authorize(policy, command as CommandName, actor).allowed;
  const admin = authorize({ ...policy, permissions: {} }, 'status', actor).allowed;
  const status = allowed('status');
  const all = admin || (status && grants.length === 0);
  const mine = grants.filter(
    (g) => g.users.includes(viewer.userId) || viewer.roles.some((r) => g.roles.includes(r)),
  );
  const here = status ? grants.filter((g) => g.channel !== undefined && g.channel === viewer.channelId) : [];
  const approverOf = (repo: string | undefined) => repo !== undefined && mine.some((g) => g.match(repo));
  const sees = (repo: string | undefined) =>
    all || approverOf(repo) || (repo !== undefined && here.some((g) => g.match(repo)));
  return {
    by: `discord:${viewer.userId}`,
    label: `Discord user ${viewer.userId}`,
    all,
    sees,
    may: (action, repo) => {
      if (!sees(repo)) return false;
      if (allowed(ACTION_COMMAND[action])) return true;
      return (action === 'approve' || action === 'reject') && approverOf(repo);
    },
  };
}
