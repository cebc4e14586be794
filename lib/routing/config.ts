import { readFile } from 'node:fs/promises';
import { type Document, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { z } from 'zod';
import { executorUrlProblem } from '../agents/executors/endpoint.ts';
import { linearPatternError } from '../common/re2.ts';
import { MAX_NODE_TIMEOUT_MS } from '../engine/timeouts.ts';
import type { WorkflowTuning } from '../engine/workflow.ts';
import { PERMISSIONS } from '../github/permissions.ts';
import { BudgetsOverlaySchema, BudgetsSchema, budgetRaises, DEFAULT_BUDGETS } from './budgets-config.ts';
import { compile } from './cel.ts';
import { DiscordChannelsShape } from './discord-channels-schema.ts';
import { ConfigError, type ConfigIssue, ExpressionError } from './errors.ts';
import { GitHubSchema } from './github-commands-schema.ts';
import { DEFAULT_PLANNER_CONFIG, PlannerConfigSchema } from './planner-config.ts';
import { RecoverySchema } from './recovery-config.ts';

/**
 * The Switchyard config: `config/switchyard.yml` (path from SWITCHYARD_CONFIG), optionally
 * overlaid per repository by `.github/switchyard.yml` on the default branch (repo-config.ts).
 * Validated with zod; every error names its file and line (a zod issue path is mapped back to
 * the YAML node through `yaml`'s node ranges and a LineCounter).
 */

export const AGENT_TYPES = [
  'router',
  'triage',
  'guard',
  'planner',
  'coverage',
  'coder',
  'ci-triage',
  'reviewer',
  'reporter',
  'custom',
] as const;
export type AgentType = (typeof AGENT_TYPES)[number];

const NAME = /^[a-z][a-z0-9_-]*$/;
const name = (what: string) => z.string().regex(NAME, `${what} must be lowercase letters, digits, - or _`);
const REPO = /^[\w.-]+\/[\w.-]+$/;
/** A list, or a single value written without brackets. */
const list = <T extends z.ZodType>(item: T) => z.union([item.transform((v) => [v]), z.array(item)]);
const strings = list(z.string().min(1));

const cel = z.string().superRefine((expr, ctx) => {
  try {
    compile(expr);
  } catch (err) {
    ctx.addIssue({
      code: 'custom',
      message: `invalid CEL: ${err instanceof ExpressionError ? err.message : String(err)}`,
    });
  }
});

const RetrySchema = z.strictObject({
  maxAttempts: z.int().min(1).max(50).optional(),
  initialDelayMs: z.int().min(0).optional(),
  backoffCoefficient: z.number().min(1).max(10).optional(),
  maxDelayMs: z.int().min(0).optional(),
  nonRetryable: z.array(z.string()).optional(),
});

const WorkflowTuningSchema = z.strictObject({
  nodes: z
    .record(
      z.string(),
      z.strictObject({
        timeoutMs: z.int().positive().max(MAX_NODE_TIMEOUT_MS).optional(),
        retry: RetrySchema.optional(),
      }),
    )
    .optional(),
  disabledGates: z.array(z.string()).optional(),
  deadlineMs: z.int().positive().optional(),
});

const ExecutorSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('builtin') }),
  z.strictObject({
    type: z.literal('github-actions'),
    /** Workflow file name (e.g. `switchyard-coder.yml`) or id. */
    workflow: z.string().min(1),
    ref: z.string().min(1).default('main'),
    /** Where the workflow lives; defaults to the run's repository. */
    repo: z.string().regex(REPO, 'repo must be owner/name').optional(),
    inputs: z.record(z.string(), z.string()).optional(),
  }),
  z.strictObject({
    type: z.literal('http'),
    /** https://, or http:// to a loopback address only (lib/agents/executors/endpoint.ts). */
    url: z.url({ protocol: /^https?$/ }).superRefine((u, ctx) => {
      const why = executorUrlProblem(u);
      if (why) ctx.addIssue({ code: 'custom', message: why });
    }),
    timeoutMs: z.int().positive().optional(),
    /**
     * Name of the shared signing secret: the variable `<NAME>` locally, or on AWS the Secrets
     * Manager secret whose ARN is in `<NAME>_SECRET_ARN` (lib/common/secrets.ts `getNamedSecret`).
     */
    secretEnv: z
      .string()
      .regex(/^[A-Z][A-Z0-9_]*$/)
      .optional(),
  }),
]);
export type ExecutorConfig = z.output<typeof ExecutorSchema>;

