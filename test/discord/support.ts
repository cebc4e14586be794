import type {
  APIApplicationCommandAutocompleteInteraction,
  APIApplicationCommandInteractionDataOption,
  APIChatInputApplicationCommandInteraction,
  APIMessageComponentButtonInteraction,
  APIPingInteraction,
} from 'discord-api-types/v10';
import nacl from 'tweetnacl';
import type { WireRequest } from '../../lib/http/request.ts';

/** A request as the transport hands it over (single-valued headers), before lib/http converts it. */
export type RawRequest = Omit<WireRequest, 'headers'> & { headers: Record<string, string | undefined> };

/**
 * Test helpers: requests signed with tweetnacl (an implementation independent of ours), and
 * interaction payloads shaped like Discord's (typed with discord-api-types, realistic values).
 */
export interface TestKeys {
  publicKeyHex: string;
  secretKey: Uint8Array;
}

export function makeKeys(seedByte = 7): TestKeys {
  const kp = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(seedByte));
  return { publicKeyHex: Buffer.from(kp.publicKey).toString('hex'), secretKey: kp.secretKey };
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

export function sign(keys: TestKeys, timestamp: string, body: string | Uint8Array): string {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body);
  const msg = Buffer.concat([Buffer.from(timestamp, 'utf8'), bytes]);
  return Buffer.from(nacl.sign.detached(new Uint8Array(msg), keys.secretKey)).toString('hex');
}

/** A request as API Gateway v2 (lowercase headers) would hand it over, correctly signed. */
export function signedRequest(
  keys: TestKeys,
  payload: unknown,
  opts: { timestamp?: string; base64?: boolean } = {},
): RawRequest {
  const body = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const timestamp = opts.timestamp ?? String(nowSeconds());
  return {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-signature-ed25519': sign(keys, timestamp, body),
      'x-signature-timestamp': timestamp,
      'user-agent': 'Discord-Interactions/1.0 (+https://discord.com)',
    },
    body: opts.base64 ? Buffer.from(body, 'utf8').toString('base64') : body,
    isBase64Encoded: Boolean(opts.base64),
  };
}

export const APP_ID = '1234567890123456789';
export const GUILD_ID = '1098765432109876543';
export const CHANNEL_ID = '1111111111111111111';

let counter = 0n;
/** Snowflakes that increase like Discord's (timestamp in the high bits). */
export function snowflake(): string {
  counter += 1n;
  return ((BigInt(Date.now() - 1_420_070_400_000) << 22n) + counter).toString();
}

export interface TestUser {
  id: string;
  username: string;
  roles: string[];
}

export const ADMIN: TestUser = { id: '200000000000000001', username: 'ada', roles: ['300000000000000001'] };
export const APPROVER: TestUser = {
  id: '200000000000000002',
  username: 'grace',
  roles: ['300000000000000002'],
};
export const STRANGER: TestUser = {
  id: '200000000000000009',
  username: 'mallory',
  roles: ['300000000000000009'],
};

function base(user: TestUser, token: string) {
  return {
    id: snowflake(),
    application_id: APP_ID,
    token,
    version: 1 as const,
    guild_id: GUILD_ID,
    guild: { id: GUILD_ID, locale: 'en-US' as const, features: [] },
    channel: { id: CHANNEL_ID, type: 0 as const, name: 'switchyard', guild_id: GUILD_ID },
    channel_id: CHANNEL_ID,
    member: {
      user: {
        id: user.id,
        username: user.username,
        global_name: user.username,
        avatar: null,
        discriminator: '0',
      },
      roles: user.roles,
      joined_at: '2024-01-02T03:04:05.000000+00:00',
      deaf: false,
      mute: false,
      flags: 0,
      permissions: '2248473465835073',
      avatar: null,
      premium_since: null,
      pending: false,
      banner: null,
    },
    app_permissions: '2248473465835073',
    locale: 'en-US' as const,
    guild_locale: 'en-US' as const,
    entitlements: [],
    authorizing_integration_owners: { '0': GUILD_ID },
    context: 0 as const,
    attachment_size_limit: 10_485_760,
  };
}

/** A realistic interaction token (Discord's are long opaque strings). */
export function interactionToken(): string {
  return `aW50ZXJhY3Rpb246${snowflake()}${Buffer.from(snowflake()).toString('base64url')}${'x'.repeat(120)}`;
}

export function ping(): APIPingInteraction {
  return {
    id: snowflake(),
    application_id: APP_ID,
    type: 1,
    token: interactionToken(),
    version: 1,
    app_permissions: '0',
    locale: 'en-US',
    entitlements: [],
    authorizing_integration_owners: {},
    attachment_size_limit: 10_485_760,
  } as unknown as APIPingInteraction;
}

export function command(
  name: string,
  options: APIApplicationCommandInteractionDataOption[] = [],
  opts: { user?: TestUser; token?: string; id?: string } = {},
): APIChatInputApplicationCommandInteraction {
  const b = base(opts.user ?? ADMIN, opts.token ?? interactionToken());
  return {
    ...b,
    ...(opts.id ? { id: opts.id } : {}),
    type: 2,
    data: { id: snowflake(), name, type: 1, guild_id: GUILD_ID, options },
  } as APIChatInputApplicationCommandInteraction;
}

export const opt = {
  str: (name: string, value: string): APIApplicationCommandInteractionDataOption => ({
    name,
    type: 3,
    value,
  }),
  int: (name: string, value: number): APIApplicationCommandInteractionDataOption => ({
    name,
    type: 4,
    value,
  }),
  num: (name: string, value: number): APIApplicationCommandInteractionDataOption => ({
    name,
    type: 10,
    value,
  }),
  bool: (name: string, value: boolean): APIApplicationCommandInteractionDataOption => ({
    name,
    type: 5,
    value,
  }),
  sub: (
    name: string,
    options: APIApplicationCommandInteractionDataOption[],
  ): APIApplicationCommandInteractionDataOption =>
    ({ name, type: 1, options }) as APIApplicationCommandInteractionDataOption,
};

export function autocomplete(
  name: string,
  focusedValue: string,
  opts: { user?: TestUser } = {},
): APIApplicationCommandAutocompleteInteraction {
  const b = base(opts.user ?? ADMIN, interactionToken());
  return {
    ...b,
    type: 4,
    data: {
      id: snowflake(),
      name,
      type: 1,
      guild_id: GUILD_ID,
      options: [{ name: 'run', type: 3, value: focusedValue, focused: true }],
    },
  } as unknown as APIApplicationCommandAutocompleteInteraction;
}

export function buttonClick(
  customId: string,
  opts: { user?: TestUser; messageId?: string } = {},
): APIMessageComponentButtonInteraction {
  const b = base(opts.user ?? ADMIN, interactionToken());
  return {
    ...b,
    type: 3,
    data: { custom_id: customId, component_type: 2 },
    message: {
      id: opts.messageId ?? snowflake(),
      channel_id: CHANNEL_ID,
      type: 0,
      content: '',
      author: {
        id: APP_ID,
        username: 'Switchyard',
        global_name: null,
        avatar: null,
        discriminator: '0000',
        bot: true,
      },
      attachments: [],
      embeds: [],
      mentions: [],
      mention_roles: [],
      pinned: false,
      mention_everyone: false,
      tts: false,
      timestamp: new Date().toISOString(),
      edited_timestamp: null,
      flags: 0,
      components: [],
    },
  } as unknown as APIMessageComponentButtonInteraction;
}
