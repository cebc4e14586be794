import { z } from 'zod';

/**
 * Config `discord.guilds` and `discord.channels[]` (central only: `discord` is not a repo overlay
 * key). The Discord function reads the same keys without zod (lib/discord/channels.ts); this schema
 * is what `config:check`, `config:push` and the bundle step validate with `file:line: reason`.
 */
const snowflake = z
  .string({ error: 'a Discord id must be quoted (as a number it loses precision)' })
  .regex(/^\d{15,21}$/, 'not a Discord id');

const ChannelMappingSchema = z.strictObject({
  /** Repository globs; the first mapping with a match wins. */
  repos: z
    .array(
      z.string().regex(/^[\w.*-]+\/[\w.*-]+$|^\*\*?$/, 'a repository glob is owner/name (with * wildcards)'),
    )
    .min(1),
  channel: snowflake,
  approvers: z
    .strictObject({ roles: z.array(snowflake).default([]), users: z.array(snowflake).default([]) })
    .default({ roles: [], users: [] }),
  /** Role mentioned once when a gate that needs a person opens. */
  mention: snowflake.optional(),
});

export const DiscordChannelsShape = {
  /** Commands and buttons from any other guild are refused; none listed refuses all. */
  guilds: z.array(snowflake).default([]),
  channels: z.array(ChannelMappingSchema).default([]),
};
