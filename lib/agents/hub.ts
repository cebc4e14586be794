import { InternalError } from '../common/errors.ts';
import { logger } from '../common/observability.ts';
import { escapeDiscordInline } from '../discord/escape.ts';
import type { DiscordRest } from '../discord/rest.ts';
import { InvalidSignalError } from '../engine/errors.ts';
import type { RunStore } from '../engine/ports.ts';
import { isTerminal, type NewEvent, type Run } from '../engine/types.ts';
import type { GitHubClientFactory } from '../github/client.ts';
import { AgentRegistry, type RegisteredAgent } from '../routing/agents.ts';
import { AGENT_TYPES, type AgentType, type SwitchyardConfig } from '../routing/config.ts';
import { effectIn, type StepScope } from '../routing/services.ts';
import { DirectAddressError, NoExecutorError } from './errors.ts';
import { GitHubActionsExecutor } from './executors/github-actions.ts';
import { HttpExecutor } from './executors/http.ts';
import type { Executor } from './executors/types.ts';
import {
  type AgentResult,
  type DeliveryResult,
  deliverResult,
  type HubEngine,
  RESULT_EDGE,
} from './results.ts';
import { AgentWorkQueue, DEFAULT_REPO_LIMIT, type RunningItem } from './work-queue.ts';

/**
 * The hub of the hub-and-spoke design (seed 002, made durable): agents (the spokes) never talk to
 * each other. Everything goes through here, and everything here is recorded in the run's history:
 *
 * - the work queue: priority order, FIFO within a priority, per-agent and per-repository limits
 *   (work-queue.ts), and the promotion of waiting items when a slot frees up;
 * - consultation: an agent asks for a specialist *type*; the hub picks an available agent of that
 *   type, or escalates when there is none. An agent naming another agent is refused;
 * - escalation: a human gate (engine `wait` of kind `escalation`), announced to the configured
 *   Discord role, or recorded as a dry-run event when Discord is not configured;
 * - delivery of agents' answers to their runs (results.ts).
 */

export interface HubOptions {
  /** How long an agent may work on one task before it is failed as timed out. */
  agentTimeoutMs: number;
  /** How long a task may wait for a free slot. */
  queueTimeoutMs: number;
  /** How long an escalation waits for a person. */
  escalationExpiryMs: number;
  /** Items running at once on one repository, across agents. */
  repoConcurrency: number;
  /** Failures of one task before it is escalated (config `escalation.maxFailures` wins). */
  maxFailures: number;
  /** Fix attempts on a PR whose checks are red before escalating (config `escalation.maxFixAttempts` wins). */
  maxFixAttempts: number;
}

export const DEFAULT_HUB_OPTIONS: HubOptions = {
  agentTimeoutMs: 2 * 3600_000,
  queueTimeoutMs: 24 * 3600_000,
  escalationExpiryMs: 3 * 24 * 3600_000,
  repoConcurrency: DEFAULT_REPO_LIMIT,
  maxFailures: 3,
  maxFixAttempts: 2,
};

export interface HubDeps {
  store: RunStore;
  /** The central config (a ConfigProvider fits): agents, executors and escalation are central only. */
  config: { central: SwitchyardConfig };
  github: GitHubClientFactory;
  /** The engine, late-bound (it is built after the services that hold the hub). */
  engine?: () => HubEngine;
  /** Discord REST client for escalation notices; absent or without a token: dry-run events. */
  discord?: DiscordRest;
  env?: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
  /** Base URL for HTTP agents' callbacks (else SWITCHYARD_PUBLIC_URL); a function when known only later (a port chosen at listen). */
  publicUrl?: string | (() => string | undefined);
  now?: () => Date;
  options?: Partial<HubOptions>;
}

export type ConsultRequest = {
  /** The asking agent. */
  from: string;
  /** A specialist type (`reviewer`, `ci-triage`, ...). Never an agent's name. */
  type?: string;
  /** An agent's name: always refused (agents talk only through the hub). */
  to?: string;
  question: string;
};

export type ConsultDecision =
  | { outcome: 'routed'; agent: RegisteredAgent }
  | { outcome: 'escalate'; reason: string };

export interface EscalationRequest {
  reason: string;
  cause: 'failures' | 'guard' | 'agent' | 'consultation';
  binding: string;
  task?: string;
}

/** Read a config field another module may not have added yet. */
function field<T>(obj: unknown, key: string): T | undefined {
  return typeof obj === 'object' && obj !== null
    ? ((obj as Record<string, unknown>)[key] as T | undefined)
    : undefined;
}

