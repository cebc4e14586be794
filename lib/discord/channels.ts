/**
 * Discord guilds and the channel per repository (config `discord.guilds`, `discord.channels[]`).
 * Plain functions over plain data: the interactions function reads them without the config schema
 * (no zod on the 3-second path), the worker's reporter reads them from the validated config.
 */

export interface Approvers {
  roles: string[];
  users: string[];
}

export interface ChannelMapping {
  /** Repository globs (`owner/*`, `owner/name`); the first mapping with a match wins. */
  repos: string[];
  channel: string;
  approvers: Approvers;
  /** Role mentioned once when a gate that needs a person opens. */
  mention?: string | undefined;
}

export interface ChannelsPolicy {
  /** Guilds whose commands and buttons are served; an empty list serves none (fail closed). */
  guilds: string[];
  channels: ChannelMapping[];
}

const globCache = new Map<string, RegExp>();

/** `*` matches within one path segment, `**` across; case-insensitive (GitHub names are). */
export function repoGlob(pattern: string): RegExp {
  let re = globCache.get(pattern);
  if (!re) {
    const body = pattern
      .split('**')
      .map((part) =>
        part
          .split('*')
          .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
          .join('[^/]*'),
      )
      .join('.*');
    re = new RegExp(`^${body}$`, 'i');
    globCache.set(pattern, re);
  }
  return re;
}

export const repoMatches = (pattern: string, repo: string): boolean => repoGlob(pattern).test(repo);

/** The mapping for a repository: the first whose globs match, or none. */
export function channelFor(
  channels: readonly ChannelMapping[],
  repo: string | undefined,
): ChannelMapping | undefined {
  if (!repo) return undefined;
  return channels.find((c) => c.repos.some((p) => repoMatches(p, repo)));
}

/** Does the channel (where a command was typed) map `repo`? Every mapping of that channel counts. */
export function channelMapsRepo(
  channels: readonly ChannelMapping[],
  channelId: string,
  repo: string,
): boolean {
  return channels.some((c) => c.channel === channelId && channelFor(channels, repo) === c);
}

export function guildAllowed(policy: Pick<ChannelsPolicy, 'guilds'>, guildId: string | undefined): boolean {
  return guildId !== undefined && policy.guilds.includes(guildId);
}

export function isApprover(
  approvers: Approvers,
  actor: { userId: string; roles: readonly string[] },
): boolean {
  return approvers.users.includes(actor.userId) || actor.roles.some((r) => approvers.roles.includes(r));
}

/**
 * Gates that wait for a person (approval, escalation, budget, and kinds added later) open with a
 * mention; an agent's result, a hold a person asked for and a wait for green CI do not.
 */
const NOT_FOR_A_PERSON: ReadonlySet<string> = new Set(['agent', 'hold', 'ci']);
export const gateNeedsPerson = (kind: string): boolean => !NOT_FOR_A_PERSON.has(kind);

// ------------------------------------------------------------------------------ parsing

const SNOWFLAKE = /^\d{15,21}$/;
const REPO_GLOB = /^[\w.*-]+\/[\w.*-]+$|^\*\*?$/;
const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A list of quoted Discord ids from config; each bad entry is a problem naming its path. */
export function discordIds(value: unknown, path: string, problems: string[]): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    problems.push(`${path} must be a list of Discord ids`);
    return [];
  }
  const out: string[] = [];
  for (const [i, v] of value.entries()) {
    // Every real snowflake is above 2^53: as a YAML number it has already lost its last digits.
    if (typeof v === 'string' && SNOWFLAKE.test(v)) out.push(v);
    else if (typeof v === 'number')
      problems.push(`${path}[${i}] must be quoted: as a number the id loses precision`);
    else problems.push(`${path}[${i}] is not a Discord id`);
  }
  return out;
}

/**
 * Read `discord.guilds` and `discord.channels` from a parsed config (validated or raw). A malformed
 * mapping is dropped and reported: that can only take rights and messages away, never add them.
 */
export function channelsFromConfig(discord: Record<string, unknown>, problems: string[]): ChannelsPolicy {
  const guilds = discordIds(discord.guilds, 'discord.guilds', problems);
  const channels: ChannelMapping[] = [];
  const raw = discord.channels;
  if (raw !== undefined && raw !== null && !Array.isArray(raw))
    problems.push('discord.channels must be a list');
  for (const [i, c] of (Array.isArray(raw) ? raw : []).entries()) {
    const path = `discord.channels[${i}]`;
    if (!isRecord(c)) {
      problems.push(`${path} must be a mapping`);
      continue;
    }
    const repos = Array.isArray(c.repos)
      ? c.repos.filter((r): r is string => typeof r === 'string' && REPO_GLOB.test(r))
      : [];
    if (!Array.isArray(c.repos) || repos.length !== c.repos.length || repos.length === 0) {
      problems.push(`${path}.repos must be a list of owner/name globs`);
      continue;
    }
    if (typeof c.channel !== 'string' || !SNOWFLAKE.test(c.channel)) {
      problems.push(`${path}.channel is not a quoted Discord id`);
      continue;
    }
    const approvers = isRecord(c.approvers) ? c.approvers : {};
    const mapping: ChannelMapping = {
      repos,
      channel: c.channel,
      approvers: {
        roles: discordIds(approvers.roles, `${path}.approvers.roles`, problems),
        users: discordIds(approvers.users, `${path}.approvers.users`, problems),
      },
    };
    if (typeof c.mention === 'string' && SNOWFLAKE.test(c.mention)) mapping.mention = c.mention;
    else if (c.mention !== undefined) problems.push(`${path}.mention is not a quoted Discord id`);
    channels.push(mapping);
  }
  return { guilds, channels };
}
