import { discordFunction } from '../lib/app/discord.ts';

/** POST /discord/interactions: lib/app/discord.ts. */
export const handler = discordFunction();
