import { AsyncLocalStorage } from 'node:async_hooks';
import { StepTimeoutError } from './errors.ts';

/**
 * The running step's AbortSignal, carried by AsyncLocalStorage through everything the handler
 * awaits. Outbound clients (GitHub, Discord) read it here, so every call a handler makes honours
 * the step's timeout without each call site having to pass the signal along (issue #9, defect 8).
 */
const current = new AsyncLocalStorage<AbortSignal>();

/** Run `fn` with `signal` as the step signal of everything it calls. */
export function withStepSignal<T>(signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  return current.run(signal, fn);
}

/** The signal of the step this code runs in, if any. */
export function stepSignal(): AbortSignal | undefined {
  return current.getStore();
}

/** Throw before starting an outbound call or an effect once the step has timed out. */
export function throwIfStepAborted(what: string): void {
  const signal = current.getStore();
  if (signal?.aborted) {
    throw new StepTimeoutError(`${what} not started: the step timed out`);
  }
}

/** The step signal combined with a per-call timeout (whichever fires first aborts the call). */
export function callSignal(timeoutMs?: number): AbortSignal | undefined {
  const step = current.getStore();
  const timeout = timeoutMs !== undefined ? AbortSignal.timeout(timeoutMs) : undefined;
  if (step && timeout) return AbortSignal.any([step, timeout]);
  return step ?? timeout;
}
