import type {
  APIApplicationCommandStringOption,
  RESTPostAPIChatInputApplicationCommandsJSONBody,
  RESTPutAPIApplicationCommandsJSONBody,
} from 'discord-api-types/v10';
import { OptionType } from './protocol.ts';

/** The spend caps `/approve budget:` sets, in USD (the CLI's `approve --budget` takes up to the same). */
export const MIN_BUDGET_USD = 0.01;
export const MAX_BUDGET_USD = 1_000_000;

/** ApplicationCommandType.ChatInput; InteractionContextType.Guild; ApplicationIntegrationType.GuildInstall. */
const CHAT_INPUT = 1;
const GUILD_ONLY: Pick<RESTPostAPIChatInputApplicationCommandsJSONBody, 'contexts' | 'integration_types'> = {
  contexts: [0],
  integration_types: [0],
};

const runOption = (description: string, required: boolean): APIApplicationCommandStringOption => ({
  type: OptionType.String,
  name: 'run',
  description,
  required,
  autocomplete: true,
  max_length: 100,
});

/**
 * The slash commands, registered by `npm run discord:register` with one bulk overwrite (PUT),
 * so registering twice changes nothing. Permissions are checked by us (config allowlists, fail
 * closed), not by `default_member_permissions`, so one config governs commands and buttons alike.
 */
export const COMMANDS = [
  {
    type: CHAT_INPUT,
    name: 'plan',
    description: 'Plan an issue (or every issue labelled ready) and post its progress here',
    ...GUILD_ONLY,
    options: [
      {
        type: OptionType.String,
        name: 'issue',
        description: 'Issue number, owner/name#number or URL; omit to plan every ready issue',
        required: false,
        max_length: 200,
      },
      {
        type: OptionType.String,
        name: 'repo',
        description: 'Repository as owner/name (default from config)',
        required: false,
        max_length: 140,
      },
    ],
  },
  {
    type: CHAT_INPUT,
    name: 'status',
    description: 'Show a run, or the active and recent runs',
    ...GUILD_ONLY,
    options: [runOption('Run id (type to search by id, repo or issue)', false)],
  },
  {
    type: CHAT_INPUT,
    name: 'approve',
    description: 'Approve a run waiting at an approval gate',
    ...GUILD_ONLY,
    options: [
      runOption('Run waiting for approval', true),
      {
        type: OptionType.String,
        name: 'plan',
        description: 'The plan version you reviewed; without it you are shown the plan and an Approve button',
        required: false,
        max_length: 100,
      },
      {
        type: OptionType.Number,
        name: 'budget',
        description: "At a budget gate: the run's new spend cap in USD",
        required: false,
        min_value: MIN_BUDGET_USD,
        max_value: MAX_BUDGET_USD,
      },
    ],
  },
  {
    type: CHAT_INPUT,
    name: 'cancel',
    description: 'Cancel an active run',
    ...GUILD_ONLY,
    options: [
      runOption('Active run to cancel', true),
      {
        type: OptionType.String,
        name: 'reason',
        description: 'Why (kept in the run history)',
        required: false,
        max_length: 500,
      },
    ],
  },
  {
    type: CHAT_INPUT,
    name: 'reject',
    description: 'Reject the plan of a run waiting at an approval gate',
    ...GUILD_ONLY,
    options: [
      runOption('Run waiting for approval', true),
      {
        type: OptionType.String,
        name: 'reason',
        description: 'Why (kept in the run history)',
        required: false,
        max_length: 500,
      },
    ],
  },
  {
    type: CHAT_INPUT,
    name: 'retry',
    description: 'Retry a failed or expired run from the node it stopped at',
    ...GUILD_ONLY,
    options: [runOption('Failed or expired run', true)],
  },
  {
    type: CHAT_INPUT,
    name: 'route',
    description: 'Routing switches',
    ...GUILD_ONLY,
    options: [
      {
        type: OptionType.Subcommand,
        name: 'pr',
        description: 'Turn agent routing on or off for a pull request',
        options: [
          {
            type: OptionType.Integer,
            name: 'pr',
            description: 'Pull request number',
            required: true,
            min_value: 1,
          },
          {
            type: OptionType.Boolean,
            name: 'enabled',
            description: 'Route this PR to agents',
            required: true,
          },
          {
            type: OptionType.String,
            name: 'repo',
            description: 'Repository as owner/name (default from config)',
            required: false,
            max_length: 140,
          },
        ],
      },
    ],
  },
  ...(['pause', 'resume'] as const).map((name) => ({
    type: CHAT_INPUT,
    name,
    description:
      name === 'pause'
        ? 'Admins: stop new runs and agent dispatches (everywhere, or for one repository)'
        : 'Admins: let runs and dispatches through again (everywhere, or for one repository)',
    ...GUILD_ONLY,
    options: [
      {
        type: OptionType.String,
        name: 'repo',
        description: 'Repository as owner/name; omit for everything',
        required: false,
        max_length: 140,
      },
    ],
  })),
] satisfies RESTPutAPIApplicationCommandsJSONBody;
