import { InternalError } from '../common/errors.ts';
import type { NodeDefinition, NodeHandler, WorkflowDefinition } from '../engine/workflow.ts';

/**
 * A workflow's graph, declared over the type of its nodes module (`import type * as nodes from
 * './issue-pipeline-nodes.ts'`): every node of the graph is an export of that module and every
 * export is a node, checked by the compiler. Go-to-definition on a node's key in the graph opens its
 * handler. The graph holds no runtime reference to the module, so the functions that only start and
 * signal runs (Discord, GitHub, callbacks) bundle the graph without the nodes' code; the worker binds
 * the handlers with `lazyNodes` (lib/workflows/nodes.ts), which loads the module when a node first runs.
 */
export type GraphNode = Omit<NodeDefinition<unknown>, 'handler'>;

/** The handlers a nodes module exports, by node name (any services: tests bind stubs). */
// biome-ignore lint/suspicious/noExplicitAny: a handler's services are its module's business.
export type NodeHandlers<M> = { [K in keyof M]: NodeHandler<any> };

export interface GraphDefinition<M> extends Omit<WorkflowDefinition<unknown>, 'nodes'> {
  nodes: { [K in keyof M]: GraphNode };
}

/** A graph whose handlers are not bound in this process: running a node is a bug, and says so. */
export type Graph<M> = WorkflowDefinition<unknown> & {
  nodes: { [K in keyof M]: NodeDefinition<unknown> };
  /** Keeps M in the type, so `lazyNodes` and `withNodes` check the module against the graph. */
  readonly __nodes?: M;
};

export function graph<M>(def: GraphDefinition<M>): Graph<M> {
  return withHandlers(def as GraphDefinition<Record<string, unknown>>, (node) => async () => {
    throw new InternalError(`no implementation of ${def.name}.${node} in this process`);
  }) as Graph<M>;
}

/** The graph with the handlers given (tests bind stubs this way). */
export function withNodes<M>(g: Graph<M>, handlers: NodeHandlers<M>): WorkflowDefinition<unknown> {
  const by = handlers as Record<string, NodeHandler<unknown>>;
  return withHandlers(g, (node) => {
    const handler = by[node];
    if (!handler) throw new InternalError(`no handler for ${g.name}.${node}`);
    return handler;
  });
}

/**
 * The graph with its handlers imported from `load()` when one of its nodes first runs. The import
 * is memoised; a failed import is not (the step fails and its retry imports again), as the Discord
 * function does with its services.
 */
export function lazyNodes<M extends NodeHandlers<M>>(
  g: Graph<M>,
  load: () => Promise<M>,
): WorkflowDefinition<unknown> {
  let loading: Promise<M> | undefined;
  const nodes = () =>
    (loading ??= load().catch((err: unknown) => {
      loading = undefined;
      throw err;
    }));
  return withHandlers(g, (node) => async (ctx) => {
    const handler = (await nodes())[node as keyof M] as NodeHandler<unknown> | undefined;
    if (!handler) throw new InternalError(`the nodes module of ${g.name} has no ${node}`);
    return handler(ctx);
  });
}

function withHandlers<M>(
  def: Omit<WorkflowDefinition<unknown>, 'nodes'> & { nodes: { [K in keyof M]: GraphNode } },
  handlerFor: (node: string) => NodeHandler<unknown>,
): WorkflowDefinition<unknown> {
  const nodes: Record<string, NodeDefinition<unknown>> = {};
  for (const [name, node] of Object.entries(def.nodes as Record<string, GraphNode>))
    nodes[name] = { ...node, handler: handlerFor(name) };
  return { ...def, nodes };
}