/** Operator overrides: SWITCHYARD_AGENT_TIMEOUT_MS, SWITCHYARD_QUEUE_TIMEOUT_MS, SWITCHYARD_ESCALATION_EXPIRY_MS. */
function envOptions(env: NodeJS.ProcessEnv): Partial<HubOptions> {
  const ms = (name: string) => {
    const v = Number(env[name]);
    return Number.isInteger(v) && v > 0 ? v : undefined;
  };
  const out: Partial<HubOptions> = {};
  const agent = ms('SWITCHYARD_AGENT_TIMEOUT_MS');
  const queue = ms('SWITCHYARD_QUEUE_TIMEOUT_MS');
  const escalation = ms('SWITCHYARD_ESCALATION_EXPIRY_MS');
  if (agent) out.agentTimeoutMs = agent;
  if (queue) out.queueTimeoutMs = queue;
  if (escalation) out.escalationExpiryMs = escalation;
  return out;
}

export class AgentHub {
  readonly store: RunStore;
  readonly queue: AgentWorkQueue;
  readonly now: () => Date;
  private readonly executors = new Map<string, Executor>();
  /** `options` as last computed, and from which central config (a pushed version replaces it). */
  private optionsOf: { central: SwitchyardConfig; options: HubOptions } | undefined;

  constructor(readonly deps: HubDeps) {
    this.store = deps.store;
    this.now = deps.now ?? (() => new Date());
    this.queue = new AgentWorkQueue(deps.store, {
      repoLimit: () => this.options.repoConcurrency,
      limitOf: (name) => this.registry().get(name)?.concurrency,
      now: this.now,
    });
  }

  get config(): SwitchyardConfig {
    return this.deps.config.central;
  }

  /** The hub's limits from the active central config (read each time: a pushed version applies). */
  get options(): HubOptions {
    const cfg = this.config;
    if (this.optionsOf?.central === cfg) return this.optionsOf.options;
    const options: HubOptions = {
      ...DEFAULT_HUB_OPTIONS,
      maxFailures: cfg.escalation.maxFailures,
      ...(typeof field<number>(cfg.escalation, 'maxFixAttempts') === 'number'
        ? { maxFixAttempts: field<number>(cfg.escalation, 'maxFixAttempts')! }
        : {}),
      // Configs parsed by the schema always have it; hand-built ones in tests may not.
      ...(cfg.workQueue ? { repoConcurrency: cfg.workQueue.repoConcurrency } : {}),
      ...envOptions(this.deps.env ?? process.env),
      ...this.deps.options,
    };
    this.optionsOf = { central: cfg, options };
    return options;
  }

  registry(): AgentRegistry {
    return new AgentRegistry(this.config);
  }

  get env(): NodeJS.ProcessEnv {
    return this.deps.env ?? process.env;
  }

  engine(): HubEngine {
    const e = this.deps.engine?.();
    if (!e) throw new InternalError('the agent hub has no engine (HubDeps.engine)');
    return e;
  }

  /** The agent's task timeout: config `agents.<name>.timeoutMs` when present, else the hub's. */
  agentTimeoutMs(agent: string): number {
    const t = field<number>(this.config.agents[agent], 'timeoutMs');
    return typeof t === 'number' && t > 0 ? t : this.options.agentTimeoutMs;
  }

  executorFor(agent: RegisteredAgent): Executor {
    const type = agent.executor.type;
    if (type === 'builtin')
      throw new NoExecutorError(`agent ${agent.name} is built in: it cannot take a task from the queue`);
    let ex = this.executors.get(type);
    if (!ex) {
      ex =
        type === 'github-actions'
          ? new GitHubActionsExecutor({ github: this.deps.github, env: this.env })
          : new HttpExecutor({
              store: this.store,
              env: this.env,
              ...(this.deps.publicUrl ? { publicUrl: this.deps.publicUrl } : {}),
              ...(this.deps.fetch ? { fetch: this.deps.fetch } : {}),
            });
      this.executors.set(type, ex);
    }
    return ex;
  }

  // ------------------------------------------------------------------------ consultation

