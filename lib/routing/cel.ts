import { Environment, type ParseResult } from '@marcbachmann/cel-js';
import { ExpressionError } from './errors.ts';

/**
 * Rule conditions are CEL (Common Expression Language), evaluated by @marcbachmann/cel-js: no
 * hand-written parser, no side effects, bounded cost. Variables are untyped (dyn) maps and lists
 * built from the normalised event; see `RoutingContext` in rules.ts for the names.
 */
const env = new Environment({
  unlistedVariablesAreDyn: true,
  limits: {
    maxAstNodes: 2_000,
    maxDepth: 50,
    maxListElements: 200,
    maxMapEntries: 200,
    maxCallArguments: 16,
  },
});

interface Compiled {
  run: ParseResult;
  identifiers: ReadonlySet<string>;
}

const cache = new Map<string, Compiled>();

function identifiersOf(node: unknown, out: Set<string>): void {
  if (Array.isArray(node)) {
    for (const n of node) identifiersOf(n, out);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const n = node as { op?: unknown; args?: unknown };
  if (n.op === 'id' && typeof n.args === 'string') out.add(n.args);
  if (n.args !== undefined) identifiersOf(n.args, out);
}

/** Parse once and keep it (config expressions are few and long-lived). Throws ExpressionError. */
export function compile(expression: string): Compiled {
  let c = cache.get(expression);
  if (c) return c;
  let run: ParseResult;
  try {
    run = env.parse(expression);
  } catch (cause) {
    throw new ExpressionError(firstLine(cause), { cause });
  }
  const identifiers = new Set<string>();
  identifiersOf(run.ast, identifiers);
  c = { run, identifiers };
  if (cache.size > 1_000) cache.clear();
  cache.set(expression, c);
  return c;
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n', 1)[0] ?? 'invalid expression';
}

/** The variables an expression reads (macro loop variables included, which is harmless here). */
export function variablesOf(expression: string): ReadonlySet<string> {
  return compile(expression).identifiers;
}

/**
 * Evaluate a condition to a boolean. Anything else (a string, a type error, a missing key) is an
 * ExpressionError: a condition that cannot be decided must not silently match.
 */
export function evaluateCondition(expression: string, context: Record<string, unknown>): boolean {
  const { run } = compile(expression);
  let value: unknown;
  try {
    value = run(context);
  } catch (cause) {
    throw new ExpressionError(`${expression}: ${firstLine(cause)}`, { cause });
  }
  if (typeof value !== 'boolean')
    throw new ExpressionError(`${expression}: must be true or false, got ${typeof value}`);
  return value;
}
