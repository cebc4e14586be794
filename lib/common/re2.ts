import { RE2 } from 're2-wasm';

/**
 * Regular expressions that configuration supplies (triage `pattern`s, CEL `matches()`) run on
 * RE2 (re2-wasm): matching is linear in the input, so no pattern, however written, can stall a
 * worker on a hostile issue body (`^(a+)+$` over 35 characters backtracks for minutes in V8).
 * RE2 has no backreferences or lookaround; such a pattern is refused where config is loaded,
 * with its file and line, rather than silently run on a backtracking engine.
 */

const cache = new Map<string, RE2>();
const MAX_CACHED = 500;

/** A compiled RE2 (always in unicode mode, which re2-wasm requires). Throws SyntaxError when RE2 cannot run it. */
export function linearRegExp(pattern: string, flags = ''): RE2 {
  const key = `${flags}/${pattern}`;
  let re = cache.get(key);
  if (!re) {
    re = new RE2(pattern, flags.includes('u') ? flags : `${flags}u`);
    if (cache.size >= MAX_CACHED) cache.clear();
    cache.set(key, re);
  }
  return re;
}

/** Why RE2 cannot run `pattern`, or undefined when it can. */
export function linearPatternError(pattern: string, flags = ''): string | undefined {
  try {
    linearRegExp(pattern, flags);
    return undefined;
  } catch (err) {
    return (err instanceof Error ? err.message : String(err)).split('\n', 1)[0];
  }
}

/** `pattern` (found anywhere, like RegExp#test) in `input`, in linear time. */
export function linearTest(pattern: string, input: string, flags = ''): boolean {
  const re = linearRegExp(pattern, flags);
  re.lastIndex = 0;
  return re.test(input);
}