  /**
   * An agent asks the hub for a specialist. The request names a type; the hub picks an agent of
   * that type with a free slot (the least loaded), or answers `escalate` when there is none. A
   * request that names an agent (or anything that is not a type) is refused and recorded.
   */
  async consult(
    scope: Pick<StepScope, 'run' | 'node' | 'emit'>,
    req: ConsultRequest,
  ): Promise<ConsultDecision> {
    const type = req.type;
    if (req.to !== undefined || type === undefined || !(AGENT_TYPES as readonly string[]).includes(type)) {
      const target = req.to ?? type ?? '(nothing)';
      scope.emit({
        type: 'hub.refused',
        node: scope.node,
        by: 'hub',
        detail: {
          from: req.from,
          to: target,
          reason: 'agents talk only through the hub: ask for a specialist type, not an agent',
        },
      });
      throw new DirectAddressError(`agent ${req.from} addressed ${target} directly; ask the hub for a type`, {
        runId: scope.run.id,
        node: scope.node,
      });
    }
    scope.emit({
      type: 'hub.consult.requested',
      node: scope.node,
      by: req.from,
      detail: { from: req.from, type, question: req.question.slice(0, 1_000) },
    });
    const candidates = this.registry()
      .byType(type as AgentType)
      .filter((a) => a.name !== req.from && a.executor.type !== 'builtin');
    const running = await this.queue.runningByAgent();
    const free = candidates
      .filter((a) => (running.get(a.name) ?? 0) < a.concurrency)
      .sort(
        (a, b) => (running.get(a.name) ?? 0) / a.concurrency - (running.get(b.name) ?? 0) / b.concurrency,
      );
    const chosen = free[0];
    if (!chosen) {
      const reason =
        candidates.length === 0
          ? `no ${type} agent is configured`
          : `every ${type} agent is busy (${candidates.map((a) => a.name).join(', ')})`;
      scope.emit({
        type: 'hub.consult.unavailable',
        node: scope.node,
        by: 'hub',
        detail: { from: req.from, type, reason },
      });
      return { outcome: 'escalate', reason: `consultation of a ${type}: ${reason}` };
    }
    scope.emit({
      type: 'hub.consult.routed',
      node: scope.node,
      by: 'hub',
      detail: { from: req.from, type, to: chosen.name },
    });
    return { outcome: 'routed', agent: chosen };
  }

  // -------------------------------------------------------------------------- escalation

  /** The Discord role and channel escalations go to (config, read defensively; env as a fallback). */
  escalationTarget(): { role?: string; channel?: string } {
    const esc = this.config.escalation;
    const role = esc.discordRole ?? this.config.discord.notifyRole;
    const channel = field<string>(esc, 'discordChannel') ?? this.env.DISCORD_ESCALATION_CHANNEL_ID;
    return { ...(role ? { role } : {}), ...(channel ? { channel } : {}) };
  }

  /**
   * Tell people a run needs them. Sent once per escalation (journaled under its binding). With
   * no Discord client, token or channel, the notice is recorded as a dry-run event instead.
   */
  async notifyEscalation(scope: StepScope, esc: EscalationRequest): Promise<void> {
    const { role, channel } = this.escalationTarget();
    const run = scope.run;
    const content = [
      `${role ? `<@&${role}> ` : ''}🚨 Run \`${run.id}\` (${run.subject.key}) needs a person: ${escapeDiscordInline(esc.reason)}`,
      `Approve to continue (\`npm run runs -- approve ${run.id}\` or the Discord button); reject to stop it.`,
    ].join('\n');
    const emit = (e: Omit<NewEvent, 'node' | 'by'>) => scope.emit({ ...e, node: scope.node, by: 'hub' });
    const rest = this.deps.discord;
    if (!rest || !channel) {
      emit({
        type: 'escalation.notify.dry-run',
        detail: {
          role: role ?? null,
          channel: channel ?? null,
          content,
          reason: rest ? 'no escalation channel configured' : 'Discord is not configured',
        },
      });
      return;
    }
    const send = async () => {
      const recorder = rest.withDryRunRecorder((call) =>
        emit({ type: 'discord.dry-run', detail: { ...call } }),
      );
      const msg = await recorder.createMessage(channel, {
        content,
        allowed_mentions: { parse: [], roles: role ? [role] : [] },
      });
      return { messageId: msg?.id ?? null };
    };
    try {
      // Once per escalation (its binding) for the whole run, whichever step raises it.
      const sent = await effectIn(scope, `notify:${esc.binding}`, send, { scope: 'run' });
      emit({ type: 'escalation.notified', detail: { role: role ?? null, channel, ...sent } });
    } catch (err) {
      // The gate stands without the notice (the run's Discord message also mentions the role).
      logger.warn('escalation notice failed', { runId: run.id, error: (err as Error).message });
      emit({ type: 'escalation.notify.failed', detail: { channel, error: (err as Error).message } });
    }
  }

  // ------------------------------------------------------------------- queue and results

