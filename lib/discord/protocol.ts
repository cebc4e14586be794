/**
 * Discord protocol numbers. discord-api-types is used for types only (`import type`): importing
 * its runtime enums pulls ~90 KB into the bundle for a handful of integers. These literals are
 * checked against its enum types wherever they meet a typed payload.
 */
export const InteractionType = {
  Ping: 1,
  ApplicationCommand: 2,
  MessageComponent: 3,
  ApplicationCommandAutocomplete: 4,
  ModalSubmit: 5,
} as const;

export const ResponseType = {
  Pong: 1,
  ChannelMessageWithSource: 4,
  DeferredChannelMessageWithSource: 5,
  DeferredMessageUpdate: 6,
  UpdateMessage: 7,
  ApplicationCommandAutocompleteResult: 8,
  Modal: 9,
} as const;

export const OptionType = {
  Subcommand: 1,
  String: 3,
  Integer: 4,
  Boolean: 5,
  Number: 10,
} as const;

export const ComponentType = { ActionRow: 1, Button: 2, TextInput: 4 } as const;
export const TextInputStyle = { Short: 1, Paragraph: 2 } as const;
export const ButtonStyle = { Primary: 1, Secondary: 2, Success: 3, Danger: 4, Link: 5 } as const;

export const MessageFlags = { Ephemeral: 64 } as const;

/** Discord limits we render against (message, embed, components, autocomplete). */
export const Limits = {
  content: 2000,
  embedTitle: 256,
  embedDescription: 4096,
  embedFieldValue: 1024,
  embedFieldName: 256,
  embedFields: 25,
  embedsTotal: 6000,
  customId: 100,
  autocompleteChoices: 25,
  choiceName: 100,
  choiceValue: 100,
} as const;

/** An interaction token lives 15 minutes from the interaction. */
export const INTERACTION_TOKEN_TTL_MS = 15 * 60 * 1000;