const AgentSchema = z.strictObject({
  type: z.enum(AGENT_TYPES),
  description: z.string().optional(),
  /** Inline, or the name of an entry in `executors`. */
  executor: z.union([ExecutorSchema, name('executor name')]).default({ type: 'builtin' }),
  permissions: z.array(z.enum(PERMISSIONS)).default(['read']),
  /** At most this many work items of this agent run at once. */
  concurrency: z.int().min(1).max(1_000).default(1),
  /** Environment variables passed through to the agent's executor; nothing else is. */
  envAllowlist: z
    .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'not an environment variable name'))
    .default([]),
  /** Queue priority of this agent's work (higher first). */
  priority: z.int().default(0),
  /** How long one task of this agent may run before it fails as timed out (default 2 h). */
  timeoutMs: z.int().min(1_000).optional(),
});
export type AgentConfig = z.output<typeof AgentSchema>;

const CI_STATES = ['green', 'red', 'unknown', 'any'] as const;
const CONCURRENCY = ['reject', 'attach', 'supersede'] as const;

const RuleSchema = z.strictObject({
  name: name('rule name'),
  description: z.string().optional(),
  enabled: z.boolean().default(true),
  /** Webhook event names (`issues`, `pull_request`, ...). */
  event: strings,
  action: strings.optional(),
  /** The label just added (or removed) must be one of these. */
  label: strings.optional(),
  /** Labels present on the issue or PR after the event. */
  labels: z
    .strictObject({
      all: z.array(z.string()).optional(),
      any: z.array(z.string()).optional(),
      none: z.array(z.string()).optional(),
    })
    .optional(),
  /** Globs (picomatch) of files a PR touches; evaluated in the worker (it needs an API call). */
  paths: strings.optional(),
  /** Repository globs (`acme/*`). */
  repos: strings.optional(),
  senders: z
    .strictObject({ include: z.array(z.string()).optional(), exclude: z.array(z.string()).optional() })
    .optional(),
  /** Default-branch CI state required (from the CI guard's record). */
  ci: z.enum(CI_STATES).default('any'),
  /** A CEL condition over the event (see rules.ts for the variables). */
  when: cel.optional(),
  workflow: z.string().optional(),
  agents: z.array(name('agent name')).default([]),
  priority: z.int().default(0),
  concurrency: z.enum(CONCURRENCY).optional(),
});
export type RuleConfig = z.output<typeof RuleSchema>;

const PolicySchema = z
  .strictObject({
    name: name('policy name'),
    description: z.string().optional(),
    /** Repository globs the policy applies to; all when absent. */
    repos: strings.optional(),
    workflows: z.array(z.string()).optional(),
    when: cel.optional(),
    forbid: z
      .strictObject({
        always: z.boolean().optional(),
        labels: z.array(z.string()).optional(),
        senders: z.array(z.string()).optional(),
        events: z.array(z.string()).optional(),
        agents: z.array(z.string()).optional(),
      })
      .optional(),
    require: z
      .strictObject({
        labels: z.array(z.string()).optional(),
        /** Force the approval gate on, whatever `workflows.*.disabledGates` says. */
        approval: z.boolean().optional(),
        /** The issue/PR author's association must be one of these (OWNER, MEMBER, COLLABORATOR, ...). */
        authorAssociation: z.array(z.string()).optional(),
      })
      .optional(),
  })
  .refine((p) => p.forbid !== undefined || p.require !== undefined, {
    message: 'a policy needs forbid or require',
  });
