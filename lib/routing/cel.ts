import { Environment, type ParseResult } from '@marcbachmann/cel-js';
import { linearPatternError, linearTest } from '../common/re2.ts';
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

/**
 * cel-js implements `string.matches(string)` with a backtracking `RegExp`, and its registry
 * refuses a second overload with the same signature. So every `matches` call is pointed, right
 * after parsing and before the first (lazy) type check, at this linear-time RE2 version; the
 * pattern must be a string literal (config chooses patterns, event data never does), and it is
 * checked against RE2 when the expression is compiled, i.e. at config load.
 */
const LINEAR_MATCHES = 'matchesLinear';
env.registerFunction(`string.${LINEAR_MATCHES}(string): bool`, (s: string, pattern: string) =>
  linearTest(pattern, s),
);

/** Macros that loop over a list; nesting one in another multiplies the work by a list's length. */
const COMPREHENSIONS = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);
/**
 * The evaluation budget: with RE2, at most 2,000 AST nodes and no nested comprehension, one
 * evaluation costs at most (nodes × the longest list) steps over inputs that celContext bounds,
 * so a condition cannot run long however it is written. (cel-js evaluates synchronously and
 * cannot be interrupted, so the budget is enforced on the expression's shape, at config load.)
 */
const MAX_COMPREHENSION_DEPTH = 1;

interface AstNode {
  op?: unknown;
  args?: unknown;
}

/** Point `matches` at RE2 and enforce the budget; throws ExpressionError. */
function harden(node: unknown, depth = 0): void {
  if (Array.isArray(node)) {
    for (const n of node) harden(n, depth);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const n = node as AstNode;
  if (!Array.isArray(n.args)) return;
  let inner = depth;
  if (n.op === 'rcall' && typeof n.args[0] === 'string') {
    const method = n.args[0];
    const params = n.args[2];
    if (COMPREHENSIONS.has(method)) {
      inner = depth + 1;
      if (inner > MAX_COMPREHENSION_DEPTH)
        throw new ExpressionError(`${method}(): comprehensions may not be nested (evaluation budget)`);
    }
    if (method === 'matches' && Array.isArray(params) && params.length === 1) {
      const pattern = params[0] as AstNode;
      if (pattern.op !== 'value' || typeof pattern.args !== 'string')
        throw new ExpressionError('matches() takes a string literal pattern');
      const why = linearPatternError(pattern.args);
      if (why) throw new ExpressionError(`matches('${pattern.args}'): not a valid RE2 pattern: ${why}`);
      n.args[0] = LINEAR_MATCHES;
    }
  }
  for (const a of n.args) harden(a, inner);
}

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
  harden(run.ast);
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
