import type { APIMessage } from 'discord-api-types/v10';
import { isRetryable } from '../common/errors.ts';
import type { RunStore } from '../engine/ports.ts';
import type { Run } from '../engine/types.ts';
import { DiscordApiError, DiscordNotFoundError } from './errors.ts';
import { INTERACTION_TOKEN_TTL_MS } from './protocol.ts';
import type { MessageBody } from './render.ts';
import type { DiscordRest } from './rest.ts';

/**
 * Where a run's Discord message lives. Two KV records, so the credential expires on its own:
 * - `discord-token` / interaction id: the interaction token, TTL 15 minutes, read by nobody else;
 * - `discord` / run id: the channel and message ids (no token), kept as long as the run may change.
 */
export type KvPort = Pick<RunStore, 'kvGet' | 'kvPut' | 'kvDelete'>;

export const TOKEN_GROUP = 'discord-token';
export const BINDING_GROUP = 'discord';
/** Bindings outlive any run deadline; DynamoDB TTL removes them afterwards. */
export const BINDING_TTL_SECONDS = 30 * 86_400;
/** Stop using a token a little before Discord does, so an edit does not race its expiry. */
const TOKEN_MARGIN_MS = 30_000;

export interface InteractionToken {
  token: string;
  applicationId: string;
}

export interface DiscordBinding {
  applicationId?: string;
  channelId?: string;
  guildId?: string;
  /** The interaction whose `@original` message shows the run (while its token lives). */
  interactionId?: string;
  /** Id of that `@original` message, learned from the first edit. */
  originalMessageId?: string;
  /** A channel message the bot posted once the token was gone; edited from then on. */
  botMessageId?: string;
  /** The token answered 404/401 before its 15 minutes were up (discord-api-docs#6851). */
  tokenDead?: boolean;
  /** The gate (`gateKey`) whose opening was last announced with a role mention: once per gate. */
  mentioned?: string;
  /** The run version the message shows: an older version never overwrites it. */
  shownVersion?: number;
}

const epochSeconds = (ms: number) => Math.floor(ms / 1000);

export async function saveInteractionToken(
  kv: KvPort,
  interactionId: string,
  value: InteractionToken,
  nowMs: number,
): Promise<void> {
  await kv.kvPut(TOKEN_GROUP, interactionId, value, {
    ttl: epochSeconds(nowMs + INTERACTION_TOKEN_TTL_MS - TOKEN_MARGIN_MS),
  });
}

export async function getInteractionToken(
  kv: KvPort,
  interactionId: string,
): Promise<InteractionToken | undefined> {
  return (await kv.kvGet<InteractionToken>(TOKEN_GROUP, interactionId))?.value;
}

/**
 * The binding a Discord-started run has from its trigger, before any record was written: the
 * interaction's `@original`, or (runs started by `/plan` for many issues) a channel for the bot.
 */
export function bindingFromTrigger(
  run: Pick<Run, 'trigger'>,
  applicationId?: string,
): DiscordBinding | undefined {
  const t = run.trigger;
  if (t.source !== 'discord') return undefined;
  if (typeof t.interactionId !== 'string' && typeof t.channelId !== 'string') return undefined;
  const app = typeof t.applicationId === 'string' ? t.applicationId : applicationId;
  return {
    ...(typeof t.interactionId === 'string' ? { interactionId: t.interactionId } : {}),
    ...(typeof t.channelId === 'string' ? { channelId: t.channelId } : {}),
    ...(typeof t.guildId === 'string' ? { guildId: t.guildId } : {}),
    ...(app ? { applicationId: app } : {}),
  };
}

export async function loadBinding(
  kv: KvPort,
  run: Pick<Run, 'id' | 'trigger'>,
  applicationId?: string,
): Promise<{ binding: DiscordBinding; version: number } | undefined> {
  const stored = await kv.kvGet<DiscordBinding>(BINDING_GROUP, run.id);
  if (stored) return { binding: stored.value, version: stored.version };
  const derived = bindingFromTrigger(run, applicationId);
  return derived ? { binding: derived, version: 0 } : undefined;
}

/** Conditional save (`version` 0: must not exist yet). False if someone rebound the run meanwhile. */
export async function saveBinding(
  kv: KvPort,
  runId: string,
  binding: DiscordBinding,
  version: number | undefined,
  nowMs: number,
  group: string = BINDING_GROUP,
): Promise<boolean> {
  return kv.kvPut(group, runId, binding, {
    ...(version !== undefined ? { expectedVersion: version } : {}),
    ttl: epochSeconds(nowMs) + BINDING_TTL_SECONDS,
  });
}

export type DeliveryRoute = 'interaction' | 'bot-edit' | 'bot-new' | 'none';

/**
 * Show `body` where the binding points: edit the interaction's `@original` while its token lives;
 * after that (or after an early 404) edit the bot's own channel message, posting it the first time.
 * Returns the route taken and the binding as it should now be stored.
 */
export async function deliver(
  kv: KvPort,
  rest: DiscordRest,
  binding: DiscordBinding,
  body: MessageBody,
): Promise<{ route: DeliveryRoute; message?: APIMessage; binding: DiscordBinding }> {
  let next: DiscordBinding = { ...binding };
  if (binding.interactionId && !binding.tokenDead) {
    const token = await getInteractionToken(kv, binding.interactionId);
    if (token) {
      try {
        const message = await rest.editOriginal(token.applicationId, token.token, body);
        if (message?.id && next.originalMessageId !== message.id) next.originalMessageId = message.id;
        if (message?.channel_id && !next.channelId) next.channelId = message.channel_id;
        return { route: 'interaction', message, binding: next };
      } catch (err) {
        if (!(err instanceof DiscordNotFoundError)) throw err;
        next = { ...next, tokenDead: true };
        await kv.kvDelete(TOKEN_GROUP, binding.interactionId);
      }
    }
  }
  if (!next.channelId) return { route: 'none', binding: next };
  if (next.botMessageId) {
    try {
      const message = await rest.editMessage(next.channelId, next.botMessageId, body);
      return { route: 'bot-edit', message, binding: next };
    } catch (err) {
      // Deleted by someone: post a fresh one below. Anything else is a real failure.
      if (!(err instanceof DiscordNotFoundError)) throw err;
    }
  }
  const message = await rest.createMessage(next.channelId, body);
  return { route: 'bot-new', message, binding: { ...next, botMessageId: message.id } };
}

export function isPermanentDiscordFailure(err: unknown): boolean {
  return err instanceof DiscordApiError && !isRetryable(err);
}
