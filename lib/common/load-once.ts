/**
 * The one memoised initialiser: concurrent callers share one load, so a cold start never builds
 * twice; a failed load is forgotten, so the next request tries again instead of failing for the
 * container's life (a bad config push, a table not reachable yet).
 */
export function loadOnce<T>(load: () => T | Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    pending ??= (async () => load())().catch((err: unknown) => {
      pending = undefined;
      throw err;
    });
    return pending;
  };
}
