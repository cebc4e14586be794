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

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return testFiles(path);
    return e.name.endsWith('.test.ts') ? [relative(ROOT, path)] : [];
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
  ['verifies OIDC tokens (a JWKS cache per issuer URL)', /FakeOidcIssuer/],
  ['listens on the process', /process\.(on|once)\(/],
];

describe('test isolation (vitest.config.ts ISOLATED)', () => {
  const files = testFiles(join(ROOT, 'test'));

  it('lists every file whose effects would reach the files after it', () => {
    const missing = files.flatMap((file) => {
      // This file names the patterns it looks for.
      if (ISOLATED.includes(file) || file === relative(ROOT, HERE)) return [];
      const text = readFileSync(join(ROOT, file), 'utf8');
      return NEEDS_ISOLATION.filter(([, re]) => re.test(text)).map(([why]) => `${file}: ${why}`);
    });
    expect(missing).toEqual([]);
  });

  it('lists only files that exist', () => {
    expect(ISOLATED.filter((f) => !existsSync(join(ROOT, f)))).toEqual([]);
  });
});
