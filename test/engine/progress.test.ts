import { describe, expect, it } from 'vitest';
import { graphMark } from '../../lib/agents/mermaid.ts';
import type { EventType } from '../../lib/engine/events.ts';
import { doneNodes, nodeProgress, progressOf } from '../../lib/engine/progress.ts';
import type { RunEvent } from '../../lib/engine/types.ts';

const at = '2026-01-01T00:00:00.000Z';
const history = (...pairs: Array<[EventType, string]>): RunEvent[] =>
  pairs.map(([type, node], seq) => ({ seq, at, type, node, detail: {} }));

describe('node progress', () => {
  it.each([
    ['a succeeded step', history(['step.succeeded', 'a'])],
    ['a passed gate', history(['gate.opened', 'a'], ['node.completed', 'a'])],
    ['a skipped gate', history(['gate.skipped', 'a'])],
    ['a gate the run is past, its node.completed not read', history(['gate.opened', 'a'])],
    [
      'a step that failed, then succeeded when retried',
      history(['step.failed', 'a'], ['step.succeeded', 'a']),
    ],
  ])('counts a node done after %s', (_name, events) => {
    const progress = nodeProgress({ node: 'b', status: 'running' }, events);

    expect(progressOf(progress, 'a')).toBe('done');
    expect(doneNodes(progress)).toEqual(['a']);
  });

  it.each([
    ['running', 'current'],
    ['queued', 'current'],
    ['waiting', 'waiting'],
    ['succeeded', 'done'],
    ['failed', 'failed'],
    ['expired', 'failed'],
    ['cancelled', 'cancelled'],
  ] as const)('shows the node a %s run is at as %s, whatever its history', (status, state) => {
    const progress = nodeProgress({ node: 'a', status }, history(['step.succeeded', 'a']));

    expect(progressOf(progress, 'a')).toBe(state);
  });

  it('leaves a node the history does not name pending, and a run at no node marks none', () => {
    const progress = nodeProgress({ node: null, status: 'queued' }, []);

    expect(progressOf(progress, 'a')).toBe('pending');
    expect(doneNodes(progress)).toEqual([]);
  });

  it('marks a graph the same way: a gate or an active step is current, a stop is failed', () => {
    expect(
      (['done', 'current', 'waiting', 'failed', 'cancelled', 'pending'] as const).map(graphMark),
    ).toEqual(['done', 'current', 'current', 'failed', 'failed', 'todo']);
  });
});
