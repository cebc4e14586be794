/**
 * Limits on what an agent's answer may carry into a run (issue #9, defects 3 and 6). A result is
 * merged into run data, which is rewritten on every transition and stored in DynamoDB (400 KB an
 * item, 32 levels of nesting): a payload is checked in full, size, depth and shape, BEFORE the
 * callback token is spent, so a bad one gets a 400 and the agent may still send a good one.
 */

export const RESULT_LIMITS = {
  /** `conclusion` / `status`: a word such as success, failure, cancelled, timed_out. */
  conclusionChars: 64,
  /** `output` is kept as JSON up to this size (larger is kept as truncated text). */
  outputBytes: 8_000,
  /** `output` nesting, far below DynamoDB's 32 levels (run data adds a few of its own). */
  outputDepth: 8,
  /** `consult`: a small request to the hub. */
  consultBytes: 4_000,
  consultDepth: 1,
  textChars: 2_000,
} as const;

export type PayloadCheck = { ok: true } | { ok: false; error: string };

/**
 * Nesting depth of a JSON value, counted without recursion (so a hostile payload cannot overflow
 * the stack), stopping as soon as it passes `max`.
 */
export function depthExceeds(value: unknown, max: number): boolean {
  const stack: Array<{ v: unknown; d: number }> = [{ v: value, d: 0 }];
  while (stack.length > 0) {
    const { v, d } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d + 1 > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push({ v: child, d: d + 1 });
  }
  return false;
}

const CONCLUSION = /^[a-z_]{1,64}$/i;
const CONSULT_KEYS = new Set(['type', 'to', 'agent', 'question']);

/** Check an agent's JSON answer in full; the first problem found is the error. */
export function checkResultBody(body: Record<string, unknown>): PayloadCheck {
  const bad = (error: string): PayloadCheck => ({ ok: false, error });
  for (const key of ['conclusion', 'status'] as const) {
    const v = body[key];
    if (v === undefined) continue;
    if (typeof v !== 'string' || !CONCLUSION.test(v))
      return bad(`${key} must be a word of at most ${RESULT_LIMITS.conclusionChars} letters`);
  }
  if (body.ok !== undefined && typeof body.ok !== 'boolean') return bad('ok must be a boolean');
  for (const key of ['summary', 'url', 'escalate'] as const) {
    if (body[key] !== undefined && typeof body[key] !== 'string') return bad(`${key} must be a string`);
  }
  if (body.output !== undefined && depthExceeds(body.output, RESULT_LIMITS.outputDepth))
    return bad(`output is nested deeper than ${RESULT_LIMITS.outputDepth} levels`);
  if (body.consult !== undefined) {
    const c = body.consult;
    if (typeof c !== 'object' || c === null || Array.isArray(c)) return bad('consult must be an object');
    for (const [k, v] of Object.entries(c)) {
      if (!CONSULT_KEYS.has(k)) return bad(`consult.${k} is not a known field (type, to, agent, question)`);
      if (typeof v !== 'string') return bad(`consult.${k} must be a string`);
    }
    if (Buffer.byteLength(JSON.stringify(c), 'utf8') > RESULT_LIMITS.consultBytes)
      return bad(`consult is larger than ${RESULT_LIMITS.consultBytes} bytes`);
  }
  return { ok: true };
}