  /**
   * Admit what fits, and wake the runs whose items were admitted (except `self`, the caller's own
   * item, which it dispatches itself). Returns whether `self` was admitted.
   */
  async pump(self?: string): Promise<boolean> {
    let selfAdmitted = false;
    for (let round = 0; round < 5; round++) {
      const admitted = await this.queue.admit();
      if (admitted.length === 0) break;
      let freed = false;
      for (const item of admitted) {
        if (item.id === self) {
          selfAdmitted = true;
          continue;
        }
        if (await this.wake(item)) continue;
        freed = true;
      }
      if (!freed) break; // a slot an ended run could not use was given back: admit again
    }
    return selfAdmitted;
  }

  /**
   * Resume a run whose item was admitted. False when the run can never use the slot (it ended,
   * or moved on): the slot is then released.
   */
  async wake(item: RunningItem): Promise<boolean> {
    const engine = this.engine();
    const correlation = `queue:${item.id}`;
    try {
      await engine.signal(item.runId, {
        type: 'result',
        by: 'hub',
        correlation,
        payload: { kind: 'admitted', item: item.id, correlation },
        edge: RESULT_EDGE,
      });
      return true;
    } catch (err) {
      if (!(err instanceof InvalidSignalError)) throw err;
    }
    const run = await engine.getRun(item.runId);
    // A run that is mid-step may be queueing exactly this item in a step not yet committed (its
    // stored `current` is still the item before): the slot is kept, and the run's next report
    // (work reporter) wakes it once it waits. Only a run that ended, or waits for something else,
    // cannot use the slot.
    const waitingElsewhere = run?.status === 'waiting' && run.gate?.correlation !== correlation;
    if (!run || isTerminal(run.status) || waitingElsewhere) {
      await this.queue.release(item.id);
      return false;
    }
    return true;
  }

  /**
   * For the sweeper: give back slots and queue places of runs that ended without their report
   * reaching the work reporter, then admit what fits. Bounded by the queue's size; no Scan.
   */
  async reconcile(): Promise<{ released: number; woken: number }> {
    const engine = this.engine();
    // Items a worker of the previous version admitted count against the limits from here on.
    await this.queue.adoptLegacy();
    const { running, waiting } = await this.queue.snapshot();
    let released = 0;
    const runs = new Map<string, Run | null>();
    const runOf = async (id: string) => {
      if (!runs.has(id)) runs.set(id, await engine.getRun(id));
      return runs.get(id) ?? null;
    };
    // The snapshot is read before the runs, so an item in it was queued before its run was read:
    // a run that is mid-step (`running`) may be queueing or admitting exactly this item in a step
    // not yet committed, with its stored `current` still the item before. Only a run that ended,
    // or one that waits with another item current, has abandoned an item. (Releasing a mid-step
    // run's new item here deleted its queue place, and the run then waited for a slot forever.)
    for (const item of [...running, ...waiting]) {
      const run = await runOf(item.runId);
      const current = (run?.data.work as { current?: { item?: string } } | undefined)?.current;
      const abandoned = run?.status === 'waiting' && current !== undefined && current.item !== item.id;
      if (!run || isTerminal(run.status) || abandoned) {
        await this.queue.release(item.id);
        released++;
      }
    }
    let woken = 0;
    for (const item of running) {
      const run = await runOf(item.runId);
      if (
        run?.status === 'waiting' &&
        run.gate?.correlation === `queue:${item.id}` &&
        (await this.wake(item))
      )
        woken++;
    }
    await this.pump();
    return { released, woken };
  }

  /** Deliver an agent's answer to its run (see results.ts). */
  deliver(result: AgentResult): Promise<DeliveryResult> {
    return deliverResult(this.engine(), this.queue, result, this.now);
  }
}

/** Build a hub from deps, or pass one through. */
export function hubOf(deps: HubDeps | AgentHub): AgentHub {
  return deps instanceof AgentHub ? deps : new AgentHub(deps);
}

/** Whether `run` has agent work (the execute node's state) in its data. */
export function workOf(run: Pick<Run, 'data'>): WorkStateLike | undefined {
  const w = run.data.work;
  return typeof w === 'object' && w !== null && Array.isArray((w as WorkStateLike).tasks)
    ? (w as WorkStateLike)
    : undefined;
}

/** The minimal view of the execute node's state other modules read. */
export interface WorkStateLike {
  tasks: unknown[];
  current?: {
    item: string;
    agent: string;
    correlation: string;
    state: 'queued' | 'dispatched' | 'checking';
  };
}
