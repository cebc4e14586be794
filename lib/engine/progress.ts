import type { EventType } from './events.ts';
import type { RunEvent, RunStatus } from './types.ts';

/**
 * Where a run is in its graph, node by node: the one answer to "which nodes are done" that the
 * status comment's diagram, the console's graph and the Discord messages (the reporter's and the
 * live message's checklist) all draw from.
 */
export type NodeProgress = 'done' | 'current' | 'waiting' | 'failed' | 'cancelled' | 'pending';

/** A node is done once its step succeeded, its gate was passed, or its disabled gate was skipped. */
const DONE: ReadonlySet<EventType> = new Set(['step.succeeded', 'node.completed', 'gate.skipped']);

export interface RunPosition {
  /** The node the run is at (or ended at). */
  node: string | null;
  status: RunStatus;
}

/**
 * Each node's progress, for the nodes the history or the run names (any other node is
 * `pending`: use `progressOf`). From the history, later events winning: done, waiting at a gate
 * (`gate.opened`) or failed (`step.failed`). A gate that is not where the run is now was passed,
 * even when its `node.completed` is in a page of history not read. The node the run is at shows
 * the run's state.
 */
export function nodeProgress(run: RunPosition, events: readonly RunEvent[]): Map<string, NodeProgress> {
  const out = new Map<string, NodeProgress>();
  for (const e of events) {
    if (!e.node) continue;
    if (DONE.has(e.type)) out.set(e.node, 'done');
    else if (e.type === 'gate.opened') out.set(e.node, 'waiting');
    else if (e.type === 'step.failed') out.set(e.node, 'failed');
  }
  for (const [node, state] of out) if (state === 'waiting') out.set(node, 'done');
  if (run.node !== null) out.set(run.node, atNode(run.status));
  return out;
}

function atNode(status: RunStatus): NodeProgress {
  switch (status) {
    case 'succeeded':
      return 'done';
    case 'waiting':
      return 'waiting';
    case 'failed':
    case 'expired':
      return 'failed';
    case 'cancelled':
      return 'cancelled';
    default:
      return 'current';
  }
}

/** One node's progress from `nodeProgress`'s answer (a node it does not name is pending). */
export const progressOf = (progress: ReadonlyMap<string, NodeProgress>, node: string): NodeProgress =>
  progress.get(node) ?? 'pending';

/** The nodes that are done. */
export const doneNodes = (progress: ReadonlyMap<string, NodeProgress>): string[] =>
  [...progress].flatMap(([node, state]) => (state === 'done' ? [node] : []));
