import { InternalError } from '../common/errors.ts';
import type { RunStatus } from './types.ts';

/**
 * Every type of run history event, in one list: the engine, the nodes and the reporters write
 * them; the reporters, the console, the run API, the metrics and the benches read them. A name
 * not listed here is a type error where it is written and where it is compared, so a reader
 * cannot wait for an event nobody writes.
 */
export const EVENT_TYPES = [
  // The engine: a run's life.
  'run.created',
  'run.succeeded',
  'run.failed',
  'run.cancelled',
  'run.expired',
  'step.scheduled',
  'step.succeeded',
  'step.retry',
  'step.failed',
  'node.completed',
  'gate.opened',
  'gate.skipped',
  'gate.withdrawn',
  'gate.expired',
  'report.failed',
  'report.summary',
  'sweeper.deadline',
  // Signals, as the engine records them (`signal.<type>`), and the approval it refused.
  'signal.approve',
  'signal.reject',
  'signal.cancel',
  'signal.retry',
  'signal.result',
  'signal.replan',
  'signal.note',
  'signal.approve.refused',
  // Routing: what a trigger was matched to and why.
  'routing.config',
  'routing.decided',
  'config.invalid',
  'guard.verdict',
  'policy.verdict',
  // The issue pipeline and its built-in agents.
  'intake.accepted',
  'triage.done',
  'plan.created',
  'plan.fallback',
  'plan.edited',
  'issue.edited',
  'coverage.compared',
  'ci-triage.collected',
  'ci-triage.posted',
  'ci-triage.resolved',
  'comment-command.decided',
  // Agent work: dispatches, results, budgets, escalations.
  'work.queued',
  'work.queue.timed-out',
  'work.none',
  'work.dispatched',
  'work.dispatch.failed',
  'work.checks',
  'work.completed',
  'work.fix.requested',
  'work.task.succeeded',
  'work.task.failed',
  'work.task.skipped',
  'work.task.pr',
  'budget.spent',
  'budget.reached',
  'budget.raised',
  'budget.expired',
  'agent.escalation.requested',
  'agent.timed-out',
  'agent.dispatch.found',
  'agent.env.refused',
  'agent.http.request',
  'agent.workflow-run.linked',
  'agent.workflow-run.reconciled',
  'agent.workflow-run.cancelled',
  'agent.workflow-run.cancel-skipped',
  'agent.workflow-run.cancel-refused',
  'escalation.opened',
  'escalation.approved',
  'escalation.expired',
  'escalation.notified',
  'escalation.notify.dry-run',
  'escalation.notify.failed',
  'hub.consult.requested',
  'hub.consult.routed',
  'hub.consult.answered',
  'hub.consult.unavailable',
  'hub.refused',
  // Where people act and look: GitHub, Discord, the console.
  'github.command',
  'github.request',
  'github.refused',
  'github.dry-run',
  'github.dispatch.fallback',
  'discord.refused',
  'discord.dry-run',
  'discord.report.failed',
  'discord.report.refused',
  'console.action',
  'console.refused',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

const KNOWN: ReadonlySet<string> = new Set(EVENT_TYPES);

/** For text from outside the type system (a CLI filter, a query string): is it an event type? */
export const isEventType = (s: string): s is EventType => KNOWN.has(s);

const RUN_END_EVENTS: Partial<Record<RunStatus, EventType>> = {
  succeeded: 'run.succeeded',
  failed: 'run.failed',
  cancelled: 'run.cancelled',
  expired: 'run.expired',
};

/** The event that ends a run in `status`, a terminal status. */
export function runEndEvent(status: RunStatus): EventType {
  const type = RUN_END_EVENTS[status];
  if (!type) throw new InternalError(`no event ends a run in status ${status}`);
  return type;
}
