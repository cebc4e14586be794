import { InternalError, isRetryable } from '../common/errors.ts';
import type { EventType } from '../engine/events.ts';
import { describePause, pausedFor } from '../engine/pause.ts';
import { resultKey } from '../engine/types.ts';
import type { EdgeDefinition, NodeResult, StepContext } from '../engine/workflow.ts';
import type { RegisteredAgent } from '../routing/agents.ts';
import type { BudgetCaps } from '../routing/budgets-config.ts';
import { ciVerdict, readCiRecord } from '../routing/guards.ts';
import {
  addAgentUsage,
  type BudgetGate,
  type BudgetState,
  budgetCheck,
  budgetState,
  raiseBudget,
} from './budget.ts';
import {
  AgentTimeoutError,
  DirectAddressError,
  EscalationExpiredError,
  NoExecutorError,
  QueueTimeoutError,
} from './errors.ts';
import type { DispatchOutcome } from './executors/types.ts';
import { heldBy, holdWait } from './gates.ts';
import { type AgentHub, type EscalationRequest, type HubDeps, hubOf } from './hub.ts';
import type { Plan } from './planner.ts';
import { type ChecksState, checksCorrelation, readChecks } from './pr-checks.ts';
import { RESULT_EDGE } from './results.ts';
import type { DispatchRecord, WorkItem } from './work-queue.ts';

/**
 * The issue pipeline's `execute` node: the plan's tasks, one after the other, each handed to its
 * agent through the hub.
 *
 * For each task: a work item is queued (priority, FIFO within a priority); when its agent and its
 * repository have a free slot, it is dispatched through the agent's executor (GitHub Actions or
 * HTTP), and the run waits at an `agent` gate until the answer resumes it. While the item waits for
 * a slot, the run also waits at an `agent` gate (`queue:<item>`), and the hub resumes it when a
 * slot frees up: nothing polls. Each answer re-enters this node (edge `next`), which then:
 *
 * - marks the task done, or counts a failure and retries it; after `escalation.maxFailures`
 *   failures it escalates to a person (an `escalation` gate; approve retries, reject fails the run);
 * - runs a consultation the agent asked for (by specialist type, through the hub), then hands the
 *   task back to the agent with the answer;
 * - escalates when the agent asks for a person, or when the CI guard is red before a dispatch.
 *
 * An agent that does not answer in time fails the task and the run (the report says the agent
 * timed out); the work reporter then cancels its workflow run.
 *
 * The node's state lives in run data (`work`), so it survives restarts; the executors' side
 * effects are journaled per work item, so a re-run step does not dispatch twice.
 */

export type TaskStatus = 'pending' | 'running' | 'done' | 'failed' | 'skipped';

export interface TaskState {
  id: string;
  title: string;
  agent: string;
  files: string[];
  status: TaskStatus;
  failures: number;
  tries: number;
  /** When the task was first queued: a retry keeps its place in the queue. */
  since?: string;
  result?: { conclusion: string; by: string; url?: string; summary?: string };
  consultations?: Array<{ type: string; agent: string; answer: string; ok: boolean }>;
  /** A person approved dispatching while the CI guard was red. */
  guardWaived?: boolean;
  note?: string;
  /** The pull request the agent reported, and the state of its checks (pr-checks.ts). */
  pr?: { number: number; url: string; headSha?: string; checks: ChecksState };
  /** Attempts to fix red checks on the same branch (up to the hub's maxFixAttempts). */
  fixAttempts?: number;
  /** What the agent is asked to fix first (red checks' first error lines). */
  lastFailure?: string;
}

export interface CurrentItem {
  item: string;
  task: string;
  agent: string;
  agentType: string;
  purpose: 'task' | 'consult';
  /** `checking`: the agent reported a PR; the task waits for its checks (`checks:<run>.<task>`). */
  state: 'queued' | 'dispatched' | 'checking';
  /** `queue:<item>` while queued, `<item>` once dispatched: what the gate waits for. */
  correlation: string;
  queuedAt: string;
  expiresAt: string;
  executor?: string;
  consult?: { type: string; question: string; from: string };
}

export interface Escalation extends EscalationRequest {
  openedAt: string;
  expiresAt: string;
  /** The notice went out (a re-wait does not send it again). */
  notified?: boolean;
}

export interface WorkState {
  plan: string | null;
  tasks: TaskState[];
  current?: CurrentItem;
  escalation?: Escalation;
  escalations: number;
}

/**
 * The edges the pipeline needs around its execute node (add them to the workflow graph):
 * answers, promotions and retries loop back (`next`), an approved escalation tries again
 * (`approved`), an expired gate comes back to fail the task with a report (`expired`), and
 * the plain edge moves on when every task is done.
 */
export function executeEdges(node = 'execute', then = 'report'): EdgeDefinition[] {
  return [
    { from: node, to: node, on: RESULT_EDGE },
    { from: node, to: node, on: 'approved' },
    { from: node, to: node, on: 'expired' },
    { from: node, to: then },
  ];
}

