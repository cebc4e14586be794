import { describe, expect, it } from 'vitest';
import { liveButtons, renderLiveMessage, workLinks } from '../../lib/discord/live-message.ts';
import type { Run } from '../../lib/engine/types.ts';

/** The live message shows spend against cap, each task's PR with its checks, and decides budget gates. */

const run = (over: Partial<Run>): Run =>
  ({
    id: 'r1',
    workflow: 'issue-pipeline',
    status: 'running',
    node: 'execute',
    subject: { repo: 'acme/app', issue: 7, key: 'acme/app#7' },
    trigger: { source: 'github' },
    createdAt: '2026-11-30T10:00:00.000Z',
    updatedAt: '2026-11-30T10:00:00.000Z',
    version: 3,
    data: {},
    eventSeq: 0,
    ...over,
  }) as Run;

describe('live message: budgets and PRs', () => {
  it('lists each task PR with its check state, and the spend against cap', () => {
    const r = run({
      data: {
        taskPrs: { t1: { number: 77, url: 'https://github.com/acme/app/pull/77', checks: 'red' } },
        work: { tasks: [{ id: 't1', title: 'Fix', result: { url: 'https://github.com/acme/app/pull/77' } }] },
        budget: { spent: { usd: 1.2, dispatches: 3 }, cap: { usd: 10, dispatches: 12, wallClockHours: 24 } },
      },
    });
    expect(workLinks(r, [])).toEqual(['t1: [PR #77](https://github.com/acme/app/pull/77) checks 🔴 red']);
    const fields = renderLiveMessage(r).embeds[0]?.fields ?? [];
    expect(fields.find((f) => f.name === 'Spend')?.value).toBe(
      '$1.20 of $10 · 3 of 12 dispatches · 24 h wall clock',
    );
  });

  it('offers Approve and Reject at a budget gate', () => {
    const r = run({
      status: 'waiting',
      gate: { node: 'execute', kind: 'budget', binding: 'budget-1', expiresAt: '2026-12-01T00:00:00.000Z' },
    });
    const labels = liveButtons(r)[0]?.components.map((b) => ('label' in b ? b.label : undefined));
    expect(labels).toEqual(expect.arrayContaining(['Approve', 'Reject', 'Cancel']));
  });
});