export type PolicyConfig = z.output<typeof PolicySchema>;

const CiGuardSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** `default` means the repository's default branch. */
  branch: z.string().default('default'),
  /** Confirm a red (or unknown) state through the API in the worker before blocking. */
  confirm: z.boolean().default(true),
  /** Workflow names or check-suite app slugs whose failures do not count. */
  ignore: z.array(z.string()).default([]),
  /** How long a run blocked by red CI waits at its `ci` gate for green before it fails with a report. */
  maxWaitHours: z
    .number()
    .positive()
    .max(24 * 30)
    .default(24),
});

const TriageSchema = z.strictObject({
  labels: z
    .array(
      z
        .strictObject({
          label: z.string().min(1),
          /** Case-insensitive words or phrases in the title or body (matched at the start of a word). */
          keywords: z.array(z.string().min(1)).optional(),
          when: cel.optional(),
        })
        .refine((r) => r.keywords !== undefined || r.when !== undefined, {
          message: 'a label rule needs keywords or when',
        }),
    )
    .default([]),
  required: z
    .array(
      z.strictObject({
        name: z.string().min(1),
        /**
         * A regular expression in RE2 syntax (linear time: no backreferences or lookaround),
         * matched case-insensitively against the body.
         */
        pattern: z.string().superRefine((p, ctx) => {
          const why = linearPatternError(p, 'i');
          if (why) ctx.addIssue({ code: 'custom', message: `not a valid RE2 pattern: ${why}` });
        }),
        /** Only ask when this CEL condition holds (e.g. for bugs). */
        when: cel.optional(),
        ask: z.string().min(1),
      }),
    )
    .default([]),
  minBodyChars: z.int().min(0).default(0),
  /** First line of the comment that asks for missing information. */
  askHeading: z.string().min(1).default('Some information is missing'),
  /** Label applied while information is missing (removed once it is there). */
  needsInfoLabel: z.string().optional(),
});
export type TriageConfig = z.output<typeof TriageSchema>;

/** Discord ids are snowflakes above 2^53: quoted in YAML, or they lose their last digits. */
const snowflake = z
  .string({ error: 'a Discord id must be quoted (as a number it loses precision)' })
  .regex(/^\d{15,21}$/, 'not a Discord id');
const ids = z.array(snowflake);
const PermissionEntry = z.strictObject({ users: ids.optional(), roles: ids.optional() });

const DiscordSchema = z.strictObject({
  defaultRepo: z.string().regex(REPO, 'defaultRepo must be owner/name').optional(),
  /** Role id to mention when a run needs a person. */
  notifyRole: snowflake.optional(),
  admins: z
    .strictObject({ users: ids.default([]), roles: ids.default([]) })
    .default({ users: [], roles: [] }),
  permissions: z
    .strictObject({
      plan: PermissionEntry.optional(),
      status: PermissionEntry.optional(),
      approve: PermissionEntry.optional(),
      cancel: PermissionEntry.optional(),
      route: PermissionEntry.optional(),
      retry: PermissionEntry.optional(),
    })
    .default({}),
  ...DiscordChannelsShape,
});

const RoutingSchema = z.strictObject({
  /** Turn all routing off (useful in a repo's own config). */
  enabled: z.boolean().default(true),
  triggerLabel: z.string().min(1).default('ready'),
  prRouteLabel: z.string().min(1).default('switchyard:route'),
  /** PR events are routed only while the PR carries `prRouteLabel` (the per-PR toggle). */
  prRequiresLabel: z.boolean().default(true),
  defaultWorkflow: z.string().default('issue-pipeline'),
  /** Agents of the default trigger rule (when `rules` is empty). */
  defaultAgents: z.array(name('agent name')).default([]),
  concurrency: z.enum(CONCURRENCY).default('attach'),
  /** The safe default handler: events no rule matched go to this agent, when set. */
  unmatched: z
    .strictObject({
      agent: name('agent name'),
      workflow: z.string().optional(),
      events: z.array(z.string()).default(['issues.opened', 'issues.reopened']),
    })
    .nullable()
    .default(null),
  rules: z.array(RuleSchema).default([]),
});

