import type { APIButtonComponentWithCustomId } from 'discord-api-types/v10';
import { describe, expect, it } from 'vitest';
import {
  decodeButtonId,
  encodeButtonId,
  hashBinding,
  resolveShownBinding,
} from '../../lib/discord/custom-id.ts';
import {
  checklist,
  renderRunDetail,
  renderRunList,
  renderRunMessage,
  stepStates,
} from '../../lib/discord/render.ts';
import type { EventType } from '../../lib/engine/events.ts';
import type { Run, RunEvent } from '../../lib/engine/types.ts';
import { Workflow } from '../../lib/engine/workflow.ts';
import { issuePipeline } from '../../lib/workflows/issue-pipeline.ts';

const wf = new Workflow(issuePipeline);
const at = '2025-06-01T10:00:00.000Z';

function run(over: Partial<Run> = {}): Run {
  return {
    id: 'rmbx3k2a1f00ba4c7d2',
    workflow: 'issue-pipeline',
    status: 'running',
    node: 'plan',
    subject: { repo: 'acme/widgets', issue: 42, key: 'acme/widgets#42' },
    trigger: { source: 'discord', actor: '200000000000000001', interactionId: '1', channelId: '2' },
    createdAt: at,
    updatedAt: at,
    version: 7,
    data: {},
    eventSeq: 9,
    reportedVersion: 6,
    ...over,
  } as Run;
}

const ev = (type: EventType, node: string): RunEvent => ({ seq: 0, at, type, node, detail: {} });
const done = (...nodes: string[]) => nodes.map((n) => ev('step.succeeded', n));

type Button = APIButtonComponentWithCustomId & { url?: string };
const buttons = (r: Run): Button[] =>
  renderRunMessage(r).components.flatMap((row) =>
    'components' in row ? (row.components as unknown as Button[]) : [],
  );

describe('the run checklist', () => {
  it.each([
    [
      'running at plan',
      run(),
      done('intake', 'route'),
      ['done', 'done', 'current', 'pending', 'pending', 'pending'],
    ],
    [
      'waiting at approval',
      run({ status: 'waiting', node: 'approval' }),
      [...done('intake', 'route', 'plan', 'approval'), ev('gate.opened', 'approval')],
      ['done', 'done', 'done', 'waiting', 'pending', 'pending'],
    ],
    [
      'failed at execute',
      run({ status: 'failed', node: 'execute' }),
      [...done('intake', 'route', 'plan'), ev('node.completed', 'approval'), ev('step.failed', 'execute')],
      ['done', 'done', 'done', 'done', 'failed', 'pending'],
    ],
    [
      'succeeded',
      run({ status: 'succeeded', node: 'report' }),
      done('intake', 'route', 'plan', 'approval', 'execute', 'report'),
      ['done', 'done', 'done', 'done', 'done', 'done'],
    ],
    [
      'cancelled at route',
      run({ status: 'cancelled', node: 'route' }),
      done('intake'),
      ['done', 'cancelled', 'pending', 'pending', 'pending', 'pending'],
    ],
  ] as const)('marks every step when %s', (_name, r, events, states) => {
    expect(stepStates(r, wf, events).map((s) => s.state)).toEqual(states);
  });

  it('uses the icons people read', () => {
    const text = checklist(run({ status: 'waiting', node: 'approval' }), wf, done('intake', 'route', 'plan'));
    expect(text.split('\n')).toEqual([
      '✅ Intake',
      '✅ Route',
      '✅ Plan',
      '⏸️ **Approval**',
      '⬜ Execute',
      '⬜ Report',
    ]);
  });
});

