import { createGitHubReporter } from '../agents/github-reporter.ts';
import { deterministicPlanner, type Planner } from '../agents/planner.ts';
import { createIssueEditReporter } from '../agents/replan.ts';
import { type AgentServices, createAgentServices } from '../agents/services.ts';
import { configRefreshMs } from '../common/config-refresh.ts';
import { InternalError } from '../common/errors.ts';
import { loadOnce } from '../common/load-once.ts';
import { logger } from '../common/observability.ts';
import { createDiscordReporter } from '../discord/reporter.ts';
import type { DiscordRest } from '../discord/rest.ts';
import { createDiscordWorkerServices, discordRestFromEnv } from '../discord/worker-services.ts';
import type { DiscordWorkflowServices } from '../discord/workflow-services.ts';
import {
  type Delivery,
  Engine,
  type EngineOptions,
  type Reporter,
  type StepBudget,
} from '../engine/engine.ts';
import type { RunStore } from '../engine/ports.ts';
import { type GitHubClientFactory, githubClientFactoryFromEnv } from '../github/client.ts';
import type { StepQueue, WorkMessage } from '../queue/port.ts';
import { configPath, loadConfigSource, type SwitchyardConfig, workflowTuning } from '../routing/config.ts';
import { ConfigProvider } from '../routing/repo-config.ts';
import { routeLater } from '../routing/route-later.ts';
import type { GitHubServices } from '../routing/services.ts';
import { buildRegistry, WORKFLOW_DEFINITIONS } from '../workflows/index.ts';
import { WORKER_WORKFLOWS } from '../workflows/nodes.ts';
import type { WorkflowServices } from '../workflows/services.ts';
import { withRunMetrics } from './run-metrics.ts';

/**
 * The worker's composition root: config, the GitHub client factory (app, token or dry-run),
 * Discord REST, the agents hub, every workflow's services and the reporters, around one Engine.
 * Only the worker and the sweeper load this; ingress functions build graph-only engines.
 */
export interface WorkerAppOptions {
  store: RunStore;
  queue: StepQueue;
  env?: NodeJS.ProcessEnv;
  /** Base URL of this deployment, for HTTP agents' callbacks (the local stack knows it only after listening). */
  publicUrl?: () => string | undefined;
  now?: () => Date;
  owner?: string;
  /** Overrides for tests. */
  github?: GitHubClientFactory;
  discord?: DiscordRest;
  planner?: Planner;
  fetch?: typeof fetch;
  engine?: Partial<
    Pick<
      EngineOptions<unknown>,
      'leaseGraceMs' | 'enqueueGraceMs' | 'reportClaimMs' | 'faults' | 'chainSteps' | 'reportInline'
    >
  >;
}

export interface WorkerApp {
  engine: Engine<unknown>;
  /** The active central config (the newest pushed version, else the bundled file): read it each time. */
  readonly config: SwitchyardConfig;
  configProvider: ConfigProvider;
  github: GitHubClientFactory;
  discord: DiscordRest;
  agents: AgentServices;
  gh: GitHubServices;
  /**
   * One queue message: a run's step or report (the engine), or a delivery to route later.
   * `budget`: the invocation's remaining time, within which a step runs the steps it schedules
   * for now (the engine's `chainSteps`).
   */
  handle(message: WorkMessage, budget?: StepBudget, delivery?: Delivery): Promise<unknown>;
  /**
   * Re-read the active config version when the refresh interval has passed (one KV read per
   * interval). `handle` does it before each message; the sweeper before each sweep.
   */
  refreshConfig(): Promise<void>;
}

/**
 * Steps one message may run in a row when each schedules the next for now (route, plan and the
 * approval gate after a new run; the last task and the report): each saves a message, an
 * invocation, a read and a lease write. Bounded so one run cannot keep an invocation to itself.
 */
const CHAIN_STEPS = 8;