const RepoConfigSchema = z.strictObject({
  enabled: z.boolean().default(true),
  path: z.string().default('.github/switchyard.yml'),
  ttlSeconds: z.int().min(0).default(300),
});

export const SwitchyardConfigSchema = z
  .strictObject({
    version: z.literal(1).default(1),
    routing: RoutingSchema.default(RoutingSchema.parse({})),
    repoConfig: RepoConfigSchema.default(RepoConfigSchema.parse({})),
    discord: DiscordSchema.default(DiscordSchema.parse({})),
    github: GitHubSchema.default(GitHubSchema.parse({})),
    workflows: z.record(z.string(), WorkflowTuningSchema).default({}),
    executors: z.record(name('executor name'), ExecutorSchema).default({}),
    agents: z.record(name('agent name'), AgentSchema).default({}),
    policies: z.array(PolicySchema).default([]),
    guards: z
      .strictObject({ ci: CiGuardSchema.default(CiGuardSchema.parse({})) })
      .default({ ci: CiGuardSchema.parse({}) }),
    triage: TriageSchema.default(TriageSchema.parse({})),
    escalation: z
      .strictObject({
        maxFailures: z.int().min(1).default(3),
        /** Fix attempts on a PR whose checks are red before escalating (issue #11). */
        maxFixAttempts: z.int().min(0).max(10).default(2),
        /** Role mentioned by escalation notices (quote Discord ids: YAML numbers lose digits). */
        discordRole: z.string().optional(),
        /** Channel escalation notices go to (else DISCORD_ESCALATION_CHANNEL_ID). */
        discordChannel: z.string().optional(),
      })
      .default({ maxFailures: 3, maxFixAttempts: 2 }),
    /** The agents' work queue: items running at once on one repository, across agents. */
    workQueue: z
      .strictObject({ repoConcurrency: z.int().min(1).max(1_000).default(4) })
      .default({ repoConcurrency: 4 }),
    /** The coverage agent reads this check's output (default: any check named like "coverage"). */
    coverage: z.strictObject({ checkName: z.string().optional() }).default({}),
    recovery: RecoverySchema,
    /** The planner (central only): deterministic by default, or a model on Amazon Bedrock. */
    planner: PlannerConfigSchema.default(DEFAULT_PLANNER_CONFIG),
    /** Spend caps per run (budgets-config.ts); an overlay may only lower them. */
    budgets: BudgetsSchema.default(DEFAULT_BUDGETS),
  })
  .superRefine((c, ctx) => {
    const agents = new Set(Object.keys(c.agents));
    const ref = (agent: string, path: Array<string | number>) => {
      if (!agents.has(agent)) ctx.addIssue({ code: 'custom', path, message: `unknown agent ${agent}` });
    };
    c.routing.rules.forEach((r, i) => {
      r.agents.forEach((a, j) => {
        ref(a, ['routing', 'rules', i, 'agents', j]);
      });
    });
    const seen = new Set<string>();
    c.routing.rules.forEach((r, i) => {
      if (seen.has(r.name))
        ctx.addIssue({
          code: 'custom',
          path: ['routing', 'rules', i, 'name'],
          message: `duplicate rule name ${r.name}`,
        });
      seen.add(r.name);
    });
    if (c.routing.rules.length === 0) {
      c.routing.defaultAgents.forEach((a, j) => {
        ref(a, ['routing', 'defaultAgents', j]);
      });
    }
    if (c.routing.unmatched) ref(c.routing.unmatched.agent, ['routing', 'unmatched', 'agent']);
    for (const [agentName, a] of Object.entries(c.agents)) {
      if (typeof a.executor === 'string' && !(a.executor in c.executors)) {
        ctx.addIssue({
          code: 'custom',
          path: ['agents', agentName, 'executor'],
          message: `unknown executor ${a.executor}`,
        });
      }
    }
  });

