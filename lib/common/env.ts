import { ConfigurationError } from './errors.ts';
/** Read a required environment variable at module load; fail with its name so a bad deploy is obvious. */
export function requireEnv(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const value = env[name];
  if (value === undefined || value === '') {
    throw new ConfigurationError(`missing required environment variable ${name}`);
  }
  return value;
}
