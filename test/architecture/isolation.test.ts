import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ISOLATED } from '../../vitest.config.ts';

/**
 * Most test files share their worker's modules (vitest.config.ts): a file that would leak into the
 * files after it, or that needs fresh modules, must be listed in ISOLATED. What such a file does
 * is visible in its text, so a new one cannot be added unlisted by mistake.
 */

const HERE = fileURLToPath(import.meta.url);
const ROOT = resolve(dirname(HERE), '../..');

/** The TypeScript files under `dir` that `keep` keeps, relative to the root. */
function filesUnder(dir: string, keep: (name: string) => boolean): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return filesUnder(path, keep);
    return keep(e.name) ? [relative(ROOT, path)] : [];
  });
}

/** What makes a file's effects outlive it, or its modules need to be its own. */
const NEEDS_ISOLATION: Array<[string, RegExp]> = [
  ['mocks a module', /\bvi\.(do)?mock\(/],
  [
    'sets the environment',
    /process\.env(\.\w+|\[[^\]]+\])\s*(=(?!=)|\?\?=)|delete process\.env|Object\.assign\(process\.env|vi\.stubEnv/,
  ],
  ['stubs a global or the clock', /vi\.stubGlobal|useFakeTimers/],
  ['spies on the shared logger', /vi\.spyOn\(logger\b/],
  ['listens on the process', /process\.(on|once)\(/],
];

describe('test isolation (vitest.config.ts ISOLATED)', () => {
  const files = filesUnder(join(ROOT, 'test'), (name) => name.endsWith('.test.ts'));

  it('lists every file whose effects would reach the files after it', () => {
    const missing = files.flatMap((file) => {
      // This file names the patterns it looks for.
      if (ISOLATED.includes(file) || file === relative(ROOT, HERE)) return [];
      const text = readFileSync(join(ROOT, file), 'utf8');
      return NEEDS_ISOLATION.filter(([, re]) => re.test(text)).map(([why]) => `${file}: ${why}`);
    });
    expect(missing).toEqual([]);
  });

  it('has no helper that does what only an isolated file may: it would leak through every file that uses it', () => {
    // The global setup runs in vitest's main process, once, before any file.
    const helpers = filesUnder(
      join(ROOT, 'test'),
      (name) => name.endsWith('.ts') && !name.endsWith('.test.ts'),
    ).filter((file) => !file.endsWith('global-setup.ts') && !file.endsWith('.spec.ts'));
    expect(helpers.length).toBeGreaterThan(10);
    const leaking = helpers.flatMap((file) => {
      const text = readFileSync(join(ROOT, file), 'utf8');
      return NEEDS_ISOLATION.filter(([, re]) => re.test(text)).map(([why]) => `${file}: ${why}`);
    });
    expect(leaking).toEqual([]);
  });

  it('lists only files that exist', () => {
    expect(ISOLATED.filter((f) => !existsSync(join(ROOT, f)))).toEqual([]);
  });
});
