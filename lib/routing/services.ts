import type { Planner } from '../agents/planner.ts';
import type { EffectFn, EffectOptions } from '../engine/effects.ts';
import type { RunStore } from '../engine/ports.ts';
import type { NewEvent, Run } from '../engine/types.ts';
import type { GitHubClientFactory } from '../github/client.ts';
import type { ConfigProvider } from './repo-config.ts';

/**
 * What the GitHub side of the hub needs inside the worker: the client factory (permission-checked,
 * dry-run aware), the store (KV for guard state, config cache, status comment ids) and config.
 * The worker builds one at start-up and passes it to the pipeline nodes.
 */
export interface GitHubServices {
  github: GitHubClientFactory;
  store: RunStore;
  config: ConfigProvider;
  /** The planner seam: deterministic by default, an LLM planner can take its place. */
  planner?: Planner;
  now?: () => Date;
}

/**
 * The part of a step a GitHub function needs. The engine's StepContext satisfies it: events go
 * through `emit` and are committed with the step's outcome (even when the step fails), and
 * `effect` journals side effects so a re-run step does not repeat them.
 */
export interface StepScope {
  run: Readonly<Run>;
  node: string;
  emit(event: NewEvent): void;
  effect?<T>(name: string, fn: EffectFn<T>, opts?: EffectOptions): Promise<T>;
}

/**
 * A side effect through the step's journal (`ctx.effect`, lib/engine/effects.ts). A scope without
 * one (a unit test calling route or triage directly) just calls `fn`: there is no step to journal in.
 */
export function effectIn<T>(
  scope: Pick<StepScope, 'effect'>,
  name: string,
  fn: EffectFn<T>,
  opts?: EffectOptions,
): Promise<T> {
  return scope.effect ? scope.effect(name, fn, opts) : fn({ interrupted: false });
}