export type SwitchyardConfig = z.output<typeof SwitchyardConfigSchema>;
export type SwitchyardConfigInput = z.input<typeof SwitchyardConfigSchema>;

/** Keys a repository's own `.github/switchyard.yml` may set. Agents, executors, Discord roles and escalation stay central. */
export const REPO_CONFIG_KEYS = [
  'version',
  'routing',
  'workflows',
  'policies',
  'guards',
  'triage',
  'budgets',
] as const;

/** The rule used when a config declares none: an issue labelled `triggerLabel` starts the default workflow. */
export function effectiveRules(config: SwitchyardConfig): RuleConfig[] {
  if (config.routing.rules.length > 0) return config.routing.rules;
  return [
    RuleSchema.parse({
      name: 'trigger-label',
      description: `an issue labelled ${config.routing.triggerLabel} starts ${config.routing.defaultWorkflow}`,
      event: 'issues',
      action: 'labeled',
      label: config.routing.triggerLabel,
      workflow: config.routing.defaultWorkflow,
      agents: config.routing.defaultAgents,
    }),
  ];
}

/** The engine's tuning for one workflow, from `workflows.<name>`. */
export function workflowTuning(config: SwitchyardConfig, workflow: string): WorkflowTuning {
  const t = config.workflows[workflow];
  if (!t) return {};
  const out: WorkflowTuning = {};
  if (t.nodes) {
    out.nodes = {};
    for (const [node, n] of Object.entries(t.nodes)) {
      out.nodes[node] = {
        ...(n.timeoutMs !== undefined ? { timeoutMs: n.timeoutMs } : {}),
        ...(n.retry ? { retry: stripUndefined(n.retry) } : {}),
      };
    }
  }
  if (t.disabledGates) out.disabledGates = t.disabledGates;
  if (t.deadlineMs !== undefined) out.deadlineMs = t.deadlineMs;
  return out;
}

function stripUndefined<T extends Record<string, unknown>>(
  o: T,
): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}

// ------------------------------------------------------------------------------ parsing

/** A parsed YAML source, kept so errors found later (after a merge) can still name a line. */
export interface ConfigSource {
  file: string;
  text: string;
  doc: Document.Parsed;
  lines: LineCounter;
  /** The plain data (before defaults). */
  raw: unknown;
}

export function readSource(text: string, file: string): ConfigSource {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError({
      file,
      issues: doc.errors.map((e) => {
        const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
        return {
          file,
          line: pos.line,
          column: pos.col,
          path: [],
          message: e.message.split('\n', 1)[0] ?? e.code,
        };
      }),
    });
  }
  const raw: unknown = doc.toJS({ maxAliasCount: 100 }) ?? {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError({
      file,
      issues: [{ file, line: 1, column: 1, path: [], message: 'the config must be a mapping' }],
    });
  }
  return { file, text, doc, lines, raw };
}

/** The YAML node at `path`, or the deepest ancestor that exists (a missing key points at its parent). */
function locate(
  source: ConfigSource,
  path: ReadonlyArray<PropertyKey>,
  key?: string,
): { line: number; column: number; exact: boolean } {
  let node: unknown = source.doc.contents;
  let anchor: Node | null = (source.doc.contents as Node | null) ?? null;
  let exact = true;
  const segments = key === undefined ? [...path] : [...path, key];
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i];
    const last = i === segments.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === seg);
      if (!pair) {
        exact = false;
        break;
      }
      // For an unknown key, point at the key itself; otherwise at its value.
      const keyNode = isScalar(pair.key) ? pair.key : null;
      anchor = (last && key !== undefined ? keyNode : ((pair.value as Node | null) ?? keyNode)) ?? anchor;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as Node | undefined;
      if (!item) {
        exact = false;
        break;
      }
      anchor = item;
      node = item;
    } else {
      exact = false;
      break;
    }
  }
  const offset = anchor?.range?.[0] ?? 0;
  const pos = source.lines.linePos(offset);
  return { line: pos.line, column: pos.col, exact };
}

