import { Engine, type EngineOptions, type Reporter } from '../../lib/engine/engine.ts';
import { Workflow, type WorkflowDefinition, WorkflowRegistry } from '../../lib/engine/workflow.ts';
import { InMemoryQueue } from '../../lib/queue/memory.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { createTestStore } from './dynamo.ts';

export interface Harness<S> {
  engine: Engine<S>;
  store: DynamoRunStore;
  queue: InMemoryQueue;
  /** Wait until the queue has nothing left to deliver. */
  settle(): Promise<void>;
}

/** A real engine over DynamoDB Local and the in-process queue, consuming on its own. */
export async function harness<S = Record<string, never>>(
  defs: WorkflowDefinition<S>[],
  opts: Partial<EngineOptions<S>> & { autoConsume?: boolean; reporters?: Reporter[] } = {},
): Promise<Harness<S>> {
  const store = opts.store ? (opts.store as DynamoRunStore) : await createTestStore();
  const queue =
    (opts.queue as InMemoryQueue | undefined) ?? new InMemoryQueue({ timeScale: 0.001, redeliveryMs: 5 });
  const engine = new Engine<S>({
    store,
    queue,
    workflows: new WorkflowRegistry(defs.map((d) => new Workflow(d))),
    services: (opts.services ?? {}) as S,
    ...opts,
  });
  if (opts.autoConsume !== false)
    queue.consume(async (m, delivery) => void (await engine.handle(m, undefined, delivery)));
  return { engine, store, queue, settle: () => queue.idle() };
}
