/**
 * What an executor may send to an agent. An agent receives its task and the environment
 * variables its `envAllowlist` names, and nothing else. Secrets never leave:
 *
 * - an allowlisted name that looks like a credential (TOKEN, SECRET, PASSWORD, KEY, ...) is
 *   refused even when allowlisted (a config mistake must not leak a token), and the refusal is
 *   recorded;
 * - every key that looks like a credential is dropped from the task, at any depth;
 * - the value of every credential-looking variable of our own environment is cut out of every
 *   string in the payload (an issue body that quotes a token does not carry it to the agent).
 */

const SECRET_WORD =
  /(^|_)(tokens?|secrets?|passwords?|passwd|pass|credentials?|private|apikey|auth|authorization|cookies?|session|signature|key|pat)(_|$)/;

/** Whether a name (an environment variable, a JSON key) is a credential's: `GITHUB_TOKEN`, `privateKey`, `apiKey`. */
export function isSecretName(name: string): boolean {
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .toLowerCase();
  return SECRET_WORD.test(words);
}

/** Values shorter than this are too common to scrub safely (and too short to be a real secret). */
const MIN_SECRET_LENGTH = 8;

export interface AllowlistResult {
  env: Record<string, string>;
  /** Allowlisted names refused because they look like credentials. */
  refused: string[];
}

/** The allowlisted environment an agent may see: set variables only, credentials refused. */
export function agentEnv(
  agent: { envAllowlist: readonly string[] },
  env: NodeJS.ProcessEnv,
): AllowlistResult {
  const out: Record<string, string> = {};
  const refused: string[] = [];
  for (const name of agent.envAllowlist) {
    if (isSecretName(name)) {
      refused.push(name);
      continue;
    }
    const v = env[name];
    if (v !== undefined) out[name] = v;
  }
  return { env: out, refused };
}

/** Values of our environment's credential-looking variables (what must never appear in a payload). */
export function secretValues(env: NodeJS.ProcessEnv): string[] {
  const values = new Set<string>();
  for (const [name, v] of Object.entries(env)) {
    if (v !== undefined && v.length >= MIN_SECRET_LENGTH && isSecretName(name)) values.add(v);
  }
  // Longest first, so a secret that contains another is cut whole.
  return [...values].sort((a, b) => b.length - a.length);
}

function scrubString(s: string, secrets: readonly string[]): string {
  let out = s;
  for (const secret of secrets) if (out.includes(secret)) out = out.split(secret).join('[redacted]');
  return out;
}

/** Drop credential-looking keys and cut secret values out of strings, at any depth. */
export function scrub(value: unknown, secrets: readonly string[], depth = 0): unknown {
  if (typeof value === 'string') return scrubString(value, secrets);
  if (depth > 10 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => scrub(v, secrets, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (isSecretName(k)) continue;
    out[k] = scrub(v, secrets, depth + 1);
  }
  return out;
}

/**
 * The payload an executor sends: the task (scrubbed) and the allowlisted environment. Anything
 * the executor adds afterwards (a callback URL and its one-time signing secret) is minted for
 * this task and is not one of ours.
 */
export function agentPayload(
  agent: { name: string; envAllowlist: readonly string[] },
  task: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
): { payload: Record<string, unknown>; refused: string[] } {
  const secrets = secretValues(env);
  const allowed = agentEnv(agent, env);
  // The allowlisted values are scrubbed too: one may embed a credential of ours.
  const payload = scrub({ ...task, env: allowed.env }, secrets) as Record<string, unknown>;
  return { payload, refused: allowed.refused };
}
