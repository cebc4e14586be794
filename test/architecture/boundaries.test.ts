import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * Boundaries the compiler does not check: the engine owns its ports (lib/engine/ports.ts) and
 * never imports a storage adapter; the table's key layout is written once (lib/store/schema.ts).
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const LIB = join(ROOT, 'lib');
/** Where production code lives (tests may spell keys out, to check them). */
const SOURCE_DIRS = ['lib', 'functions', 'scripts', 'bench', 'infra'].map((d) => join(ROOT, d));
const SCHEMA = 'lib/store/schema.ts';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

const rel = (path: string) => relative(ROOT, path);

/**
 * lib/'s import graph: every relative specifier (static, type-only, re-export, dynamic), by the
 * compiler's own scanner, so a comment or a string that looks like an import does not count.
 */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(LIB)) {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    graph.set(
      rel(file),
      importedFiles
        .map((i) => i.fileName)
        .filter((spec) => spec.startsWith('.'))
        .map((spec) => rel(resolve(dirname(file), spec))),
    );
  }
  return graph;
}

/** A path of imports from `from` to any module `to` accepts, or undefined if there is none. */
function pathTo(
  graph: Map<string, string[]>,
  from: string,
  to: (m: string) => boolean,
): string[] | undefined {
  const parent = new Map<string, string>();
  const queue = [from];
  const seen = new Set(queue);
  while (queue.length > 0) {
    const m = queue.shift()!;
    if (m !== from && to(m)) {
      const path = [m];
      for (let p = parent.get(m); p !== undefined; p = parent.get(p)) path.unshift(p);
      return path;
    }
    for (const next of graph.get(m) ?? []) {
      if (seen.has(next)) continue;
      seen.add(next);
      parent.set(next, m);
      queue.push(next);
    }
  }
  return undefined;
}

const inEngine = (m: string) => m.startsWith('lib/engine/');
const inStore = (m: string) => m.startsWith('lib/store/');

describe('lib/engine and lib/store', () => {
  const graph = importGraph();

  it('has no lib/engine module importing lib/store', () => {
    const imports = [...graph].flatMap(([m, deps]) =>
      inEngine(m) ? deps.filter(inStore).map((d) => `${m} -> ${d}`) : [],
    );

    expect(imports).toEqual([]);
  });

  it('has no lib/engine module reaching lib/store through other modules', () => {
    const paths = [...graph.keys()].filter(inEngine).flatMap((m) => {
      const path = pathTo(graph, m, inStore);
      return path ? [path.join(' -> ')] : [];
    });

    expect(paths).toEqual([]);
  });

  it('has no import cycle through both lib/engine and lib/store', () => {
    const cycles = [...graph.keys()].filter(inStore).flatMap((m) => {
      const there = pathTo(graph, m, inEngine);
      const back = there && pathTo(graph, there.at(-1)!, (x) => x === m);
      return there && back ? [[...there, ...back.slice(1)].join(' -> ')] : [];
    });

    expect(cycles).toEqual([]);
  });

  it('walks the real graph (the engine imports its ports, the store adapter imports them too)', () => {
    expect(graph.get('lib/engine/effects.ts')).toContain('lib/engine/ports.ts');
    expect(graph.get('lib/store/dynamodb.ts')).toContain('lib/engine/ports.ts');
  });
});

/** The text of every string and template literal piece in a file, with its line. */
function literals(file: string): Array<{ line: number; text: string }> {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out: Array<{ line: number; text: string }> = [];
  const visit = (node: ts.Node) => {
    if (ts.isStringLiteralLike(node) || ts.isTemplateLiteralToken(node)) {
      out.push({ line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1, text: node.text });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

/** The table's key prefixes (lib/store/schema.ts). */
const KEY_PREFIX = /\b(IDEM|LOCK|KV|RUNS?|EVT|SUBJ|REPO|FX|DATA)#/;

describe('table keys', () => {
  it('are spelled only in lib/store/schema.ts: no key prefix in a string anywhere else', () => {
    const inline = SOURCE_DIRS.flatMap(sourceFiles)
      .filter((f) => rel(f) !== SCHEMA)
      .flatMap((f) =>
        literals(f)
          .filter((l) => KEY_PREFIX.test(l.text))
          .map((l) => `${rel(f)}:${l.line} ${JSON.stringify(l.text)}`),
      );

    expect(inline).toEqual([]);
  });

  it('finds a key prefix in a string, and not in a comment', () => {
    const found = literals(join(ROOT, SCHEMA)).filter((l) => KEY_PREFIX.test(l.text));

    expect(found.map((l) => l.text)).toContain('KV#');
    expect(found.some((l) => l.line < 30)).toBe(false); // the item list at the top is a comment
  });
});