/** A source, and how a path in the validated data maps to a path in that source's file (merged lists shift indexes). */
export interface SourceView {
  source: ConfigSource;
  mapPath?: (path: Array<string | number>) => Array<string | number> | undefined;
}

function zodIssues(error: z.ZodError, views: readonly SourceView[]): ConfigIssue[] {
  return error.issues.map((issue) => {
    const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    const key = issue.code === 'unrecognized_keys' ? issue.keys[0] : undefined;
    // Prefer the source that actually holds the offending node (the repo overlay before the central file).
    let best: { source: ConfigSource; at: ReturnType<typeof locate> } | undefined;
    for (const view of views) {
      const local = view.mapPath ? view.mapPath(path) : path;
      if (!local) continue;
      const at = locate(view.source, local, key);
      if (at.exact) {
        best = { source: view.source, at };
        break;
      }
      best ??= { source: view.source, at };
    }
    const source = best?.source ?? views[0]!.source;
    const at = best?.at ?? { line: 0, column: 0 };
    const message =
      issue.code === 'unrecognized_keys' ? `unknown key ${issue.keys.join(', ')}` : issue.message;
    return { file: source.file, line: at.line, column: at.column, path, message };
  });
}

/** Validate data that came from `sources` (the last one wins when a path exists in several). */
export function validateConfig(raw: unknown, views: readonly SourceView[]): SwitchyardConfig {
  const res = SwitchyardConfigSchema.safeParse(raw);
  if (!res.success) {
    throw new ConfigError({
      file: views[0]?.source.file ?? 'config',
      issues: zodIssues(res.error, views),
      cause: res.error,
    });
  }
  return res.data;
}

/** Parse and validate YAML text. Throws ConfigError listing `file:line: reason` for every problem. */
export function parseConfig(text: string, file = 'switchyard.yml'): SwitchyardConfig {
  const source = readSource(text, file);
  return validateConfig(source.raw, [{ source }]);
}

/** Like parseConfig, keeping the source for later overlays. */
export function parseConfigSource(
  text: string,
  file: string,
): { config: SwitchyardConfig; source: ConfigSource } {
  const source = readSource(text, file);
  return { config: validateConfig(source.raw, [{ source }]), source };
}

export async function loadConfigSource(
  path: string,
): Promise<{ config: SwitchyardConfig; source: ConfigSource }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new ConfigError({
      file: path,
      issues: [
        { file: path, line: 0, column: 0, path: [], message: `cannot read: ${(cause as Error).message}` },
      ],
      cause,
    });
  }
  return parseConfigSource(text, path);
}

export async function loadConfig(path: string): Promise<SwitchyardConfig> {
  return (await loadConfigSource(path)).config;
}

/** The config path: SWITCHYARD_CONFIG, else `config/switchyard.yml` (relative to the working directory). */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.SWITCHYARD_CONFIG && env.SWITCHYARD_CONFIG !== ''
    ? env.SWITCHYARD_CONFIG
    : 'config/switchyard.yml';
}

// ------------------------------------------------------------------------------ overlays

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlain(base) || !isPlain(over)) return over === undefined ? base : over;
  const out: Plain = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = deepMerge(base[k], v);
  return out;
}

/**
 * Overlay a repository's config on the central one, at the data level (before defaults), then
 * validate the result. Objects merge key by key; `routing.rules` merge by rule name (a repo rule
 * replaces the central rule of the same name, new ones are added); `policies` are appended (a
 * repository can add restrictions, not remove the organisation's); other lists are replaced.
 */
