/**
 * Issue #9, defect 11 (the agents' own GitHub texts): the triage "ask" comment, the CI-triage
 * issue body and the coverage comment copy text they do not control (a repository's config,
 * workflow and job names, log lines, branch names, check names and URLs). None of it may mention
 * anyone, add a link, or hide text in (or forge) an HTML comment or other HTML.
 */
import { describe, expect, it } from 'vitest';
import { renderIssue, renderSection } from '../../lib/agents/ci-triage.ts';
import { renderCoverage } from '../../lib/agents/coverage.ts';
import { renderAsk, TRIAGE_MARKER } from '../../lib/agents/triage.ts';
import { linkTarget } from '../../lib/github/escape.ts';
import type { TriageConfig } from '../../lib/routing/config.ts';
import { FORBIDDEN_IN_ANY, HOSTILE } from '../support/hostile.ts';

/**
 * What GitHub renders as markup: `text` without fenced blocks, code spans and the first line's own
 * marker (in those nothing renders: no mention, link or HTML).
 */
function rendered(text: string): string {
  return text
    .split(/^```$/m)
    .filter((_, i) => i % 2 === 0)
    .join('\n')
    .replace(/^<!--.*-->\n/, '')
    .replace(/(?<!\\)`[^`\n]*`/g, '');
}

function assertInert(text: string, ownMarker: string): void {
  const markup = rendered(text);
  for (const bad of FORBIDDEN_IN_ANY) expect(markup).not.toContain(bad);
  expect(markup).not.toMatch(/<(img|details|summary)\b/i);
  expect(markup).not.toMatch(/(?<!\\)\[click me/);
  // The only HTML comment is our own marker, whole, on the first line.
  expect(text.split('\n')[0]).toBe(ownMarker);
  expect(markup).not.toContain('<!--');
  expect(markup).not.toContain('-->');
}

const EVIL_URL = 'https://ci.example/x) [click me](https://evil.example/y';

describe('agent texts on GitHub', () => {
  it('the triage ask escapes the heading, names and asks a repository config supplies', () => {
    const config = { askHeading: HOSTILE } as TriageConfig; // the only field the ask shows
    const body = renderAsk(config, [{ name: HOSTILE, ask: `Please add ${HOSTILE}` }]);

    assertInert(body, TRIAGE_MARKER);
    expect(body).toContain('Please add Fix');
  });

  it('the CI-triage issue escapes workflow and job names, keeps log lines fenced and links only to https', () => {
    const branch = 'feat/x--> <img src=x onerror=alert(1)> @octocat `tick`';
    const section = renderSection(
      {
        repo: 'acme/widgets',
        branch,
        mode: 'failed',
        workflow: { runId: 1, name: HOSTILE, url: EVIL_URL, sha: 'abc`@octocat', conclusion: HOSTILE },
      },
      [
        {
          id: 2,
          name: HOSTILE,
          conclusion: 'failure',
          url: 'javascript:alert(1)',
          errors: [HOSTILE.replace(/\n/g, ' '), '```', '@everyone [click me](https://evil.example/z)'],
        },
      ],
      '2025-06-01T10:00:00.000Z',
    );
    const body = renderIssue(branch, { [HOSTILE]: { name: HOSTILE, markdown: section, at: 'now' } });
    const marker = body.split('\n')[0]!;

    expect(marker).toMatch(/^<!-- switchyard:ci-failure:[^>]* -->$/);
    assertInert(body, marker);
    expect(body).not.toContain('javascript:');
    expect(body).toContain('([run](https://ci.example/x%29%20%5Bclick%20me%5D%28https://evil.example/y))');
    // The log lines are inside one fence each job, and a line of backticks cannot close it.
    expect(body.match(/^```$/gm)).toHaveLength(2);
  });

  it('the coverage comment escapes the check name, branch and sha, and drops a non-https link', () => {
    const input = {
      repo: 'acme/widgets',
      check: HOSTILE,
      sha: '`@octocat <!--',
      pct: 80,
      pr: 4,
      base: 'main` @octocat [click me](https://evil.example/b)',
      url: 'javascript:alert(1)',
    };

    for (const body of [
      renderCoverage(input, undefined),
      renderCoverage({ ...input, url: EVIL_URL }, { pct: 70, sha: 'x', at: 'y' }),
    ]) {
      assertInert(body, '<!-- switchyard:coverage -->');
      expect(body).not.toContain('javascript:');
    }
  });

  it.each([
    ['javascript:alert(1)', undefined],
    ['http://example.test/a', undefined],
    ['https://user:pw@example.test/', undefined],
    ['not a url', undefined],
    ['https://github.com/acme/w/actions/runs/1', 'https://github.com/acme/w/actions/runs/1'],
    ['https://x.test/a b(c)', 'https://x.test/a%20b%28c%29'],
  ])('links %s as %s', (url, target) => {
    expect(linkTarget(url)).toBe(target);
  });
});
