import { ConfigurationError, InternalError, NonRetryableError } from '../common/errors.ts';
import type { EffectFn, EffectOptions } from './effects.ts';
import type { Gate, NewEvent, Run } from './types.ts';

export interface RetryPolicy {
  maxAttempts: number;
  initialDelayMs: number;
  backoffCoefficient: number;
  maxDelayMs: number;
  /** Error `name`s that are never retried (in addition to errors whose `retryable` is false). */
  nonRetryable: string[];
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 3,
  initialDelayMs: 1_000,
  backoffCoefficient: 2,
  maxDelayMs: 60_000,
  nonRetryable: [],
};

export const DEFAULT_TIMEOUT_MS = 30_000;

/** What a node handler returns. */
export type NodeResult =
  /** Done: merge `output` into the run data and follow the edge labelled `edge` (or the first that matches). */
  | { output?: Record<string, unknown>; edge?: string; events?: NewEvent[] }
  /** Park the run at this node until a signal (approve/reject/result) or `expiresInMs`. */
  | {
      wait: Omit<Gate, 'node' | 'expiresAt'> & { expiresInMs: number };
      output?: Record<string, unknown>;
      events?: NewEvent[];
    };

export interface StepContext<S = unknown> {
  run: Readonly<Run>;
  node: string;
  attempt: number;
  /** Unique per step execution slot: `<runId>:<seq>`. Use it as an idempotency key for side effects. */
  stepKey: string;
  now: Date;
  /** Aborted when the node's timeout passes. */
  signal: AbortSignal;
  /**
   * Run a side effect once per step (across its retries and takeovers), or once per run with
   * `{ scope: 'run' }`: the result is journaled and returned to later attempts instead of acting
   * again. Claimed and recorded under the step's lease; see lib/engine/effects.ts for the one
   * at-least-once window (`interrupted`), and for `{ recorded: 'by-caller' }` (an effect whose
   * `fn` writes its own record, which the caller reads first: no ledger record).
   */
  effect<T>(name: string, fn: EffectFn<T>, opts?: EffectOptions): Promise<T>;
  /** Add an event to the history, committed with this step's outcome (dry-run calls, refusals). */
  emit(event: NewEvent): void;
  /** Services injected into the engine (GitHub and Discord clients, config, ...). */
  services: S;
}

export type NodeHandler<S = unknown> = (ctx: StepContext<S>) => Promise<NodeResult>;

export interface NodeDefinition<S = unknown> {
  /** Human label for reports. */
  title?: string;
  handler: NodeHandler<S>;
  retry?: Partial<RetryPolicy>;
  timeoutMs?: number;
  /** A gate that config may turn off; when off, the run passes with edge `approved` and an event. */
  optionalGate?: boolean;
  /** Even when config turns the gate off, keep it for runs whose data says so (a policy requires approval). */
  gateRequired?: (data: Record<string, unknown>) => boolean;
  /**
   * The handler does nothing before its first `ctx.effect` that must not run twice at once: it
   * only reads, or writes what is the same whoever writes it (a cache of what it read). Its step's
   * first try, on its message's first delivery, then writes its lease only before that first
   * effect, or once it has run a second (steps.ts, hold.ts): a quick step without effects is a
   * read of the run and its commit. Two copies of one message may then both run the handler up
   * to there, and one of them loses. Unset (the default): the lease is written before the
   * handler runs, as a redelivery's always is. Not for a node that writes outside `ctx.effect`
   * (a queue record, a claim, a comment, a signal) or makes a costly call (a model).
   */
  lazyLease?: boolean;
}

export interface EdgeDefinition {
  from: string;
  to: string;
  /** Taken when the node's result names this label; edges without a label match any result. */
  on?: string;
  /** Optional condition over run data (after the node's output is merged). */
  when?: (data: Record<string, unknown>) => boolean;
}

export interface WorkflowDefinition<S = unknown> {
  name: string;
  version: number;
  description?: string;
  start: string;
  nodes: Record<string, NodeDefinition<S>>;
  edges: EdgeDefinition[];
  /** Overall deadline for a run, from creation. The sweeper ends runs past it. */
  deadlineMs?: number;
  /** Subject fields a run cannot do without: `startRun` refuses a subject lacking one, naming it. */
  requires?: readonly SubjectField[];
}

/** `repo` is `owner/name`; `issue` is a positive integer (an issue or PR number). */
export type SubjectField = 'repo' | 'issue';

/** Config-level tuning of a workflow (from switchyard.yml): timeouts, retries, which gates apply. */
export interface WorkflowTuning {
  nodes?: Record<string, { timeoutMs?: number; retry?: Partial<RetryPolicy> }>;
  /** Gate nodes to switch off (only nodes marked `optionalGate`). */
  disabledGates?: string[];
  deadlineMs?: number;
}

