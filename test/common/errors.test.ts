import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ConfigurationError,
  ContentionError,
  InternalError,
  isRetryable,
  NonRetryableError,
  SwitchyardError,
} from '../../lib/common/errors.ts';

/** Issue 13: one error root, an options object, and one test of "may a retry help?". */

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

const ERROR_MODULES = sources('lib').filter((p) => /errors\.ts$/.test(p));

describe('the error root', () => {
  it('every error class the error modules export extends SwitchyardError', async () => {
    const classes: Array<[string, new (...args: never[]) => Error]> = [];
    for (const file of ERROR_MODULES) {
      const mod = (await import(`../../${file}`)) as Record<string, unknown>;
      for (const [name, value] of Object.entries(mod))
        if (typeof value === 'function' && value.prototype instanceof Error)
          classes.push([`${file}:${name}`, value as new (...args: never[]) => Error]);
    }
    expect(classes.length).toBeGreaterThan(30);
    const outside = classes.filter(
      ([, c]) => c !== SwitchyardError && !(c.prototype instanceof SwitchyardError),
    );
    expect(outside.map(([n]) => n)).toEqual([]);
  });

  it('lib and functions throw no bare Error and define no other root', () => {
    const offenders = [...sources('lib'), ...sources('functions')].flatMap((file) => {
      const text = readFileSync(file, 'utf8');
      return [
        ...(/\bnew Error\(/.test(text) ? [`${file}: new Error(`] : []),
        ...(/class \w+ extends Error\b/.test(text) && !file.endsWith('common/errors.ts')
          ? [`${file}: extends Error`]
          : []),
      ];
    });
    expect(offenders).toEqual([]);
  });

  it('takes an options object with the run, the node and the cause', () => {
    const cause = new Error('socket hang up');
    const err = new ContentionError('busy', { runId: 'r1', node: 'plan', cause });
    expect(err).toMatchObject({ name: 'ContentionError', runId: 'r1', node: 'plan', retryable: true });
    expect(err.cause).toBe(cause);
    expect(new SwitchyardError('x')).toMatchObject({ runId: undefined, node: undefined });
    expect('cause' in new SwitchyardError('x')).toBe(false);
  });

  it('isRetryable reads the type for our errors and treats anything else as transient', () => {
    expect(isRetryable(new ContentionError('busy'))).toBe(true);
    expect(isRetryable(new InternalError('broken invariant'))).toBe(true);
    expect(isRetryable(new NonRetryableError('no'))).toBe(false);
    expect(isRetryable(new ConfigurationError('missing TABLE_NAME'))).toBe(false);
    expect(isRetryable(new TypeError('undefined is not a function'))).toBe(true);
    expect(isRetryable('a string')).toBe(true);
    // A workflow author's handler outside lib/ may mark its own error.
    expect(isRetryable(Object.assign(new Error('x'), { retryable: false }))).toBe(false);
    expect(isRetryable({ retryable: false })).toBe(true);
  });
});
