import { describe, expect, it } from 'vitest';
import type { NodeResult, StepContext } from '../../lib/engine/workflow.ts';
import { graph, lazyNodes, withNodes } from '../../lib/workflows/graph.ts';
import { WORKFLOW_DEFINITIONS } from '../../lib/workflows/index.ts';
import { WORKER_WORKFLOWS } from '../../lib/workflows/nodes.ts';

/** A nodes module's type, as `import type * as nodes from './x-nodes.ts'` gives it. */
interface Nodes {
  first(ctx: StepContext<unknown>): Promise<NodeResult>;
  second(ctx: StepContext<unknown>): Promise<NodeResult>;
}

const twoNodes = graph<Nodes>({
  name: 'two-nodes',
  version: 1,
  start: 'first',
  nodes: { first: { title: 'First', timeoutMs: 1_000 }, second: { title: 'Second' } },
  edges: [{ from: 'first', to: 'second' }],
});

/** Only what the handlers below read. */
const ctx = (node: string) => ({ node }) as unknown as StepContext<unknown>;

describe('workflow graphs and their nodes modules', () => {
  it('keeps the graph and leaves its nodes unbound: running one in a process without them says so', async () => {
    expect(twoNodes.nodes.first).toMatchObject({ title: 'First', timeoutMs: 1_000 });
    await expect(twoNodes.nodes.first.handler(ctx('first'))).rejects.toThrow(
      'no implementation of two-nodes.first in this process',
    );
  });

  it('binds handlers given directly (tests bind stubs this way)', async () => {
    const bound = withNodes(twoNodes, {
      first: async () => ({ output: { a: 1 } }),
      second: async () => ({ output: { b: 2 } }),
    });
    expect(await bound.nodes.second!.handler(ctx('second'))).toEqual({ output: { b: 2 } });
    // The graph itself is unchanged.
    await expect(twoNodes.nodes.second.handler(ctx('second'))).rejects.toThrow('in this process');
  });

  it('imports the nodes module when a node first runs, once, and again after a failed import', async () => {
    let imports = 0;
    let failNext = true;
    const module: Nodes = {
      first: async (c) => ({ output: { ran: c.node } }),
      second: async (c) => ({ output: { ran: c.node } }),
    };
    const bound = lazyNodes(twoNodes, async () => {
      imports++;
      if (failNext) {
        failNext = false;
        throw new Error('chunk unreadable');
      }
      return module;
    });
    // Binding imports nothing: the worker's first message does not load every node's code.
    expect(imports).toBe(0);
    await expect(bound.nodes.first!.handler(ctx('first'))).rejects.toThrow('chunk unreadable');
    expect(await bound.nodes.first!.handler(ctx('first'))).toEqual({ output: { ran: 'first' } });
    expect(await bound.nodes.second!.handler(ctx('second'))).toEqual({ output: { ran: 'second' } });
    expect(imports).toBe(2);
  });

  it("gives the worker every workflow, in the registry's order, with each graph's nodes module bound", async () => {
    expect(WORKER_WORKFLOWS.map((w) => w.name)).toEqual(WORKFLOW_DEFINITIONS.map((w) => w.name));
    for (const [i, w] of WORKER_WORKFLOWS.entries()) {
      const graphOnly = WORKFLOW_DEFINITIONS[i]!;
      expect(Object.keys(w.nodes)).toEqual(Object.keys(graphOnly.nodes));
      expect(w.edges).toBe(graphOnly.edges);
    }
    // Each nodes module exports exactly its graph's nodes (the compiler checks it too).
    for (const [file, name] of [
      ['issue-pipeline-nodes', 'issue-pipeline'],
      ['ci-triage-nodes', 'ci-triage'],
      ['coverage-nodes', 'coverage-report'],
      ['comment-command-nodes', 'github-comment-command'],
    ] as const) {
      const exported = Object.keys(await import(`../../lib/workflows/${file}.ts`)).sort();
      const nodes = Object.keys(WORKFLOW_DEFINITIONS.find((w) => w.name === name)!.nodes).sort();
      expect(exported).toEqual(nodes);
    }
  });
});
