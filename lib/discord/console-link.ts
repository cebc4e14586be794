import type { APIActionRowComponent, APIButtonComponentWithURL } from 'discord-api-types/v10';
import { createLinkToken, type KvStore } from '../console/access.ts';
import type { Actor } from './policy.ts';
import { ButtonStyle, ComponentType } from './protocol.ts';

/**
 * `/status`'s "Open in browser" link to the run console: a signed, 1-hour, single-use token bound
 * to the Discord user (lib/console/access.ts). Sent only in ephemeral answers, so only that user
 * sees it. No key configured: no link (the console then has no way in, which is the safe default).
 */
export function makeConsoleLink(opts: {
  kv: KvStore;
  keys: () => Promise<string[]>;
  baseUrl: string;
  now?: () => Date;
}): (actor: Actor, channelId?: string) => Promise<string | undefined> {
  const now = opts.now ?? (() => new Date());
  const base = opts.baseUrl.replace(/\/+$/, '');
  return async (actor, channelId) => {
    const keys = await opts.keys();
    if (keys.length === 0) return undefined;
    const grant = { userId: actor.userId, roles: [...actor.roles], ...(channelId ? { channelId } : {}) };
    const token = await createLinkToken(opts.kv, keys, grant, now());
    return `${base}/console/auth?token=${token}`;
  };
}

export function consoleLinkRow(url: string): APIActionRowComponent<APIButtonComponentWithURL> {
  return {
    type: ComponentType.ActionRow,
    components: [{ type: ComponentType.Button, style: ButtonStyle.Link, label: 'Open in browser', url }],
  };
}
