import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoopbackServer } from './loopback.ts';
import { type ScriptedResponse, Scripts } from './scripted.ts';

/** One request as the fake received it. */
export interface RecordedRequest {
  method: string;
  /** Path below the API base, with query string (e.g. `/webhooks/1/tok/messages/@original`). */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  rawBody: string;
  body: unknown;
}

interface StoredMessage {
  id: string;
  channel_id: string;
  content?: string;
  embeds?: unknown[];
  components?: unknown[];
  webhook_id?: string;
}

const API_BASE = '/api/v10';

/**
 * Discord's REST API played on loopback: records every request and answers like Discord for the
 * endpoints Switchyard uses. Channel endpoints require `Authorization: Bot <botToken>`; webhook
 * endpoints authenticate by the token in the path, and a token marked expired answers 404 (10015
 * Unknown Webhook), as Discord does. Anything else can be scripted per method and path.
 */
export class FakeDiscord extends LoopbackServer {
  readonly requests: RecordedRequest[] = [];
  readonly messages = new Map<string, StoredMessage>();
  readonly threads: Array<{
    id: string;
    parentId: string;
    messageId: string;
    name: string;
    autoArchive: unknown;
  }> = [];
  readonly expiredTokens = new Set<string>();
  /** The guild of each channel, for `GET /channels/{id}` (unknown channels answer 404). */
  readonly channelGuilds = new Map<string, string>();
  /** Channel of each interaction's @original, by token (where the slash command was used). */
  readonly interactionChannels = new Map<string, string>();
  private readonly scripts = new Scripts();
  private nextId = 1_300_000_000_000_000_000n;
  protected override basePath = API_BASE;

  constructor(readonly botToken = 'fake-bot-token') {
    super();
  }

  /** Answer `method path` with `response` (first matching script wins). */
  script(method: string | undefined, path: RegExp, response: ScriptedResponse): void {
    this.scripts.add(method, path, response);
  }

  reset(): void {
    this.requests.length = 0;
    this.scripts.clear();
  }

  /** Requests whose method matches and whose path matches `path`. */
  calls(method: string, path: RegExp): RecordedRequest[] {
    return this.requests.filter((r) => r.method === method && path.test(r.path));
  }

  private snowflake(): string {
    this.nextId += 1n;
    return this.nextId.toString();
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const rawBody = Buffer.concat(chunks).toString('utf8');
    const fullPath = (req.url ?? '/').startsWith(API_BASE)
      ? (req.url ?? '/').slice(API_BASE.length)
      : (req.url ?? '/');
    let body: unknown;
    try {
      body = rawBody === '' ? undefined : JSON.parse(rawBody);
    } catch {
      body = rawBody;
    }
    const method = req.method ?? 'GET';
    this.requests.push({ method, path: fullPath, headers: { ...req.headers }, rawBody, body });
    const send = (status: number, payload?: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(payload === undefined ? '' : JSON.stringify(payload));
    };

    const scripted = this.scripts.take(method, fullPath);
    if (scripted) return send(scripted.status, scripted.body, scripted.headers);

    const path = fullPath.split('?')[0]!;
    const webhook = /^\/webhooks\/(\d+)\/([^/]+)(\/messages\/@original)?$/.exec(path);
    if (webhook) {
      const [, appId, token, original] = webhook;
      if (this.expiredTokens.has(token!)) return send(404, { message: 'Unknown Webhook', code: 10015 });
      const channel = this.interactionChannels.get(token!) ?? '0';
      const key = `original:${token}`;
      if (original && method === 'PATCH') {
        const existing = this.messages.get(key) ?? {
          id: this.snowflake(),
          channel_id: channel,
          webhook_id: appId!,
        };
        const updated = { ...existing, ...(body as object) };
        this.messages.set(key, updated);
        this.messages.set(updated.id, updated);
        return send(200, updated);
      }
      if (!original && method === 'POST') {
        const m = { id: this.snowflake(), channel_id: channel, webhook_id: appId!, ...(body as object) };
        this.messages.set(m.id, m);
        return send(200, m);
      }
      return send(405, { message: '405: Method Not Allowed', code: 0 });
    }

    if (req.headers.authorization !== `Bot ${this.botToken}`)
      return send(401, { message: '401: Unauthorized', code: 0 });

    let m = /^\/channels\/(\d+)$/.exec(path);
    if (m && method === 'GET') {
      const guild = this.channelGuilds.get(m[1]!);
      if (!guild) return send(404, { message: 'Unknown Channel', code: 10003 });
      return send(200, { id: m[1], type: 0, guild_id: guild, name: `channel-${m[1]}` });
    }
    m = /^\/channels\/(\d+)\/messages$/.exec(path);
    if (m && method === 'POST') {
      const msg = { id: this.snowflake(), channel_id: m[1]!, ...(body as object) };
      this.messages.set(msg.id, msg);
      return send(200, msg);
    }
    m = /^\/channels\/(\d+)\/messages\/(\d+)$/.exec(path);
    if (m && method === 'PATCH') {
      const existing = this.messages.get(m[2]!);
      if (!existing || existing.channel_id !== m[1])
        return send(404, { message: 'Unknown Message', code: 10008 });
      // Messages sent through an interaction webhook cannot be edited with the bot token.
      if (existing.webhook_id)
        return send(403, { message: 'Cannot edit a message authored by another user', code: 50005 });
      const updated = { ...existing, ...(body as object) };
      this.messages.set(updated.id, updated);
      return send(200, updated);
    }
    m = /^\/channels\/(\d+)\/messages\/(\d+)\/threads$/.exec(path);
    if (m && method === 'POST') {
      if (this.threads.some((t) => t.messageId === m![2])) {
        return send(400, { message: 'A thread has already been created for this message', code: 160004 });
      }
      const b = body as { name: string; auto_archive_duration?: number };
      const thread = {
        id: this.snowflake(),
        parentId: m[1]!,
        messageId: m[2]!,
        name: b.name,
        autoArchive: b.auto_archive_duration,
      };
      this.threads.push(thread);
      return send(201, { id: thread.id, type: 11, parent_id: m[1], name: b.name });
    }
    m = /^\/applications\/(\d+)(?:\/guilds\/(\d+))?\/commands$/.exec(path);
    if (m && method === 'PUT') {
      const commands = (body as Array<Record<string, unknown>>).map((c) => ({
        id: this.snowflake(),
        application_id: m![1],
        ...(m![2] ? { guild_id: m![2] } : {}),
        version: this.snowflake(),
        default_member_permissions: null,
        ...c,
      }));
      return send(200, commands);
    }
    send(404, { message: '404: Not Found', code: 0 });
  }
}

export type { ScriptedResponse };