describe('the run message', () => {
  it('offers Approve, Reject and Cancel at an approval gate, bound to the plan shown', () => {
    const r = run({
      status: 'waiting',
      node: 'approval',
      gate: { node: 'approval', kind: 'approval', expiresAt: '2025-06-02T10:00:00.000Z', binding: 'plan-v3' },
    });
    const ids = buttons(r).map((b) => b.custom_id ?? b.url);
    expect(ids).toEqual([
      `sy:approve:${r.id}:plan-v3`,
      `sy:reject:${r.id}:plan-v3`,
      `sy:cancel:${r.id}`,
      'https://github.com/acme/widgets/issues/42',
    ]);
  });

  it('offers only Cancel while running, and nothing to press once finished', () => {
    expect(buttons(run()).map((b) => b.label)).toEqual(['Cancel', 'Issue']);
    expect(buttons(run({ status: 'succeeded' })).map((b) => b.label)).toEqual(['Issue']);
  });

  it('links the GitHub status comment when the run has one', () => {
    const r = run({ data: { statusCommentUrl: 'https://github.com/acme/widgets/issues/42#issuecomment-1' } });
    const msg = renderRunMessage(r);
    expect(JSON.stringify(msg.embeds[0]?.fields)).toContain('issuecomment-1');
    expect(buttons(r).at(-1)?.label).toBe('Status comment');
  });

  it('mentions the notify role only while a person is needed, and allows no other mention', () => {
    const waiting = run({
      status: 'waiting',
      node: 'approval',
      gate: { node: 'approval', kind: 'approval', expiresAt: at },
    });
    expect(renderRunMessage(waiting, { notifyRole: '300000000000000001' }).allowed_mentions).toEqual({
      parse: [],
      roles: ['300000000000000001'],
    });
    expect(renderRunMessage(run(), { notifyRole: '300000000000000001' }).allowed_mentions).toEqual({
      parse: [],
    });
  });

  it('stays within Discord limits with a huge plan and long names', () => {
    const r = run({
      subject: { repo: `${'o'.repeat(39)}/${'r'.repeat(100)}`, issue: 123456, key: 'k' },
      data: {
        plan: {
          title: 'x'.repeat(5000),
          steps: Array.from({ length: 40 }, (_, i) => `step ${i} ${'y'.repeat(300)}`),
        },
      },
    });
    const msg = renderRunDetail(r, {
      workflow: wf,
      events: Array.from({ length: 50 }, () => ev('step.retry', 'plan')),
    });
    const embed = msg.embeds[0]!;
    expect(embed.title!.length).toBeLessThanOrEqual(256);
    for (const f of embed.fields ?? []) expect(f.value.length).toBeLessThanOrEqual(1024);
    expect(JSON.stringify(embed).length).toBeLessThan(6000);
  });

  it('lists active and recent runs', () => {
    const msg = renderRunList([run()], [run({ id: 'rdone', status: 'succeeded' })]);
    expect(msg.embeds[0]?.fields?.map((f) => f.name)).toEqual(['Active (1)', 'Recently finished']);
    expect(msg.embeds[0]?.fields?.[1]?.value).toContain('rdone');
  });
});

describe('button ids', () => {
  it.each([
    { action: 'approve' as const, runId: 'rmbx3k2a1f00ba4c7d2', binding: 'plan-v3' },
    { action: 'reject' as const, runId: 'rmbx3k2a1f00ba4c7d2', binding: 'sha:abc:def' },
    { action: 'cancel' as const, runId: 'rmbx3k2a1f00ba4c7d2' },
  ])('round-trips $action', (id) => {
    const encoded = encodeButtonId(id);
    expect(encoded.length).toBeLessThanOrEqual(100);
    expect(decodeButtonId(encoded)).toEqual(id);
  });

  it('hashes a binding too long for 100 characters, and matches it against the gate', () => {
    const long = `plan@${'f'.repeat(120)}`;
    const encoded = encodeButtonId({ action: 'approve', runId: 'rmbx3k2a1f00ba4c7d2', binding: long });
    expect(encoded.length).toBeLessThanOrEqual(100);
    const shown = decodeButtonId(encoded)!.binding;
    expect(shown).toBe(hashBinding(long));
    expect(resolveShownBinding(shown, long)).toBe(long);
    expect(resolveShownBinding(shown, `${long}-changed`)).toBe(shown);
  });

  it.each(['', 'sy', 'sy:deploy:r1', 'xx:approve:r1', 'sy:approve:'])('ignores %j', (id) => {
    expect(decodeButtonId(id)).toBeUndefined();
  });
});
