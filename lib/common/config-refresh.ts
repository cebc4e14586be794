/**
 * How often a process re-reads the active config version (`npm run config:push`): env
 * SWITCHYARD_CONFIG_REFRESH_SECONDS, default 60 (the promise of issue #12: every function uses a
 * pushed version within 60 s). 0 re-reads on every use (one KV read each time: small deployments
 * and the local stack's end-to-end tests). A value that is not a number of seconds >= 0 is ignored.
 * Its own module, free of the config schema, so the Discord function's 3-second path can use it.
 */
export const CONFIG_REFRESH_ENV = 'SWITCHYARD_CONFIG_REFRESH_SECONDS';
const DEFAULT_SECONDS = 60;

export function configRefreshMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[CONFIG_REFRESH_ENV];
  if (raw === undefined || raw.trim() === '') return DEFAULT_SECONDS * 1000;
  const seconds = Number(raw);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : DEFAULT_SECONDS * 1000;
}
