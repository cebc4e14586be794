import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(dir, f));
}

/** Every module specifier a file imports, statically, dynamically or by re-export. */
function specifiers(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const found: string[] = [];
  for (const m of text.matchAll(/\b(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) found.push(m[1]!);
  return found;
}

describe('module boundaries', () => {
  it('nothing under lib/ imports functions/: the functions are entry points over lib/app', () => {
    const offending = sources('lib').flatMap((file) =>
      specifiers(file)
        .filter((s) => s.startsWith('.'))
        .map((s) => relative(ROOT, join(ROOT, file, '..', s)))
        .filter((target) => target.startsWith('functions/'))
        .map((target) => `${file} -> ${target}`),
    );
    expect(offending).toEqual([]);
  });

  it('every function is one handler over its composition in lib/app', () => {
    for (const file of sources('functions')) {
      const code = readFileSync(join(ROOT, file), 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '' && !/^\s*(\/\*\*|\*|\/\/)/.test(l));
      expect(code, file).toHaveLength(2);
      expect(code[0], file).toMatch(/^import \{ \w+ \} from '\.\.\/lib\/app\/[\w-]+\.ts';$/);
      expect(code[1], file).toMatch(/^export const handler = \w+\(\);$/);
    }
  });
});
