import { type GraphMark, type GraphShape, graphMark } from '../agents/mermaid.ts';
import { type NodeProgress, progressOf } from '../engine/progress.ts';
import { esc, type Html, raw } from './html.ts';

/**
 * The workflow graph as inline SVG, laid out here instead of shipping Mermaid (about 3 MB of
 * script) to the browser: nodes in layers by distance from the start, forward edges left to right,
 * back edges under the nodes, self-loops above. Nodes carry `data-state` (done, current, failed,
 * todo), the same marking the status comment's Mermaid diagram uses.
 */

export type NodeState = GraphMark;

const W = 124;
const H = 40;
const GAP_X = 56;
const GAP_Y = 26;
const PAD = 12;
const LOOP = 36;

function nodeEntries(nodes: GraphShape['nodes']): Array<[string, { title?: string }]> {
  return nodes instanceof Map ? [...nodes.entries()] : Object.entries(nodes);
}

/** The state of every node, marked as the status comment's Mermaid diagram marks it (lib/agents/mermaid.ts). */
export function nodeStates(
  graph: GraphShape,
  progress: ReadonlyMap<string, NodeProgress>,
): Map<string, NodeState> {
  return new Map(nodeEntries(graph.nodes).map(([n]) => [n, graphMark(progressOf(progress, n))]));
}

function layers(graph: GraphShape): Map<string, number> {
  const depth = new Map<string, number>([[graph.start, 0]]);
  const queue = [graph.start];
  while (queue.length > 0) {
    const n = queue.shift()!;
    for (const e of graph.edges) {
      if (e.from !== n || e.to === n || depth.has(e.to)) continue;
      depth.set(e.to, depth.get(n)! + 1);
      queue.push(e.to);
    }
  }
  let last = Math.max(...depth.values());
  for (const [n] of nodeEntries(graph.nodes)) if (!depth.has(n)) depth.set(n, ++last);
  return depth;
}

const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);
const f = (n: number) => Math.round(n * 10) / 10;

export function renderGraphSvg(
  graph: GraphShape,
  progress: ReadonlyMap<string, NodeProgress>,
  title = 'Workflow graph',
): Html {
  const depth = layers(graph);
  const byLayer = new Map<number, string[]>();
  for (const [n, d] of depth) byLayer.set(d, [...(byLayer.get(d) ?? []), n]);
  const rows = Math.max(...[...byLayer.values()].map((l) => l.length));
  const cols = Math.max(...byLayer.keys()) + 1;
  const selfLoops = new Map<string, string[]>();
  for (const e of graph.edges)
    if (e.from === e.to) selfLoops.set(e.from, [...(selfLoops.get(e.from) ?? []), e.on ?? '']);
  const backEdges = graph.edges.filter((e) => e.from !== e.to && depth.get(e.to)! <= depth.get(e.from)!);
  const top = PAD + (selfLoops.size > 0 ? LOOP : 0);
  const bottomRoom = backEdges.length > 0 ? LOOP + 8 * backEdges.length : 0;
  const width = PAD * 2 + cols * W + (cols - 1) * GAP_X;
  const height = top + rows * H + (rows - 1) * GAP_Y + PAD + bottomRoom;

  const pos = new Map<string, { x: number; y: number }>();
  for (const [d, names] of byLayer) {
    const offset = ((rows - names.length) * (H + GAP_Y)) / 2;
    names.forEach((n, i) => {
      pos.set(n, { x: PAD + d * (W + GAP_X), y: top + offset + i * (H + GAP_Y) });
    });
  }

  const titles = new Map(nodeEntries(graph.nodes).map(([n, v]) => [n, v.title ?? n]));
  const states = nodeStates(graph, progress);
  const parts: string[] = [];
  parts.push(
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>',
  );
  const label = (x: number, y: number, text: string) =>
    text
      ? `<text class="edge-label" x="${f(x)}" y="${f(y)}" text-anchor="middle">${esc(clip(text, 28))}</text>`
      : '';

  for (const e of graph.edges) {
    if (e.from === e.to) continue;
    const a = pos.get(e.from)!;
    const b = pos.get(e.to)!;
    if (depth.get(e.to)! > depth.get(e.from)!) {
      const x1 = a.x + W;
      const y1 = a.y + H / 2;
      const x2 = b.x;
      const y2 = b.y + H / 2;
      const mx = (x1 + x2) / 2;
      parts.push(
        `<path class="edge" d="M${f(x1)},${f(y1)} C${f(mx)},${f(y1)} ${f(mx)},${f(y2)} ${f(x2)},${f(y2)}" marker-end="url(#arrow)"/>`,
        label(mx, (y1 + y2) / 2 - 5, e.on ?? ''),
      );
    } else {
      const i = backEdges.indexOf(e);
      const low = Math.max(a.y, b.y) + H + LOOP / 2 + i * 8;
      const x1 = a.x + W / 2;
      const x2 = b.x + W / 2;
      parts.push(
        `<path class="edge back" d="M${f(x1)},${f(a.y + H)} C${f(x1)},${f(low)} ${f(x2)},${f(low)} ${f(x2)},${f(b.y + H)}" marker-end="url(#arrow)"/>`,
        label((x1 + x2) / 2, low - 2, e.on ?? ''),
      );
    }
  }
  for (const [n, labels] of selfLoops) {
    const p = pos.get(n)!;
    const x1 = p.x + W * 0.3;
    const x2 = p.x + W * 0.7;
    parts.push(
      `<path class="edge loop" d="M${f(x1)},${f(p.y)} C${f(x1)},${f(p.y - LOOP + 6)} ${f(x2)},${f(p.y - LOOP + 6)} ${f(x2)},${f(p.y)}" marker-end="url(#arrow)"/>`,
      label(p.x + W / 2, p.y - LOOP + 10, labels.filter(Boolean).join(' · ')),
    );
  }
  for (const [n, p] of pos) {
    const st = states.get(n) ?? 'todo';
    const name = titles.get(n) ?? n;
    parts.push(
      `<g class="node ${st}" data-node="${esc(n)}" data-state="${st}"><title>${esc(`${name}: ${st}`)}</title>` +
        `<rect x="${f(p.x)}" y="${f(p.y)}" width="${W}" height="${H}" rx="7"/>` +
        `<text x="${f(p.x + W / 2)}" y="${f(p.y + H / 2 + 4)}" text-anchor="middle">${esc(clip(name, 16))}</text></g>`,
    );
  }
  return raw(
    `<svg class="graph" role="img" aria-label="${esc(title)}" viewBox="0 0 ${f(width)} ${f(height)}" width="${f(width)}" height="${f(height)}" xmlns="http://www.w3.org/2000/svg">${parts.join('')}</svg>`,
  );
}