type Ctx = StepContext<unknown>;
type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

export function planOf(data: Obj): Plan | undefined {
  const p = data.plan;
  return isObj(p) && Array.isArray(p.tasks) ? (p as unknown as Plan) : undefined;
}

function human(ms: number): string {
  if (ms >= 3600_000) return `${Math.round((ms / 3600_000) * 10) / 10} h`;
  if (ms >= 60_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 1000)} s`;
}

export function createExecuteNode(deps: HubDeps | AgentHub): (ctx: Ctx) => Promise<NodeResult> {
  const hub = hubOf(deps);
  return (ctx) => new ExecuteStep(hub, ctx).execute();
}

class ExecuteStep {
  private state!: WorkState;
  /**
   * The item whose answer this step took, still holding its slot: the next item of the run may
   * take the slot over in one write (`enqueue`); whatever the step does instead, the slot is
   * released before it ends (`execute`).
   */
  private ended: string | undefined;
  /** Spend against the run's caps (budget.ts), in run data `budget`. */
  private budget!: BudgetState;
  private readonly now: Date;

  constructor(
    private readonly hub: AgentHub,
    private readonly ctx: Ctx,
  ) {
    this.now = hub.now();
  }

  private get run() {
    return this.ctx.run;
  }

  private emit(type: EventType, detail: Obj, by = 'hub'): void {
    this.ctx.emit({ type, node: this.ctx.node, by, detail });
  }

  private task(id: string): TaskState {
    const t = this.state.tasks.find((x) => x.id === id);
    if (!t) throw new InternalError(`work state of ${this.run.id} has no task ${id}`);
    return t;
  }

  private output(): Obj {
    return {
      work: this.state,
      taskStatus: Object.fromEntries(this.state.tasks.map((t) => [t.id, t.status])),
      // Each task's pull request and check state, for the status comment and Discord.
      taskPrs: Object.fromEntries(this.state.tasks.flatMap((t) => (t.pr ? [[t.id, t.pr]] : []))),
      budget: this.budget,
    };
  }

  /** The caps for this run: the repository's (an overlay may only lower them), else the central ones. */
  private async caps(): Promise<BudgetCaps> {
    const provider = this.hub.deps.config as {
      central: { budgets: { perRun: BudgetCaps } };
      cached?: (repo: string) => Promise<{ config: { budgets: { perRun: BudgetCaps } } }>;
    };
    const repo = this.run.subject.repo;
    if (repo && typeof provider.cached === 'function')
      return (await provider.cached(repo)).config.budgets.perRun;
    return provider.central.budgets.perRun;
  }

  private init(plan: Plan): WorkState {
    const registry = this.hub.registry();
    const tasks: TaskState[] = plan.tasks.map((t) => {
      const base: TaskState = {
        id: t.id,
        title: t.title,
        agent: t.agent,
        files: t.files.slice(0, 50),
        status: 'pending',
        failures: 0,
        tries: 0,
      };
      if (t.done) return { ...base, status: 'done', note: 'already ticked in the issue' };
      const agent = registry.get(t.agent);
      if (!agent) return { ...base, status: 'skipped', note: `no agent ${t.agent}: a task for a person` };
      if (agent.executor.type === 'builtin')
        return { ...base, status: 'skipped', note: `${t.agent} is built in: it takes no queued work` };
      return base;
    });
    for (const t of tasks.filter((x) => x.status === 'skipped'))
      this.emit('work.task.skipped', { task: t.id, agent: t.agent, reason: t.note ?? null });
    return { plan: plan.version ?? null, tasks, escalations: 0 };
  }

  async execute(): Promise<NodeResult> {
    const rawBudget = this.run.data.budget as { cap?: unknown } | undefined;
    this.budget = budgetState(
      rawBudget,
      rawBudget?.cap ? this.hub.config.budgets.perRun : await this.caps(),
      this.run.createdAt,
    );
    const plan = planOf(this.run.data);
    const existing = this.run.data.work;
    if (isObj(existing) && Array.isArray(existing.tasks)) {
      this.state = structuredClone(existing) as unknown as WorkState;
    } else {
      if (!plan) {
        this.emit('work.none', { reason: 'the run has no plan' });
        this.state = { plan: null, tasks: [], escalations: 0 };
        return { output: this.output() };
      }
      this.state = this.init(plan);
    }

    if (this.state.escalation) {
      const r = this.resolveEscalation();
      if (r) return r;
    }
    if (this.budget.gate) return this.resolveBudget(this.budget.gate);

    const cur = this.state.current;
    if (cur?.state === 'checking') return this.checking(cur);
    if (cur) {
      const result = await this.freshResult(cur);
      if (cur.state === 'queued') {
        if (result?.kind === 'admitted' || (await this.hub.queue.isRunning(cur.item))) return this.dispatch();
        if (this.now.getTime() >= Date.parse(cur.expiresAt)) return this.queueTimeout(cur);
        // Put it back in the queue if its place was lost (enqueue is idempotent): a run woken at
        // its queue gate must never wait for an admission that no queue entry can bring.
        if ((await this.hub.queue.offer(this.workItem(cur))) === 'running') return this.dispatch();
        if (await this.hub.pump(cur.item)) return this.dispatch();
        return this.waitQueued(cur);
      }
      if (result && result.kind === 'completed') {
        try {
          await this.complete(cur, result);
          return await this.advance();
        } finally {
          await this.releaseEnded();
        }
      } else if (this.now.getTime() >= Date.parse(cur.expiresAt)) {
        return this.agentTimeout(cur);
      } else {
        return this.waitAgent(cur);
      }
    }
    return this.advance();
  }

  /** After an answer: an escalation, a consultation in flight, or the next task. */
  private async advance(): Promise<NodeResult> {
    for (let guard = 0; guard < 100; guard++) {
      if (this.state.escalation) return this.waitEscalation(this.state.escalation);
      if (this.state.current?.state === 'checking') return this.checking(this.state.current);
      if (this.state.current) {
        // Before a dispatch would pass a cap, a person decides (a budget gate).
        const over = budgetCheck(this.budget, this.now);
        if (over) return this.openBudgetGate(over);
        return this.enqueue(this.state.current);
      }
      const task = this.state.tasks.find((t) => t.status === 'pending');
      if (!task) return this.finish();
      const agent = this.hub.registry().get(task.agent);
      if (!agent || agent.executor.type === 'builtin') {
        task.status = 'skipped';
        task.note = agent ? `${agent.name} is built in` : `no agent ${task.agent}`;
        this.emit('work.task.skipped', { task: task.id, agent: task.agent, reason: task.note });
        continue;
      }
      if (!task.guardWaived) {
        const red = await this.ciRed();
        if (red) {
          this.openEscalation({
            cause: 'guard',
            task: task.id,
            reason: `CI on ${red.branch} is red (${red.failing.join(', ')}): approve to dispatch ${task.id} anyway`,
          });
          continue;
        }
      }
      // `/hold` (lib/agents/gates.ts): park before the next dispatch until `/unhold`.
      const hold = await heldBy(this.hub.store, this.run.id);
      if (hold) return holdWait(this.run.id, hold, this.output());
      this.state.current = this.newItem(task, agent, 'task');
    }
    throw new InternalError('execute: no progress after 100 decisions');
  }

  private newItem(
    task: TaskState,
    agent: RegisteredAgent,
    purpose: 'task' | 'consult',
    consult?: CurrentItem['consult'],
  ): CurrentItem {
    task.tries++;
    task.status = 'running';
    task.since ??= this.now.toISOString();
    const item = `${this.run.id}.${task.id}.${task.tries}`;
    return {
      item,
      task: task.id,
      agent: agent.name,
      agentType: agent.type,
      purpose,
      state: 'queued',
      correlation: `queue:${item}`,
      queuedAt: this.now.toISOString(),
      expiresAt: new Date(this.now.getTime() + this.hub.options.queueTimeoutMs).toISOString(),
      ...(consult ? { consult } : {}),
    };
  }

  private priority(agent: string): number {
    const data = this.run.data;
    const routing = isObj(data.routing) ? data.routing : undefined;
    const base = num(data.priority) ?? num(routing?.priority) ?? 0;
    return base + (this.hub.registry().get(agent)?.priority ?? 0);
  }

  private workItem(cur: CurrentItem): WorkItem {
    const task = this.task(cur.task);
    return {
      id: cur.item,
      runId: this.run.id,
      agent: cur.agent,
      agentType: cur.agentType,
      repo: this.run.subject.repo ?? this.run.subject.key,
      priority: this.priority(cur.agent),
      createdAt: task.since ?? cur.queuedAt,
      limit: this.hub.registry().get(cur.agent)?.concurrency ?? 1,
      task: task.id,
      title: task.title.slice(0, 120),
      purpose: cur.purpose,
    };
  }

  private async enqueue(cur: CurrentItem): Promise<NodeResult> {
    const item = this.workItem(cur);
    // The slot of the item just ended passes to this one when nothing else would take it
    // (work-queue.ts handOver); else it is given back first, and this one is admitted at once
    // when nothing else may run first (offer: fewer writes).
    const ended = this.ended;
    const handedOver = ended === undefined ? undefined : await this.hub.queue.handOver(ended, item);
    if (handedOver) this.ended = undefined;
    else await this.releaseEnded();
    const where = handedOver ?? (await this.hub.queue.offer(item));
    this.emit('work.queued', {
      item: cur.item,
      task: cur.task,
      agent: cur.agent,
      purpose: cur.purpose,
      priority: item.priority,
    });
    if (where === 'running' || (await this.hub.pump(cur.item))) return this.dispatch();
    return this.waitQueued(cur);
  }

  private waitQueued(cur: CurrentItem, paused?: string): NodeResult {
    return {
      wait: {
        kind: 'agent',
        correlation: cur.correlation,
        expiresInMs: Math.max(1_000, Date.parse(cur.expiresAt) - this.now.getTime()),
        prompt: `${cur.task} is queued for ${cur.agent} (${paused ?? 'waiting for a free slot'})`,
      },
      output: this.output(),
    };
  }

  private waitAgent(cur: CurrentItem): NodeResult {
    return {
      wait: {
        kind: 'agent',
        correlation: cur.correlation,
        expiresInMs: Math.max(1_000, Date.parse(cur.expiresAt) - this.now.getTime()),
        prompt: `waiting for ${cur.agent} (${cur.executor ?? 'agent'}) on ${cur.task}`,
      },
      output: this.output(),
    };
  }

  /** What the agent is asked to do (the executor filters it through the agent's allowlist). */
  private taskFor(cur: CurrentItem): Obj {
    const task = this.task(cur.task);
    const plan = planOf(this.run.data);
    const event = isObj(this.run.data.event) ? this.run.data.event : undefined;
    const subject = event && isObj(event.subject) ? event.subject : undefined;
    const base: Obj = {
      run: this.run.id,
      item: cur.item,
      purpose: cur.purpose,
      repo: this.run.subject.repo ?? null,
      issue: this.run.subject.issue ?? null,
      ...(str(subject?.url) ? { issueUrl: subject!.url } : {}),
      plan: plan ? { version: plan.version, title: plan.title, summary: plan.summary } : null,
      task: { id: task.id, title: task.title, files: task.files },
      agent: { name: cur.agent, type: cur.agentType },
      attempt: task.tries,
      ...(task.lastFailure
        ? { lastFailure: task.lastFailure }
        : task.failures > 0 && task.result?.summary
          ? { lastFailure: task.result.summary }
          : {}),
      ...(task.consultations?.length ? { consultations: task.consultations } : {}),
    };
    if (cur.purpose === 'consult' && cur.consult)
      return {
        ...base,
        question: { from: cur.consult.from, asks: cur.consult.type, text: cur.consult.question },
      };
    return base;
  }

  private async dispatch(): Promise<NodeResult> {
    const cur = this.state.current!;
    // Kill switch: keep the task queued (its slot held); the sweeper's reconcile wakes it again.
    const paused = await pausedFor(this.hub.store, this.run.subject.repo);
    if (paused) return this.waitQueued(cur, describePause(paused));
    const agent = this.hub.registry().get(cur.agent);
    if (!agent) {
      await this.hub.queue.release(cur.item);
      throw new NoExecutorError(`agent ${cur.agent} is no longer configured`, { runId: this.run.id });
    }
    const executor = this.hub.executorFor(agent);
    const timeoutMs = this.hub.agentTimeoutMs(agent.name);
    const expiresAt = new Date(this.now.getTime() + timeoutMs).toISOString();
    const correlation = cur.item;
    const queue = this.hub.queue;
    // Where the dispatch goes, as configured, is recorded before GitHub answers: an agent's
    // callback that comes first is bound by that workflow and its run-name (actions-callback.ts),
    // not refused as "from another workflow".
    const { repo = this.run.subject.repo, workflow } = executor.destination?.(agent, this.run) ?? {};
    const fresh: DispatchRecord = {
      runId: this.run.id,
      item: cur.item,
      correlation,
      agent: agent.name,
      executor: executor.type,
      state: 'dispatching',
      startedAt: this.now.toISOString(),
      expiresAt,
      ...(repo ? { repo } : {}),
      ...(workflow ? { workflow } : {}),
    };
    // The dispatch record is the dispatch effect's claim and its journal (`claim`, `recorded:
    // 'by-caller'`): written before the executor is called, under this step's lease (the claim,
    // so the ledger writes nothing), and again right after GitHub answers. An attempt that finds
    // it dispatched (a retried or taken-over step) replays it without calling the effect.
    let put: { value: DispatchRecord; version: number; interrupted?: boolean } | undefined;
    const recordDispatched = (outcome: DispatchOutcome, replayed = false) =>
      queue.updateDispatch(
        this.run.id,
        (d) =>
          d.item === cur.item && d.state === 'dispatching'
            ? {
                ...d,
                state: 'dispatched',
                // A dispatch replayed from the ledger happened after its attempt's start, which
                // putDispatch kept; not at this attempt's time.
                dispatchedAt: replayed ? d.startedAt : this.now.toISOString(),
                dryRun: outcome.dryRun,
                ...dispatchDetails(outcome.details),
              }
            : undefined,
        put,
      );
    let outcome: DispatchOutcome;
    let recorded: DispatchOutcome | undefined;
    let dispatchedNow = false;
    try {
      // Once per work item for the whole run: the execute node runs as many steps.
      outcome = await this.ctx.effect(
        `dispatch:${cur.item}`,
        async () => {
          dispatchedNow = true;
          const sent = await executor.dispatch({
            run: this.run,
            node: this.ctx.node,
            item: cur.item,
            agent,
            task: this.taskFor(cur),
            correlation,
            expiresAt,
            emit: (e) => this.ctx.emit(e),
          });
          // Written whatever became of this step's lease (it was done); a takeover that
          // dispatched first keeps its own (conditional on `dispatching`).
          await recordDispatched(sent);
          return sent;
        },
        {
          scope: 'run',
          recorded: 'by-caller',
          claim: async (fence) => {
            put = await queue.putDispatch(fresh, { version: fence.version });
            recorded = put?.value.item === cur.item ? recordedOutcome(put.value) : undefined;
            if (recorded) return { outcome: 'done', result: recorded };
            return { outcome: 'claimed', interrupted: put?.interrupted === true };
          },
        },
      );
    } catch (err) {
      if (!isRetryable(err)) {
        // A refusal (permission, config) will not change on retry: free the slot for others now.
        this.task(cur.task).status = 'failed';
        this.emit('work.dispatch.failed', {
          item: cur.item,
          agent: agent.name,
          error: (err as Error).message,
        });
        await queue.release(cur.item);
        await this.hub.pump();
      }
      throw err;
    }
    // Replayed from the ledger: journaled by the previous version of this node, which recorded
    // the effect there and the dispatch record after it.
    if (!dispatchedNow && !recorded) await recordDispatched(outcome, true);
    this.budget.spent.dispatches++;
    // The workflow run GitHub returned is named by the record now, and by its `earlier` list after
    // the next item: no binding record of its own (work-queue.ts bindWorkflowRun).
    cur.state = 'dispatched';
    cur.correlation = correlation;
    cur.expiresAt = expiresAt;
    cur.executor = executor.type;
    this.emit(
      'work.dispatched',
      {
        item: cur.item,
        task: cur.task,
        purpose: cur.purpose,
        agent: agent.name,
        executor: executor.type,
        dryRun: outcome.dryRun,
        expiresAt,
        ...outcome.details,
      },
      agent.name,
    );
    // An answer that arrives before this step commits (a fast agent) is parked, and the work
    // reporter delivers it once this commit shows the run waiting (results.ts). Not looked for
    // here: an agent takes longer than its dispatch's commit, and the look was a read a dispatch.
    return this.waitAgent(cur);
  }

  /** The answer (or admission) for the current item: from the resuming signal, else parked. */
  private async freshResult(cur: CurrentItem): Promise<Obj | undefined> {
    const raw = this.run.data[resultKey(this.ctx.node)];
    if (isObj(raw) && raw.correlation === cur.correlation) {
      if (cur.state === 'queued' ? raw.kind === 'admitted' : raw.kind === 'completed') return raw;
    }
    if (cur.state !== 'dispatched') return undefined;
    const parked = await this.hub.queue.parked(cur.correlation);
    if (!parked) return undefined;
    // Left in place (it expires): deleting it before this step commits could lose it in a crash.
    return {
      ...parked.payload,
      kind: 'completed',
      ok: parked.ok,
      by: parked.by,
      item: parked.item,
      correlation: parked.correlation,
    };
  }

  /** Release the slot of the item whose answer this step took, unless the next item took it over. */
  private async releaseEnded(): Promise<void> {
    const ended = this.ended;
    if (ended === undefined) return;
    this.ended = undefined;
    await this.hub.queue.release(ended);
    await this.hub.pump();
  }

  private async complete(cur: CurrentItem, result: Obj): Promise<void> {
    // Released by the next item's enqueue (taken over or given back), or when the step ends.
    this.ended = cur.item;
    delete this.state.current;
    const task = this.task(cur.task);
    const cost = addAgentUsage(this.budget, result);
    if (cost !== undefined)
      this.emit('budget.spent', {
        item: cur.item,
        task: task.id,
        costUsd: cost,
        spentUsd: this.budget.spent.usd,
      });
    const ok = result.ok !== false;
    const summary = str(result.summary);
    const url = str(result.url);
    const conclusion = str(result.conclusion) ?? (ok ? 'success' : 'failure');
    const by = str(result.by) ?? cur.agent;

    if (cur.purpose === 'consult') {
      const answer = (summary ?? conclusion).slice(0, 2_000);
      task.consultations = [
        ...(task.consultations ?? []),
        { type: cur.consult?.type ?? cur.agentType, agent: cur.agent, answer, ok },
      ];
      task.status = 'pending';
      this.emit(
        'hub.consult.answered',
        {
          by: cur.agent,
          type: cur.consult?.type ?? cur.agentType,
          for: cur.consult?.from ?? null,
          task: task.id,
          ok,
          answer,
          ...(url ? { url } : {}),
        },
        cur.agent,
      );
      return;
    }

    const escalate = str(result.escalate);
    if (escalate) {
      task.status = 'pending';
      this.emit(
        'agent.escalation.requested',
        { agent: cur.agent, task: task.id, reason: escalate },
        cur.agent,
      );
      this.openEscalation({
        cause: 'agent',
        task: task.id,
        reason: `${cur.agent} asks for a person: ${escalate}`,
      });
      return;
    }

    let failed = !ok;
    let failSummary = summary;
    if (isObj(result.consult)) {
      const c = result.consult;
      try {
        const decision = await this.hub.consult(this.ctx, {
          from: cur.agent,
          ...(str(c.type) ? { type: c.type as string } : {}),
          ...((str(c.to) ?? str(c.agent)) ? { to: (str(c.to) ?? str(c.agent))! } : {}),
          question: str(c.question) ?? summary ?? '(no question given)',
        });
        if (decision.outcome === 'routed') {
          this.state.current = this.newItem(task, decision.agent, 'consult', {
            type: decision.agent.type,
            question: (str(c.question) ?? summary ?? '').slice(0, 2_000),
            from: cur.agent,
          });
          return;
        }
        task.status = 'pending';
        this.openEscalation({ cause: 'consultation', task: task.id, reason: decision.reason });
        return;
      } catch (err) {
        if (!(err instanceof DirectAddressError)) throw err;
        failed = true;
        failSummary = `refused: ${err.message}`;
      }
    }

    task.result = {
      conclusion: failed && conclusion === 'success' ? 'refused' : conclusion,
      by,
      ...(url ? { url } : {}),
      ...(failSummary ? { summary: failSummary.slice(0, 2_000) } : {}),
    };
    const pr = isObj(result.pullRequest) ? result.pullRequest : undefined;
    if (!failed && pr && typeof pr.number === 'number' && str(pr.url) && this.run.subject.repo) {
      // Done only when the PR's checks are green: wait for them (pr-checks.ts).
      task.pr = { number: pr.number, url: pr.url as string, checks: 'pending' };
      task.status = 'running';
      delete task.lastFailure;
      this.state.current = {
        ...cur,
        state: 'checking',
        correlation: checksCorrelation(this.run.id, task.id),
        expiresAt: new Date(this.now.getTime() + this.hub.agentTimeoutMs(cur.agent)).toISOString(),
      };
      this.emit('work.task.pr', { task: task.id, agent: cur.agent, item: cur.item, pr: task.pr }, cur.agent);
      return;
    }
    if (!failed) {
      task.status = 'done';
      this.emit(
        'work.task.succeeded',
        { task: task.id, agent: cur.agent, item: cur.item, conclusion, ...(url ? { url } : {}) },
        cur.agent,
      );
      return;
    }
    task.failures++;
    const max = this.hub.options.maxFailures;
    this.emit(
      'work.task.failed',
      {
        task: task.id,
        agent: cur.agent,
        item: cur.item,
        conclusion: task.result.conclusion,
        failures: task.failures,
        maxFailures: max,
        ...(url ? { url } : {}),
        ...(failSummary ? { summary: failSummary.slice(0, 500) } : {}),
      },
      cur.agent,
    );
    if (task.failures >= max) {
      task.status = 'failed';
      this.openEscalation({
        cause: 'failures',
        task: task.id,
        reason: `task ${task.id} (${cur.agent}) failed ${task.failures} times${failSummary ? `; last: ${failSummary.slice(0, 200)}` : ''}`,
      });
    } else {
      task.status = 'pending';
    }
  }

  private openBudgetGate(over: {
    dimensions: BudgetGate['dimensions'];
    reason: string;
  }): Promise<NodeResult> {
    this.budget.gates++;
    const gate: BudgetGate = {
      binding: `budget-${this.budget.gates}`,
      reason: over.reason,
      dimensions: over.dimensions,
      openedAt: this.now.toISOString(),
      expiresAt: new Date(this.now.getTime() + this.hub.options.escalationExpiryMs).toISOString(),
    };
    this.budget.gate = gate;
    this.emit('budget.reached', { ...gate, spent: this.budget.spent, cap: this.budget.cap });
    return Promise.resolve(this.waitBudget(gate));
  }

  private waitBudget(gate: BudgetGate): NodeResult {
    return {
      wait: {
        kind: 'budget',
        binding: gate.binding,
        expiresInMs: Math.max(1_000, Date.parse(gate.expiresAt) - this.now.getTime()),
        prompt: `${gate.reason}. Approve to raise the cap (\`runs approve ${this.run.id} --budget <usd>\`), reject to stop the run.`,
      },
      output: this.output(),
    };
  }

  /** Back at the node with a budget gate open: approved (raise the cap and go on), or expired. */
  private resolveBudget(gate: BudgetGate): Promise<NodeResult> | NodeResult {
    const approval = isObj(this.run.data.approval) ? this.run.data.approval : undefined;
    if (approval?.binding === gate.binding) {
      const raise = raiseBudget(
        this.budget,
        gate,
        {
          by: str(approval.by) ?? 'someone',
          at: str(approval.at) ?? this.now.toISOString(),
          ...(num(approval.budget) !== undefined ? { budget: num(approval.budget)! } : {}),
        },
        this.now,
      );
      delete this.budget.gate;
      this.emit('budget.raised', { binding: gate.binding, ...raise }, raise.by);
      return this.advance();
    }
    if (this.now.getTime() >= Date.parse(gate.expiresAt)) {
      this.emit('budget.expired', { binding: gate.binding, reason: gate.reason });
      throw new EscalationExpiredError(`nobody decided on the budget gate in time: ${gate.reason}`, {
        runId: this.run.id,
        node: this.ctx.node,
      });
    }
    return this.waitBudget(gate);
  }

  private openEscalation(req: Omit<EscalationRequest, 'binding'>): void {
    this.state.escalations++;
    const binding = `escalation-${this.state.escalations}`;
    const esc: Escalation = {
      ...req,
      binding,
      openedAt: this.now.toISOString(),
      expiresAt: new Date(this.now.getTime() + this.hub.options.escalationExpiryMs).toISOString(),
    };
    this.state.escalation = esc;
    this.emit('escalation.opened', { ...esc });
  }

  private async waitEscalation(esc: Escalation): Promise<NodeResult> {
    if (!esc.notified) {
      await this.hub.notifyEscalation(this.ctx, esc);
      esc.notified = true;
    }
    return {
      wait: {
        kind: 'escalation',
        binding: esc.binding,
        expiresInMs: Math.max(1_000, Date.parse(esc.expiresAt) - this.now.getTime()),
        prompt: `Escalated: ${esc.reason}. Approve to try again, reject to stop the run.`,
      },
      output: this.output(),
    };
  }

  /** Back at the node with an escalation open: approved (try again), or expired. */
  private resolveEscalation(): NodeResult | undefined {
    const esc = this.state.escalation!;
    const approval = isObj(this.run.data.approval) ? this.run.data.approval : undefined;
    if (approval?.binding === esc.binding) {
      this.emit('escalation.approved', { binding: esc.binding, cause: esc.cause, by: approval.by ?? null });
      const task = esc.task ? this.state.tasks.find((t) => t.id === esc.task) : undefined;
      if (task) {
        task.status = 'pending';
        if (esc.cause === 'failures') {
          task.failures = 0;
          task.fixAttempts = 0;
        }
        if (esc.cause === 'guard') task.guardWaived = true;
      }
      delete this.state.escalation;
      return undefined;
    }
    if (this.now.getTime() >= Date.parse(esc.expiresAt)) {
      this.emit('escalation.expired', { binding: esc.binding, cause: esc.cause, reason: esc.reason });
      throw new EscalationExpiredError(`nobody decided on the escalation in time: ${esc.reason}`, {
        runId: this.run.id,
        node: this.ctx.node,
      });
    }
    return undefined;
  }

  /** Waiting for the checks on the task's PR: read them, then done, a fix attempt, or escalation. */
  private async checking(cur: CurrentItem): Promise<NodeResult> {
    const task = this.task(cur.task);
    const pr = task.pr!;
    const repo = this.run.subject.repo!;
    // A nudge parked mid-step has done its job once the API is read below.
    await this.hub.queue.unpark(cur.correlation);
    const agent = this.hub.registry().get(cur.agent);
    const client = this.hub.deps.github.forAgent(
      { name: cur.agent, permissions: agent?.permissions ?? ['read'] },
      { runId: this.run.id, node: this.ctx.node, sink: (e) => this.ctx.emit(e) },
    );
    const verdict = await readChecks(client, repo, pr.number);
    const finish = () => {
      delete this.state.current;
      return this.advance();
    };
    if (!verdict) {
      // Dry-run: nothing can be read, so the PR is taken as reported.
      pr.checks = 'green';
      task.status = 'done';
      task.note = 'checks not followed (dry-run)';
      this.emit(
        'work.task.succeeded',
        { task: task.id, agent: cur.agent, item: cur.item, url: pr.url },
        cur.agent,
      );
      return finish();
    }
    pr.headSha = verdict.headSha;
    if (pr.checks !== verdict.state)
      this.emit('work.checks', {
        task: task.id,
        pr: pr.number,
        sha: verdict.headSha,
        state: verdict.state,
        ...verdict.counts,
      });
    pr.checks = verdict.state;
    if (verdict.state === 'green') {
      task.status = 'done';
      task.result = { conclusion: 'success', by: cur.agent, url: pr.url };
      this.emit(
        'work.task.succeeded',
        {
          task: task.id,
          agent: cur.agent,
          item: cur.item,
          conclusion: 'success',
          url: pr.url,
          checks: 'green',
        },
        cur.agent,
      );
      return finish();
    }
    if (verdict.state === 'red') {
      const summary = verdict.summary ?? `checks failed on ${verdict.headSha.slice(0, 7)}`;
      const attempts = task.fixAttempts ?? 0;
      const max = this.hub.options.maxFixAttempts;
      task.result = { conclusion: 'failure', by: 'checks', url: pr.url, summary };
      if (attempts < max) {
        task.fixAttempts = attempts + 1;
        task.lastFailure = summary;
        task.status = 'pending';
        this.emit('work.fix.requested', {
          task: task.id,
          pr: pr.number,
          attempt: attempts + 1,
          maxFixAttempts: max,
        });
      } else {
        task.status = 'failed';
        this.openEscalation({
          cause: 'failures',
          task: task.id,
          reason: `checks on PR #${pr.number} are still red after ${attempts} fix attempt${attempts === 1 ? '' : 's'}: ${summary.slice(0, 300)}`,
        });
      }
      return finish();
    }
    if (this.now.getTime() >= Date.parse(cur.expiresAt)) {
      task.status = 'failed';
      this.openEscalation({
        cause: 'failures',
        task: task.id,
        reason: `checks on PR #${pr.number} did not finish within ${human(Date.parse(cur.expiresAt) - Date.parse(cur.queuedAt))}`,
      });
      return finish();
    }
    return {
      wait: {
        kind: 'agent',
        correlation: cur.correlation,
        expiresInMs: Math.max(1_000, Date.parse(cur.expiresAt) - this.now.getTime()),
        prompt: `waiting for the checks on PR #${pr.number} (${task.id})`,
      },
      output: this.output(),
    };
  }

  private async queueTimeout(cur: CurrentItem): Promise<never> {
    await this.hub.queue.release(cur.item);
    await this.hub.pump();
    const waited = Date.parse(cur.expiresAt) - Date.parse(cur.queuedAt);
    this.emit('work.queue.timed-out', { item: cur.item, task: cur.task, agent: cur.agent, waitedMs: waited });
    throw new QueueTimeoutError(
      `task ${cur.task} waited ${human(waited)} for a free ${cur.agent} slot and was given up`,
      { runId: this.run.id, node: this.ctx.node },
    );
  }

  private async agentTimeout(cur: CurrentItem): Promise<never> {
    await this.hub.queue.release(cur.item);
    await this.hub.pump();
    const ms = this.hub.agentTimeoutMs(cur.agent);
    this.emit(
      'agent.timed-out',
      { agent: cur.agent, item: cur.item, task: cur.task, executor: cur.executor ?? null, timeoutMs: ms },
      'hub',
    );
    throw new AgentTimeoutError(
      `agent ${cur.agent} timed out: no result for task ${cur.task} within ${human(ms)}`,
      { runId: this.run.id, node: this.ctx.node },
    );
  }

  private finish(): NodeResult {
    const count = (s: TaskStatus) => this.state.tasks.filter((t) => t.status === s).length;
    this.emit('work.completed', {
      done: count('done'),
      skipped: count('skipped'),
      tasks: this.state.tasks.length,
    });
    return {
      output: {
        ...this.output(),
        execution: {
          tasks: this.state.tasks.map((t) => ({
            id: t.id,
            agent: t.agent,
            status: t.status,
            ...(t.result?.url ? { url: t.result.url } : {}),
            ...(t.pr ? { pr: t.pr } : {}),
            ...(t.note ? { note: t.note } : {}),
          })),
        },
      },
    };
  }

  /** The CI guard's verdict for the run's repository, when red. */
  private async ciRed(): Promise<{ branch: string; failing: string[] } | undefined> {
    const repo = this.run.subject.repo;
    const config = this.hub.config;
    if (!repo || !config.guards.ci.enabled) return undefined;
    const verdict = ciVerdict(await readCiRecord(this.hub.store, repo), config);
    if (verdict.state !== 'red') return undefined;
    return { branch: verdict.branch ?? 'the default branch', failing: verdict.failing.map((f) => f.name) };
  }
}

const DETAIL_KEYS = [
  'repo',
  'workflow',
  'ref',
  'url',
  'status',
  'workflowRunId',
  'workflowRunUrl',
  'runUrl',
  'runDetails',
] as const satisfies readonly (keyof DispatchOutcome['details'] & keyof DispatchRecord)[];

/** What the dispatch record keeps of where a dispatch went (every detail the executor gave). */
function dispatchDetails(details: DispatchOutcome['details']): Partial<DispatchRecord> {
  const kept: Record<string, unknown> = {};
  for (const k of DETAIL_KEYS) if (details[k] !== undefined) kept[k] = details[k];
  return kept as Partial<DispatchRecord>;
}

/** The dispatch a record says was made (undefined while it is still `dispatching`). */
function recordedOutcome(d: DispatchRecord): DispatchOutcome | undefined {
  if (d.state === 'dispatching') return undefined;
  const details: Record<string, unknown> = {};
  for (const k of DETAIL_KEYS) if (d[k] !== undefined) details[k] = d[k];
  return {
    executor: d.executor === 'http' ? 'http' : 'github-actions',
    dryRun: d.dryRun ?? false,
    details: details as DispatchOutcome['details'],
  };
}