export interface ResolvedNode<S = unknown> extends NodeDefinition<S> {
  name: string;
  retry: RetryPolicy;
  timeoutMs: number;
  gateDisabled: boolean;
}

export class Workflow<S = unknown> {
  readonly name: string;
  readonly version: number;
  readonly start: string;
  readonly deadlineMs: number | undefined;
  readonly requires: readonly SubjectField[];
  readonly nodes: ReadonlyMap<string, ResolvedNode<S>>;
  readonly edges: readonly EdgeDefinition[];
  readonly definition: WorkflowDefinition<S>;

  constructor(def: WorkflowDefinition<S>, tuning: WorkflowTuning = {}) {
    this.definition = def;
    this.name = def.name;
    this.version = def.version;
    this.start = def.start;
    this.deadlineMs = tuning.deadlineMs ?? def.deadlineMs;
    this.requires = def.requires ?? [];
    this.edges = def.edges;
    const nodes = new Map<string, ResolvedNode<S>>();
    for (const [name, node] of Object.entries(def.nodes)) {
      const t = tuning.nodes?.[name];
      nodes.set(name, {
        ...node,
        name,
        retry: { ...DEFAULT_RETRY, ...node.retry, ...t?.retry },
        timeoutMs: t?.timeoutMs ?? node.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        gateDisabled: Boolean(node.optionalGate && tuning.disabledGates?.includes(name)),
      });
    }
    this.nodes = nodes;
    validate(this, tuning);
  }

  node(name: string): ResolvedNode<S> {
    const n = this.nodes.get(name);
    if (!n) throw new InternalError(`workflow ${this.name} has no node ${name}`);
    return n;
  }

  /** The next node after `from`, given the result label and the run data; null when the run is done. */
  next(from: string, label: string | undefined, data: Record<string, unknown>): string | null {
    const out = this.edges.filter((e) => e.from === from);
    if (out.length === 0) return null;
    const labelled = label === undefined ? [] : out.filter((e) => e.on === label);
    const candidates = labelled.length > 0 ? labelled : out.filter((e) => e.on === undefined);
    for (const e of candidates) {
      if (!e.when || e.when(data)) return e.to;
    }
    if (label !== undefined && labelled.length === 0 && out.some((e) => e.on !== undefined)) {
      throw new WorkflowRoutingError(`node ${from} returned edge "${label}" but no edge has that label`);
    }
    return null;
  }

  /** Whether `from` has an outgoing edge labelled `label`. */
  hasEdge(from: string, label: string): boolean {
    return this.edges.some((e) => e.from === from && e.on === label);
  }

  /** Nodes in a stable order for checklists: a breadth-first walk from the start. */
  order(): string[] {
    const seen: string[] = [];
    const queue = [this.start];
    while (queue.length > 0) {
      const n = queue.shift()!;
      if (seen.includes(n)) continue;
      seen.push(n);
      for (const e of this.edges) if (e.from === n) queue.push(e.to);
    }
    for (const n of this.nodes.keys()) if (!seen.includes(n)) seen.push(n);
    return seen;
  }
}

export class WorkflowRoutingError extends NonRetryableError {
  override name = 'WorkflowRoutingError';
}

function validate<T>(wf: Workflow<T>, tuning: WorkflowTuning): void {
  if (!wf.nodes.has(wf.start))
    throw new ConfigurationError(`workflow ${wf.name}: start node ${wf.start} is not defined`);
  for (const e of wf.edges) {
    if (!wf.nodes.has(e.from))
      throw new ConfigurationError(`workflow ${wf.name}: edge from unknown node ${e.from}`);
    if (!wf.nodes.has(e.to))
      throw new ConfigurationError(`workflow ${wf.name}: edge to unknown node ${e.to}`);
  }
  for (const name of Object.keys(tuning.nodes ?? {})) {
    if (!wf.nodes.has(name))
      throw new ConfigurationError(`workflow ${wf.name}: config tunes unknown node ${name}`);
  }
  for (const name of tuning.disabledGates ?? []) {
    const n = wf.nodes.get(name);
    if (!n) throw new ConfigurationError(`workflow ${wf.name}: config disables unknown gate ${name}`);
    if (!n.optionalGate)
      throw new ConfigurationError(`workflow ${wf.name}: node ${name} is not an optional gate`);
  }
}

/** A registry of workflows by name. */
export class WorkflowRegistry<S = unknown> {
  private readonly byName = new Map<string, Workflow<S>>();
  constructor(workflows: Workflow<S>[] = []) {
    for (const w of workflows) this.add(w);
  }
  add(w: Workflow<S>): this {
    this.byName.set(w.name, w);
    return this;
  }
  get(name: string): Workflow<S> | undefined {
    return this.byName.get(name);
  }
  names(): string[] {
    return [...this.byName.keys()];
  }
  all(): Workflow<S>[] {
    return [...this.byName.values()];
  }
}
