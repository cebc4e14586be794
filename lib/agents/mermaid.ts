import type { RunStatus } from '../engine/types.ts';

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

export interface GraphState {
  current: string | null;
  status: RunStatus;
  visited: ReadonlySet<string>;
}

/** Mermaid ids must avoid keywords (`end`, `graph`, ...) and punctuation: prefix and sanitise. */
const id = (name: string) => `n_${name.replace(/[^A-Za-z0-9_]/g, '_')}`;
const label = (text: string) => text.replace(/"/g, '#quot;').replace(/[<>]/g, '');
const edgeLabel = (text: string) => text.replace(/[|"<>]/g, '');

function entries(nodes: GraphShape['nodes']): Array<[string, { title?: string }]> {
  return nodes instanceof Map ? [...nodes.entries()] : Object.entries(nodes);
}

export function renderMermaid(graph: GraphShape, state: GraphState): string {
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
  const names = new Set(entries(graph.nodes).map(([n]) => n));
  const failed = state.status === 'failed' || state.status === 'expired' || state.status === 'cancelled';
  const here = state.current && names.has(state.current) ? state.current : null;
  const done = [...state.visited].filter(
    (n) => names.has(n) && !(here && n === here && state.status !== 'succeeded'),
  );
  if (done.length > 0) lines.push(`  class ${done.map(id).join(',')} done`);
  if (here && state.status !== 'succeeded')
    lines.push(`  class ${id(here)} ${failed ? 'failed' : 'current'}`);
  return lines.join('\n');
}
