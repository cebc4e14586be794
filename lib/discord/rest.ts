import type {
  APIApplicationCommand,
  APIChannel,
  APIMessage,
  RESTPatchAPIChannelMessageJSONBody,
  RESTPatchAPIWebhookWithTokenMessageJSONBody,
  RESTPostAPIChannelMessageJSONBody,
  RESTPostAPIChannelMessagesThreadsJSONBody,
  RESTPutAPIApplicationCommandsJSONBody,
} from 'discord-api-types/v10';
import { logger } from '../common/observability.ts';
import { callSignal, throwIfStepAborted } from '../engine/abort.ts';
import { DiscordApiError, DiscordNotFoundError, DiscordRateLimitError } from './errors.ts';

export const DEFAULT_DISCORD_API_URL = 'https://discord.com/api/v10';

/** An outbound call as it may be shown to people: never with a token in it. */
export interface DiscordCall {
  method: string;
  path: string;
  body?: unknown;
}

export interface DiscordRestOptions {
  /** DISCORD_API_URL; tests point it at a loopback fake. */
  baseUrl?: string;
  /**
   * The bot token, or a lookup asked before every bot call (Secrets Manager on AWS, which caches
   * it for a bounded time, so a rotated token is picked up). After a 401 the lookup is asked
   * again with `forceFetch` and the call retried once. Absent (or a lookup answering undefined):
   * dry-run.
   */
  botToken?: string | ((opts?: { forceFetch?: boolean }) => Promise<string | undefined>);
  /** Force dry-run: calls are recorded, not sent. Default: dry-run when there is no bot token. */
  dryRun?: boolean;
  /** Sees every call not sent in dry-run (the caller records it as a run event). */
  onDryRun?: (call: DiscordCall) => void;
  /** 429s asking for a longer wait than this are thrown (retryable) instead of slept through. */
  maxRateLimitWaitMs?: number;
  maxRetries?: number;
  timeoutMs?: number;
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  userAgent?: string;
}

/** Interaction tokens sit in webhook and callback paths; this is the only form of a path we log. */
export function redactPath(path: string): string {
  return path
    .replace(/^\/webhooks\/([^/]+)\/[^/?]+/, '/webhooks/$1/[token]')
    .replace(/^\/interactions\/([^/]+)\/[^/?]+/, '/interactions/$1/[token]');
}

const sleepMs = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A small fetch-based Discord REST client: the Discord function needs five endpoints, not a
 * library. Interaction webhooks authenticate with the token in the path (and are exempt from the
 * global rate limit); channel endpoints use the bot token. 429s are waited out when short.
 */
export class DiscordRest {
  readonly baseUrl: string;
  private readonly opts: DiscordRestOptions;
  private dryRunCount = 0;

  constructor(opts: DiscordRestOptions = {}) {
    this.opts = opts;
    this.baseUrl = (opts.baseUrl ?? DEFAULT_DISCORD_API_URL).replace(/\/+$/, '');
  }

  /** The same client reporting dry-run calls to `onDryRun` (e.g. a step's `emit`). */
  withDryRunRecorder(onDryRun: (call: DiscordCall) => void): DiscordRest {
    return new DiscordRest({ ...this.opts, onDryRun });
  }

  // Not remembered here: the lookup's own cache bounds the age (a token kept for the life of the
  // container would outlive a rotation and answer 401 until the next cold start).
  private botToken(forceFetch = false): Promise<string | undefined> {
    const t = this.opts.botToken;
    return typeof t === 'function' ? t(forceFetch ? { forceFetch } : undefined) : Promise.resolve(t);
  }

  /** True when calls are recorded rather than sent. */
  async isDryRun(): Promise<boolean> {
    if (this.opts.dryRun !== undefined) return this.opts.dryRun;
    return (await this.botToken()) === undefined;
  }

  editOriginal(
    applicationId: string,
    token: string,
    body: RESTPatchAPIWebhookWithTokenMessageJSONBody,
  ): Promise<APIMessage> {
    return this.request<APIMessage>(
      'PATCH',
      `/webhooks/${applicationId}/${token}/messages/@original`,
      body,
      'none',
    );
  }

  createFollowup(
    applicationId: string,
    token: string,
    body: RESTPostAPIChannelMessageJSONBody & { flags?: number },
  ): Promise<APIMessage> {
    return this.request<APIMessage>('POST', `/webhooks/${applicationId}/${token}?wait=true`, body, 'none');
  }

  createMessage(channelId: string, body: RESTPostAPIChannelMessageJSONBody): Promise<APIMessage> {
    return this.request<APIMessage>('POST', `/channels/${channelId}/messages`, body, 'bot', {
      channel_id: channelId,
    });
  }

  editMessage(
    channelId: string,
    messageId: string,
    body: RESTPatchAPIChannelMessageJSONBody,
  ): Promise<APIMessage> {
    return this.request<APIMessage>('PATCH', `/channels/${channelId}/messages/${messageId}`, body, 'bot', {
      channel_id: channelId,
      id: messageId,
    });
  }

  /** A channel, to learn its guild (run messages go only to configured guilds). */
  getChannel(channelId: string): Promise<APIChannel & { guild_id?: string }> {
    return this.request('GET', `/channels/${channelId}`, undefined, 'bot', { id: channelId });
  }

