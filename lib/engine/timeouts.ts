import { ConfigurationError } from '../common/errors.ts';
import type { Workflow } from './workflow.ts';

/**
 * A step must be able to time out, and its lease grace pass, while the worker function still runs:
 * otherwise Lambda kills the worker first, the step never commits its timeout, and the run only
 * moves on when the lease lapses (issue #9, defect 8). The worker's function timeout lives here so
 * the CDK stack (infra/functions.ts), the config schema and the worker's registry share one number.
 */
export const WORKER_FUNCTION_TIMEOUT_MS = 120_000;
/** The engine's default lease grace (EngineOptions.leaseGraceMs). */
export const LEASE_GRACE_MS = 5_000;
/** The longest node timeout allowed: timeout + grace stays below the function's timeout. */
export const MAX_NODE_TIMEOUT_MS = WORKER_FUNCTION_TIMEOUT_MS - LEASE_GRACE_MS - 1_000;

/** Every node whose timeout plus grace does not fit in the worker function's timeout. */
export function nodeTimeoutProblems(
  workflows: Iterable<Workflow<unknown>>,
  functionTimeoutMs: number = WORKER_FUNCTION_TIMEOUT_MS,
  graceMs: number = LEASE_GRACE_MS,
): string[] {
  const problems: string[] = [];
  for (const wf of workflows) {
    for (const node of wf.nodes.values()) {
      if (node.timeoutMs + graceMs >= functionTimeoutMs) {
        problems.push(
          `${wf.name}.${node.name}: timeout ${node.timeoutMs} ms + grace ${graceMs} ms is not below the worker's ${functionTimeoutMs} ms`,
        );
      }
    }
  }
  return problems;
}

/** Throw, naming every offending node, when a node's timeout does not fit (config load, synth). */
export function assertNodeTimeouts(
  workflows: Iterable<Workflow<unknown>>,
  functionTimeoutMs?: number,
  graceMs?: number,
): void {
  const problems = nodeTimeoutProblems(workflows, functionTimeoutMs, graceMs);
  if (problems.length > 0)
    throw new ConfigurationError(`node timeouts do not fit the worker function:\n${problems.join('\n')}`);
}
