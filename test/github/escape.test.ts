import { describe, expect, it } from 'vitest';
import { renderStatusComment } from '../../lib/agents/status-comment.ts';
import type { Run } from '../../lib/engine/types.ts';
import { Workflow } from '../../lib/engine/workflow.ts';
import { codeSpan, escapeGitHub, escapeGitHubInline } from '../../lib/github/escape.ts';
import { issuePipeline } from '../../lib/workflows/issue-pipeline.ts';
import { FORBIDDEN_IN_ANY, HOSTILE } from '../support/hostile.ts';

/**
 * Issue #9, defect 11 (GitHub): untrusted text in a status comment cannot mention anyone, add a
 * link, hide text in (or forge) an HTML comment, or add markup.
 */

function assertInert(text: string): void {
  for (const bad of FORBIDDEN_IN_ANY) expect(text).not.toContain(bad);
  expect(text).not.toMatch(/<(img|details|summary)\b/i);
  expect(text).not.toMatch(/(?<!\\)\[click me/); // the user's link
}

const at = '2025-06-01T10:00:00.000Z';

describe('GitHub escaping', () => {
  it('the escaper leaves no HTML, mention or link', () => {
    const out = escapeGitHub(HOSTILE);
    assertInert(out);
    expect(out).not.toContain('<!--');
    expect(escapeGitHubInline(HOSTILE)).not.toContain('\n');
    expect(codeSpan('a`b\nc')).toBe('`a b c`');
  });

  it('a status comment embeds titles, summary, files and reasons inertly; only its own marker is an HTML comment', () => {
    const run = {
      id: 'rmbx3k2a1f00ba4c7d2',
      workflow: 'issue-pipeline',
      status: 'cancelled',
      node: 'execute',
      subject: { repo: 'acme/widgets', issue: 42, key: 'acme/widgets#42' },
      trigger: { source: 'github', actor: 'alice' },
      createdAt: at,
      updatedAt: at,
      version: 7,
      eventSeq: 9,
      reason: `cancelled by bob: ${HOSTILE}`,
      data: {
        plan: {
          version: 'p1',
          summary: HOSTILE,
          tasks: [{ id: 't1', title: HOSTILE, agent: 'coder', files: ['src/`x`.ts'], done: false }],
        },
        routing: {
          outcome: 'forbidden',
          agents: [],
          reason: `policy x: sender ${HOSTILE}`,
          policies: [{ policy: 'x', verdict: 'forbid', why: HOSTILE }],
          guards: [],
        },
      },
    } as unknown as Run;
    const body = renderStatusComment(run, [], new Workflow(issuePipeline) as unknown as Workflow<unknown>);
    const [marker, ...rest] = body.split('\n');
    expect(marker).toBe('<!-- switchyard:run:rmbx3k2a1f00ba4c7d2 -->');
    const after = rest.join('\n');
    expect(after).not.toContain('<!--');
    // The routing block is our own <details>; user text inside it is not.
    assertInert(after.replace('<details><summary>Routing</summary>', '').replace('</details>', ''));
  });
});