  startThreadFromMessage(
    channelId: string,
    messageId: string,
    body: RESTPostAPIChannelMessagesThreadsJSONBody,
  ): Promise<APIChannel> {
    return this.request<APIChannel>(
      'POST',
      `/channels/${channelId}/messages/${messageId}/threads`,
      body,
      'bot',
      {
        type: 11,
        parent_id: channelId,
        name: body.name,
      },
    );
  }

  /** Bulk overwrite: the command set becomes exactly `commands` (idempotent). */
  putCommands(
    applicationId: string,
    commands: RESTPutAPIApplicationCommandsJSONBody,
    guildId?: string,
  ): Promise<APIApplicationCommand[]> {
    const path = guildId
      ? `/applications/${applicationId}/guilds/${guildId}/commands`
      : `/applications/${applicationId}/commands`;
    return this.request<APIApplicationCommand[]>('PUT', path, commands, 'bot', undefined, commands);
  }

  private async request<T>(
    method: string,
    path: string,
    body: unknown,
    auth: 'bot' | 'none',
    dryRunShape?: Record<string, unknown>,
    dryRunResult?: unknown,
  ): Promise<T> {
    const shownPath = redactPath(path);
    if (await this.isDryRun()) {
      const call: DiscordCall = { method, path: shownPath, ...(body !== undefined ? { body } : {}) };
      this.opts.onDryRun?.(call);
      logger.info('discord dry-run', { call });
      this.dryRunCount++;
      return (dryRunResult ?? {
        id: `dry-run-${this.dryRunCount}`,
        dry_run: true,
        ...dryRunShape,
        ...(body as object),
      }) as T;
    }
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': this.opts.userAgent ?? 'DiscordBot (https://github.com/switchyard/switchyard, 0.1.0)',
    };
    if (auth === 'bot') {
      const token = await this.botToken();
      if (token) headers.authorization = `Bot ${token}`;
    }
    throwIfStepAborted(`Discord ${method} ${shownPath}`);
    const doFetch = this.opts.fetch ?? fetch;
    const sleep = this.opts.sleep ?? sleepMs;
    const maxRetries = this.opts.maxRetries ?? 3;
    const maxWait = this.opts.maxRateLimitWaitMs ?? 5_000;
    let reauthorised = false;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await doFetch(`${this.baseUrl}${path}`, {
          method,
          headers,
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          // The call's own timeout, and the running step's (no call outlives its step's timeout).
          signal: callSignal(this.opts.timeoutMs ?? 10_000)!,
        });
      } catch (cause) {
        throw new DiscordApiError(`${method} ${shownPath} failed: ${(cause as Error).message}`, {
          status: 0,
          method,
          path: shownPath,
          cause,
        });
      }
      if (res.status === 429) {
        const waitMs = await retryAfterMs(res);
        if (waitMs > maxWait || attempt >= maxRetries) {
          throw new DiscordRateLimitError(`${method} ${shownPath} rate limited for ${waitMs} ms`, {
            method,
            path: shownPath,
            retryAfterMs: waitMs,
          });
        }
        await sleep(waitMs);
        continue;
      }
      // A 401 on a bot call: the token was likely rotated. Re-read it now (not after the cache
      // expires) and retry once; a second 401 is a real error.
      if (res.status === 401 && auth === 'bot' && !reauthorised && typeof this.opts.botToken === 'function') {
        reauthorised = true;
        const fresh = await this.botToken(true);
        if (fresh && headers.authorization !== `Bot ${fresh}`) {
          logger.warn('discord 401: retrying with a re-read bot token', { method, path: shownPath });
          headers.authorization = `Bot ${fresh}`;
          await res.body?.cancel();
          continue;
        }
      }
      if (res.status === 204) return undefined as T;
      const text = await res.text();
      if (res.ok) return (text === '' ? undefined : JSON.parse(text)) as T;
      let code: number | undefined;
      let message = text.slice(0, 300);
      try {
        const err = JSON.parse(text) as { code?: number; message?: string };
        code = typeof err.code === 'number' ? err.code : undefined;
        if (typeof err.message === 'string') message = err.message;
      } catch {
        // not JSON: keep the text
      }
      const details = { status: res.status, code, method, path: shownPath };
      // An expired interaction token answers 404 (Unknown Webhook) or 401 (Invalid Webhook Token).
      if (res.status === 404 || (auth === 'none' && res.status === 401)) {
        throw new DiscordNotFoundError(`${method} ${shownPath}: ${res.status} ${message}`, details);
      }
      throw new DiscordApiError(`${method} ${shownPath}: ${res.status} ${message}`, details);
    }
  }
}

async function retryAfterMs(res: Response): Promise<number> {
  let seconds = Number(res.headers.get('retry-after') ?? res.headers.get('x-ratelimit-reset-after') ?? 1);
  try {
    const body = (await res.json()) as { retry_after?: unknown };
    if (typeof body.retry_after === 'number') seconds = body.retry_after;
  } catch {
    // Cloudflare 429s are not JSON; the header stands
  }
  return Math.ceil((Number.isFinite(seconds) && seconds >= 0 ? seconds : 1) * 1000);
}