export async function createWorkerApp(opts: WorkerAppOptions): Promise<WorkerApp> {
  const env = opts.env ?? process.env;
  const now = opts.now;
  const central = await loadConfigSource(configPath(env));
  const config = central.config;
  const store = withRunMetrics(opts.store);
  // GITHUB_THROTTLE=off drops the 1 s spacing of writes (tests against a fake GitHub); never in production.
  const github =
    opts.github ??
    (await githubClientFactoryFromEnv(env, env.GITHUB_THROTTLE === 'off' ? { throttle: false } : {}));
  const discord = opts.discord ?? discordRestFromEnv(env);
  // Every consumer reads `configProvider.central`; `handle` and the sweeper refresh it, so a pushed
  // version is used within the interval whether or not deliveries arrive (not the bundled `config`).
  const configProvider = new ConfigProvider({
    central,
    store,
    refreshMs: configRefreshMs(env),
    ...(now ? { now } : {}),
  });
  // config `planner`: deterministic unless it says bedrock (then the worker's IAM role calls Converse),
  // chosen again when a pushed version replaces the central config (refreshConfig below).
  const plannerFor = async (cfg: SwitchyardConfig): Promise<Planner> =>
    cfg.planner?.provider === 'bedrock'
      ? // Loaded only when asked for: a deterministic worker does not pay for the Bedrock SDK at cold start.
        (await import('../agents/bedrock-planner.ts')).plannerFromConfig(cfg.planner, { env })
      : deterministicPlanner;
  let plannerOf = { central: config, planner: opts.planner ?? (await plannerFor(config)) };
  const gh: GitHubServices = {
    github,
    store,
    config: configProvider,
    get planner() {
      return plannerOf.planner;
    },
    ...(now ? { now } : {}),
  };

  // The engine is built after the services that need it (they start and signal runs).
  let engine: Engine<unknown> | undefined;
  const engineRef = () => {
    if (!engine) throw new InternalError('engine not built yet');
    return engine;
  };

  const publicUrl = () => env.SWITCHYARD_PUBLIC_URL || env.API_BASE_URL || opts.publicUrl?.();
  const agents = createAgentServices({
    store,
    config: configProvider,
    github,
    engine: engineRef,
    discord,
    env,
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
    publicUrl,
    ...(now ? { now } : {}),
  });

  const applicationId = env.DISCORD_APPLICATION_ID || undefined;
  // What every step sees as `ctx.services`. The nodes' own code (routing, planning, execution, CI
  // triage, coverage, comment commands) is imported when a node first runs (lib/workflows/nodes.ts).
  const services: WorkflowServices & DiscordWorkflowServices = {
    github: gh,
    hub: agents.hub,
    engine: engineRef,
    discord: createDiscordWorkerServices({
      rest: discord,
      store,
      applicationId,
      startRun: (input) => engineRef().startRun(input),
      github,
      config: () => configProvider.central,
    }),
  };

  const reporters: Reporter[] = [
    createGitHubReporter({
      github,
      config: () => configProvider.central,
      recordEvent: (id, e) => engineRef().recordEvent(id, e),
      ...(now ? { now } : {}),
    }),
    createDiscordReporter({
      store,
      rest: discord,
      ...(applicationId ? { applicationId } : {}),
      channels: () => {
        const { guilds, channels, notifyRole } = configProvider.central.discord;
        return { guilds, channels, ...(notifyRole ? { notifyRole } : {}) };
      },
      ...(now ? { now } : {}),
    }),
    agents.reporter,
    // Edits that came while a run planned: re-planned once it reaches its gate (lib/agents/replan.ts).
    createIssueEditReporter({
      engine: { store, signal: (id, signal) => engineRef().signal(id, signal) },
      ...(now ? { now } : {}),
    }),
  ];

  const tuning = Object.fromEntries(
    WORKFLOW_DEFINITIONS.map((w) => [w.name, workflowTuning(config, w.name)]),
  );
  engine = new Engine<unknown>({
    store,
    queue: opts.queue,
    workflows: buildRegistry(tuning, WORKER_WORKFLOWS),
    services,
    reporters,
    ...(now ? { now } : {}),
    ...(opts.owner ? { owner: opts.owner } : {}),
    chainSteps: CHAIN_STEPS,
    reportInline: true,
    ...opts.engine,
  });
  const built = engine;
  const refreshConfig = async () => {
    try {
      await configProvider.refreshCentral();
    } catch (err) {
      // The version in hand stays valid: a failed read of the table must not fail the step or the
      // sweep (it is tried again after the interval).
      logger.warn('config version unreadable, keeping the one in use', { error: (err as Error).message });
    }
    const cfg = configProvider.central;
    if (!opts.planner && cfg !== plannerOf.central)
      plannerOf = { central: cfg, planner: await plannerFor(cfg) };
  };
  const handle = async (message: WorkMessage, budget?: StepBudget, delivery?: Delivery): Promise<unknown> => {
    await refreshConfig();
    return message.kind === 'route'
      ? routeLater({ engine: built, config: configProvider, github }, message)
      : built.handle(message, budget, delivery);
  };
  return {
    engine,
    get config() {
      return configProvider.central;
    },
    configProvider,
    github,
    discord,
    agents,
    gh,
    handle,
    refreshConfig,
  };
}

/** The worker app of a Lambda container, built once from its environment (a failure is retried next call). */
export const workerAppFromEnv: () => Promise<WorkerApp> = loadOnce(async () => {
  const { storeFromEnv, queueFromEnv } = await import('./core.ts');
  return createWorkerApp({ store: storeFromEnv(), queue: queueFromEnv() });
});
