import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where the local stack keeps its data and tells the CLI how to reach it. */
export const LOCAL_DIR = process.env.SWITCHYARD_DATA_DIR ?? '.switchyard';
export const LOCAL_STATE_FILE = join(LOCAL_DIR, 'local.json');

export interface LocalState {
  pid: number;
  endpoint: string;
  tableName: string;
  url: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The environment the CLI should use: explicit DYNAMODB_ENDPOINT / TABLE_NAME win; otherwise a
 * running local stack (its state file); otherwise AWS (default credentials, TABLE_NAME required).
 */
export function resolveStoreEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (env.DYNAMODB_ENDPOINT) return { ...env, TABLE_NAME: env.TABLE_NAME ?? 'switchyard-local' };
  if (existsSync(LOCAL_STATE_FILE)) {
    const state = JSON.parse(readFileSync(LOCAL_STATE_FILE, 'utf8')) as LocalState;
    if (alive(state.pid)) {
      return { ...env, DYNAMODB_ENDPOINT: state.endpoint, TABLE_NAME: env.TABLE_NAME ?? state.tableName };
    }
  }
  return env;
}
