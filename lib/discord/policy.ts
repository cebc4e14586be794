/**
 * Who may use which command. A minimal view of the config's `discord` section (the full schema
 * lives in lib/routing/config.ts); the Discord function reads only this, so it does not have to
 * load the config schema library at cold start.
 */
import { type ChannelMapping, channelFor, channelsFromConfig, discordIds, isApprover } from './channels.ts';

export const COMMAND_NAMES = [
  'plan',
  'status',
  'approve',
  'cancel',
  'route',
  'retry',
  'pause',
  'resume',
] as const;
/** The kill switch is for admins only: no allowlist in the config can hand it out. */
const ADMIN_ONLY: ReadonlySet<string> = new Set(['pause', 'resume']);
export type CommandName = (typeof COMMAND_NAMES)[number];

export interface Allowlist {
  users?: string[];
  roles?: string[];
}

export interface DiscordPolicy {
  defaultRepo?: string;
  /** Role to mention when a run needs a person (approval gates). */
  notifyRole?: string;
  /** Issues carrying this label are planned by `/plan` without an issue. */
  triggerLabel: string;
  admins: { users: string[]; roles: string[] };
  permissions: Partial<Record<CommandName, Allowlist>>;
  /** Guilds whose commands and buttons are served; none listed serves none (fail closed). */
  guilds: string[];
  /** The channel per repository, with its approvers (lib/discord/channels.ts). */
  channels: ChannelMapping[];
}

export const DEFAULT_TRIGGER_LABEL = 'ready';

export interface Actor {
  userId: string;
  roles: readonly string[];
}

export type Decision =
  | { allowed: true; via: 'admin-user' | 'admin-role' | 'user' | 'role' | 'approver' }
  | { allowed: false; reason: string };

const nonEmpty = (l: Allowlist | undefined): boolean =>
  Boolean(l && ((l.users?.length ?? 0) > 0 || (l.roles?.length ?? 0) > 0));

/**
 * Fail closed: admins may use everything; otherwise the command's own allowlist decides, and a
 * command without an allowlist is for admins only. No config at all means nobody.
 */
export function authorize(policy: DiscordPolicy, command: CommandName, actor: Actor): Decision {
  if (policy.admins.users.includes(actor.userId)) return { allowed: true, via: 'admin-user' };
  if (actor.roles.some((r) => policy.admins.roles.includes(r))) return { allowed: true, via: 'admin-role' };
  if (ADMIN_ONLY.has(command)) return { allowed: false, reason: `/${command} is limited to admins` };
  const list = policy.permissions[command];
  if (!nonEmpty(list)) return { allowed: false, reason: `/${command} is limited to admins` };
  if (list?.users?.includes(actor.userId)) return { allowed: true, via: 'user' };
  if (actor.roles.some((r) => list?.roles?.includes(r))) return { allowed: true, via: 'role' };
  return { allowed: false, reason: `you are not on the allowlist for /${command}` };
}

/** Commands that decide about a run (`/reject` and Edit plan count as approve): on a repository with a channel mapping, its approvers hold them. */
const RUN_DECISIONS: ReadonlySet<CommandName> = new Set(['approve', 'cancel', 'retry']);

/**
 * Per-repository rights: admins act everywhere; on a repository that maps to a channel, the
 * mapping's approvers decide its runs (the global allowlists do not reach into it); anything else
 * falls back to the command's global allowlist.
 */
export function authorizeFor(
  policy: DiscordPolicy,
  command: CommandName,
  actor: Actor,
  repo: string | undefined,
): Decision {
  const global = authorize(policy, command, actor);
  if (global.allowed && (global.via === 'admin-user' || global.via === 'admin-role')) return global;
  const mapping = RUN_DECISIONS.has(command) ? channelFor(policy.channels, repo) : undefined;
  if (!mapping) return global;
  if (isApprover(mapping.approvers, actor)) return { allowed: true, via: 'approver' };
  return { allowed: false, reason: `you are not an approver for ${repo}` };
}

const SNOWFLAKE = /^\d{15,21}$/;
const REPO = /^[\w.-]+\/[\w.-]+$/;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Extract the policy from a parsed config object (validated or raw YAML). Anything malformed is
 * dropped and reported, which can only take permissions away (fail closed), never add them.
 */
export function policyFromConfig(config: unknown): { policy: DiscordPolicy; problems: string[] } {
  const problems: string[] = [];
  const root = isRecord(config) ? config : {};
  const discord = isRecord(root.discord) ? root.discord : {};
  const routing = isRecord(root.routing) ? root.routing : {};
  const admins = isRecord(discord.admins) ? discord.admins : {};
  const permissions: Partial<Record<CommandName, Allowlist>> = {};
  const rawPerms = isRecord(discord.permissions) ? discord.permissions : {};
  for (const [name, value] of Object.entries(rawPerms)) {
    if (!(COMMAND_NAMES as readonly string[]).includes(name)) {
      problems.push(`discord.permissions.${name} is not a command (${COMMAND_NAMES.join(', ')})`);
      continue;
    }
    if (!isRecord(value)) {
      problems.push(`discord.permissions.${name} must have users and/or roles`);
      continue;
    }
    permissions[name as CommandName] = {
      users: discordIds(value.users, `discord.permissions.${name}.users`, problems),
      roles: discordIds(value.roles, `discord.permissions.${name}.roles`, problems),
    };
  }
  const policy: DiscordPolicy = {
    triggerLabel:
      typeof routing.triggerLabel === 'string' && routing.triggerLabel !== ''
        ? routing.triggerLabel
        : DEFAULT_TRIGGER_LABEL,
    admins: {
      users: discordIds(admins.users, 'discord.admins.users', problems),
      roles: discordIds(admins.roles, 'discord.admins.roles', problems),
    },
    permissions,
    ...channelsFromConfig(discord, problems),
  };
  if (typeof discord.defaultRepo === 'string') {
    if (REPO.test(discord.defaultRepo)) policy.defaultRepo = discord.defaultRepo;
    else problems.push('discord.defaultRepo must be owner/name');
  }
  if (typeof discord.notifyRole === 'string' && SNOWFLAKE.test(discord.notifyRole))
    policy.notifyRole = discord.notifyRole;
  return { policy, problems };
}

/** The policy that allows nothing: used when the config cannot be read. */
export const DENY_ALL: DiscordPolicy = {
  triggerLabel: DEFAULT_TRIGGER_LABEL,
  admins: { users: [], roles: [] },
  permissions: {},
  guilds: [],
  channels: [],
};