export function overlayConfig(central: ConfigSource, repo: ConfigSource): SwitchyardConfig {
  const over = repo.raw as Plain;
  const issues: ConfigIssue[] = [];
  for (const key of Object.keys(over)) {
    if (!(REPO_CONFIG_KEYS as readonly string[]).includes(key)) {
      const at = locate(repo, [], key);
      issues.push({
        file: repo.file,
        line: at.line,
        column: at.column,
        path: [],
        message: `${key} can only be set in the central config`,
      });
    }
  }
  if (issues.length > 0) throw new ConfigError({ file: repo.file, issues });
  // Check the overlay's own shape first, so its errors carry its own paths and lines.
  const own = RepoOverlaySchema.safeParse(over);
  if (!own.success)
    throw new ConfigError({
      file: repo.file,
      issues: zodIssues(own.error, [{ source: repo }]),
      cause: own.error,
    });

  const base = central.raw as Plain;
  for (const r of budgetRaises(base.budgets, over.budgets)) {
    const at = locate(repo, ['budgets', 'perRun'], r.field);
    issues.push({
      file: repo.file,
      line: at.line,
      column: at.column,
      path: ['budgets', 'perRun', r.field],
      message: r.message,
    });
  }
  if (issues.length > 0) throw new ConfigError({ file: repo.file, issues });
  const merged = deepMerge(base, over) as Plain;
  const baseRouting = isPlain(base.routing) ? base.routing : {};
  const overRouting = isPlain(over.routing) ? over.routing : {};
  // Where each merged rule / policy came from, so later errors point into the right file.
  const ruleOrigin: Array<{ repo: boolean; index: number }> = [];
  if (Array.isArray(overRouting.rules)) {
    const rules: unknown[] = Array.isArray(baseRouting.rules) ? [...baseRouting.rules] : [];
    rules.forEach((_, i) => {
      ruleOrigin[i] = { repo: false, index: i };
    });
    overRouting.rules.forEach((r: unknown, j: number) => {
      const i = rules.findIndex((x) => isPlain(x) && isPlain(r) && x.name === r.name);
      if (i >= 0) {
        rules[i] = r;
        ruleOrigin[i] = { repo: true, index: j };
      } else {
        ruleOrigin[rules.length] = { repo: true, index: j };
        rules.push(r);
      }
    });
    (merged.routing as Plain).rules = rules;
  }
  const basePolicies = Array.isArray(base.policies) ? base.policies.length : 0;
  if (Array.isArray(over.policies)) {
    merged.policies = [...(Array.isArray(base.policies) ? base.policies : []), ...over.policies];
  }
  const remap = (fromRepo: boolean) => (path: Array<string | number>) => {
    const [a, b, c, ...rest] = path;
    if (a === 'routing' && b === 'rules' && typeof c === 'number' && ruleOrigin[c]) {
      const o = ruleOrigin[c];
      return o.repo === fromRepo ? ['routing', 'rules', o.index, ...rest] : undefined;
    }
    if (a === 'policies' && typeof b === 'number' && Array.isArray(over.policies)) {
      const inRepo = b >= basePolicies;
      if (inRepo !== fromRepo) return undefined;
      return ['policies', inRepo ? b - basePolicies : b, ...(c === undefined ? [] : [c]), ...rest];
    }
    return path;
  };
  return validateConfig(merged, [
    { source: repo, mapPath: remap(true) },
    { source: central, mapPath: remap(false) },
  ]);
}

/** The shape a repository overlay may have (every field optional; cross-references are checked after the merge). */
const RepoOverlaySchema = z.strictObject({
  version: z.literal(1).optional(),
  routing: RoutingSchema.partial().optional(),
  workflows: z.record(z.string(), WorkflowTuningSchema).optional(),
  policies: z.array(PolicySchema).optional(),
  guards: z.strictObject({ ci: CiGuardSchema.partial().optional() }).optional(),
  triage: TriageSchema.partial().optional(),
  budgets: BudgetsOverlaySchema.optional(),
});
