import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { evaluateCondition } from '../../lib/routing/cel.ts';
import { parseConfigSource } from '../../lib/routing/config.ts';
import { ConfigError } from '../../lib/routing/errors.ts';

/**
 * Issue #9, defect 4: patterns from config (triage `pattern`, CEL `matches()`) run on RE2, which
 * is linear in the input, so a catastrophic pattern over a hostile issue body cannot stall a
 * worker. Before, `^(a+)+$` over 35 characters backtracked for minutes.
 *
 * The hostile cases run in a child process with a generous cap: with a backtracking engine the
 * child is still busy when the cap ends it (the test fails); with RE2 it answers at once. The cap
 * is a ceiling on a hang, not a timing assertion.
 */

const run = promisify(execFile);
const CAP_MS = 60_000;

async function inChild(script: string): Promise<string> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    timeout: CAP_MS,
    killSignal: 'SIGKILL',
    cwd: process.cwd(),
  });
  return stdout.trim();
}

const EVIL = '^(a+)+$';
const BODY = `${'a'.repeat(35)}!`;

describe('patterns from config run in linear time', () => {
  it('a triage pattern ^(a+)+$ over a 35-character body answers', { timeout: CAP_MS + 10_000 }, async () => {
    const out = await inChild(`
      import { assessIssue } from './lib/agents/triage.ts';
      import { parseConfig } from './lib/routing/config.ts';
      const cfg = parseConfig(${JSON.stringify(
        `version: 1\ntriage:\n  required:\n    - { name: evil, pattern: '${EVIL}', ask: 'x' }\n`,
      )});
      const ev = { name: 'issues', delivery: 'd', subject: { kind: 'issue', number: 1, title: 't', body: ${JSON.stringify(BODY)}, labels: [] } };
      const a = assessIssue(cfg.triage, ev);
      console.log(JSON.stringify(a.missing.map((m) => m.name)));
    `);
    expect(JSON.parse(out.split('\n').pop()!)).toContain('evil');
  });

  it('a CEL matches() with ^(a+)+$ over a 35-character body answers', {
    timeout: CAP_MS + 10_000,
  }, async () => {
    const out = await inChild(`
      import { evaluateCondition } from './lib/routing/cel.ts';
      console.log(evaluateCondition(${JSON.stringify(`issue.body.matches('${EVIL}')`)}, { issue: { body: ${JSON.stringify(BODY)} } }));
    `);
    expect(out.split('\n').pop()).toBe('false');
  });

  it('matches() keeps its meaning for ordinary patterns, inside macros too', () => {
    expect(evaluateCondition(`issue.title.matches('^\\\\[bug\\\\]')`, { issue: { title: '[bug] x' } })).toBe(
      true,
    );
    expect(evaluateCondition(`labels.exists(l, l.matches('^area/'))`, { labels: ['x', 'area/ui'] })).toBe(
      true,
    );
    expect(evaluateCondition(`labels.exists(l, l.matches('^area/'))`, { labels: ['x'] })).toBe(false);
  });

  it('a pattern RE2 cannot run is refused at config load, with its file and line', () => {
    const backref = `version: 1\ntriage:\n  required:\n    - name: twice\n      pattern: '(a)\\1'\n      ask: 'x'\n`;
    expect(() => parseConfigSource(backref, 'acme/app:.github/switchyard.yml')).toThrow(ConfigError);
    try {
      parseConfigSource(backref, 'acme/app:.github/switchyard.yml');
    } catch (err) {
      expect((err as Error).message).toMatch(/switchyard\.yml:5:.*pattern/);
    }
    const lookbehind = `version: 1\nrouting:\n  rules:\n    - name: r\n      event: issues\n      when: "issue.body.matches('(?<=x)a')"\n`;
    expect(() => parseConfigSource(lookbehind, 'central.yml')).toThrow(/central\.yml:6:.*invalid CEL/);
  });

  it('matches() with a pattern computed from event data is refused (config chooses patterns, not users)', () => {
    expect(() =>
      evaluateCondition('issue.title.matches(issue.body)', { issue: { title: 'a', body: '(' } }),
    ).toThrow(/literal/);
  });
});
