import { describe, expect, it } from 'vitest';
import {
  assertNodeTimeouts,
  LEASE_GRACE_MS,
  MAX_NODE_TIMEOUT_MS,
  nodeTimeoutProblems,
  WORKER_FUNCTION_TIMEOUT_MS,
} from '../../lib/engine/timeouts.ts';
import type { Workflow } from '../../lib/engine/workflow.ts';
import { parseConfig } from '../../lib/routing/config.ts';
import { buildRegistry } from '../../lib/workflows/index.ts';

const all = (tuning = {}) => buildRegistry(tuning).all() as Workflow<unknown>[];

describe('node timeouts against the worker function timeout', () => {
  it('fit for every built-in workflow node, with the lease grace on top', () => {
    expect(nodeTimeoutProblems(all())).toEqual([]);
    for (const wf of all())
      for (const node of wf.nodes.values())
        expect(node.timeoutMs + LEASE_GRACE_MS).toBeLessThan(WORKER_FUNCTION_TIMEOUT_MS);
  });

  it('are checked when the worker builds its registry from config tuning, naming the node', () => {
    expect(() => buildRegistry({ 'issue-pipeline': { nodes: { plan: { timeoutMs: 118_000 } } } })).toThrow(
      /issue-pipeline\.plan: timeout 118000 ms \+ grace 5000 ms is not below the worker's 120000 ms/,
    );
  });

  it('are refused at config load when a workflow node asks for more than fits', () => {
    const yaml = `workflows:\n  issue-pipeline:\n    nodes:\n      plan:\n        timeoutMs: ${MAX_NODE_TIMEOUT_MS + 1}\n`;
    expect(() => parseConfig(yaml)).toThrow(/timeoutMs/);
  });

  it('name every offending node at once', () => {
    expect(() => assertNodeTimeouts(all(), 30_000)).toThrow(/node timeouts do not fit the worker function/);
    expect(nodeTimeoutProblems(all(), 30_000).length).toBeGreaterThan(1);
  });
});
