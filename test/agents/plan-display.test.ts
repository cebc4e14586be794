import { describe, expect, it } from 'vitest';
import { plannerLine } from '../../lib/agents/plan-usage.ts';
import type { Plan } from '../../lib/agents/planner.ts';
import { renderStatusComment } from '../../lib/agents/status-comment.ts';
import { decodeButtonId } from '../../lib/discord/custom-id.ts';
import { renderRunDetail, renderRunMessage } from '../../lib/discord/render.ts';
import type { Run } from '../../lib/engine/types.ts';

/** Where people look: who planned, what it cost, what was corrected, and an edit after approval. */

const plan: Plan = {
  title: 'Refresh the README badges',
  summary: 'Point the README build badge at GitHub Actions.',
  tasks: [{ id: 't1', title: 'Replace the Travis badge', agent: 'coder', files: ['README.md'], done: false }],
  files: ['README.md'],
  version: 'p0123456789ab',
  planner: 'bedrock:us.amazon.nova-pro-v1:0',
  repo: 'acme/app',
  issue: 5,
  usage: { inputTokens: 1402, outputTokens: 160 },
  costUsd: 0.001634,
  adjustments: [
    { kind: 'reassigned', task: 1, detail: 'task 1: agent "@admin <b>" is not allowed; assigned to coder' },
  ],
};

function run(extra: Partial<Run> = {}, data: Record<string, unknown> = {}): Run {
  return {
    id: 'r1',
    workflow: 'issue-pipeline',
    status: 'waiting',
    node: 'approval',
    subject: { repo: 'acme/app', issue: 5, key: 'acme/app#5' },
    trigger: { source: 'github', event: 'issues.labeled' },
    createdAt: '2026-11-30T10:00:00.000Z',
    updatedAt: '2026-11-30T10:00:05.000Z',
    version: 7,
    data: { routing: { outcome: 'run', agents: ['planner', 'coder'], reason: 'rule ready' }, plan, ...data },
    gate: {
      node: 'approval',
      kind: 'approval',
      binding: plan.version,
      expiresAt: '2026-12-03T10:00:00.000Z',
    },
    eventSeq: 10,
    ...extra,
  };
}

describe('plan usage where people look', () => {
  it('one line names the planner, the tokens and the estimated cost', () => {
    expect(plannerLine(plan)).toBe('bedrock:us.amazon.nova-pro-v1:0 · 1402 in / 160 out tokens · ~$0.001634');
    expect(plannerLine({ ...plan, planner: 'deterministic', usage: undefined, costUsd: undefined })).toBe(
      'deterministic',
    );
    expect(
      plannerLine({ ...plan, planner: 'deterministic', fallback: { from: 'bedrock:m', reason: 'refusal' } }),
    ).toContain('fell back from bedrock:m (refusal)');
    expect(plannerLine(undefined)).toBeUndefined();
  });

  it('the status comment shows the planner and its corrections, with mentions and HTML made inert', () => {
    const body = renderStatusComment(run(), [], undefined);
    expect(body).toContain(
      '_Planned by bedrock:us.amazon.nova-pro-v1:0 · 1402 in / 160 out tokens · ~$0.001634_',
    );
    expect(body).toContain('<summary>Planner corrections (1)</summary>');
    expect(body).toContain('agent "@\u200badmin &lt;b>" is not allowed; assigned to coder');
    expect(body).not.toContain('changed after this plan was approved');
  });

  it('the status comment says when the issue changed after approval', () => {
    const body = renderStatusComment(
      run(
        {
          status: 'waiting',
          node: 'execute',
          gate: { node: 'execute', kind: 'agent', expiresAt: '2026-12-01T00:00:00Z' },
        },
        { approval: { by: 'alice' }, editedAfterApproval: { delivery: 'd1', changed: ['title', 'body'] } },
      ),
      [],
      undefined,
    );
    expect(body).toContain("The issue's title and body changed after this plan was approved");
  });

  it('Discord /status has a Planner field, and the run message binds its buttons to the current plan', () => {
    const detail = renderRunDetail(run(), { events: [] });
    const fields = detail.embeds[0]!.fields ?? [];
    expect(fields.find((f) => f.name === 'Planner')?.value).toBe(
      'bedrock:us.amazon.nova-pro-v1:0 · 1402 in / 160 out tokens · ~$0.001634',
    );
    const replanned = run({
      gate: {
        node: 'approval',
        kind: 'approval',
        binding: 'pnewversion01',
        expiresAt: '2026-12-03T10:00:00.000Z',
      },
    });
    const ids = renderRunMessage(replanned)
      .components.flatMap((row) => (row as { components: Array<{ custom_id?: string }> }).components)
      .flatMap((c) => (c.custom_id ? [decodeButtonId(c.custom_id)] : []));
    expect(ids.find((b) => b?.action === 'approve')?.binding).toBe('pnewversion01');
  });
});
