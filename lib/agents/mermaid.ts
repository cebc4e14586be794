import { type NodeProgress, progressOf } from '../engine/progress.ts';

/**
 * A Mermaid flowchart of a workflow graph, with the run's current node highlighted, nodes it has
 * passed shaded as done, and the node it failed at marked. GitHub renders ```mermaid blocks in
 * comments, so the status comment shows where the run is at a glance.
 */

export interface GraphShape {
  start: string;
  nodes: ReadonlyMap<string, { title?: string }> | Record<string, { title?: string }>;
  edges: ReadonlyArray<{ from: string; to: string; on?: string }>;
}

/** How a graph drawing marks a node: a run's gate or stop is where it is; `todo` is unmarked. */
export type GraphMark = 'done' | 'current' | 'failed' | 'todo';

/** The mark of a node in the diagram and the console's graph (lib/engine/progress.ts decides the state). */
export function graphMark(progress: NodeProgress): GraphMark {
  switch (progress) {
    case 'done':
      return 'done';
    case 'current':
    case 'waiting':
      return 'current';
    case 'failed':
    case 'cancelled':
      return 'failed';
    case 'pending':
      return 'todo';
  }
}

/** Mermaid ids must avoid keywords (`end`, `graph`, ...) and punctuation: prefix and sanitise. */
const id = (name: string) => `n_${name.replace(/[^A-Za-z0-9_]/g, '_')}`;
const label = (text: string) => text.replace(/"/g, '#quot;').replace(/[<>]/g, '');
const edgeLabel = (text: string) => text.replace(/[|"<>]/g, '');

function entries(nodes: GraphShape['nodes']): Array<[string, { title?: string }]> {
  return nodes instanceof Map ? [...nodes.entries()] : Object.entries(nodes);
}

export function renderMermaid(graph: GraphShape, progress: ReadonlyMap<string, NodeProgress>): string {
  const lines = ['flowchart LR'];
  for (const [name, node] of entries(graph.nodes))
    lines.push(`  ${id(name)}["${label(node.title ?? name)}"]`);
  for (const e of graph.edges) {
    lines.push(
      e.on ? `  ${id(e.from)} -->|${edgeLabel(e.on)}| ${id(e.to)}` : `  ${id(e.from)} --> ${id(e.to)}`,
    );
  }
  lines.push('  classDef done fill:#dcfce7,stroke:#16a34a,color:#14532d');
  lines.push('  classDef current fill:#fef3c7,stroke:#d97706,stroke-width:3px,color:#78350f');
  lines.push('  classDef failed fill:#fee2e2,stroke:#dc2626,stroke-width:3px,color:#7f1d1d');
  const marked = new Map<GraphMark, string[]>();
  for (const [name] of entries(graph.nodes)) {
    const mark = graphMark(progressOf(progress, name));
    marked.set(mark, [...(marked.get(mark) ?? []), id(name)]);
  }
  for (const mark of ['done', 'current', 'failed'] as const) {
    const ids = marked.get(mark);
    if (ids) lines.push(`  class ${ids.join(',')} ${mark}`);
  }
  return lines.join('\n');
}
