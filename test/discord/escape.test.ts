import { describe, expect, it } from 'vitest';
import { escapeDiscord, escapeDiscordInline } from '../../lib/discord/escape.ts';
import { planSummary } from '../../lib/discord/plan-all-workflow.ts';
import { renderRunMessage, summarizePlan } from '../../lib/discord/render.ts';
import type { Run } from '../../lib/engine/types.ts';
import { FORBIDDEN_IN_ANY, HOSTILE } from '../support/hostile.ts';

/**
 * Issue #9, defect 11 (Discord): issue titles, task titles, plan summaries and reasons are
 * escaped before they are embedded, so no mention, masked link or markup from user text survives.
 */

/** Everything Discord would render as a mention or a masked link. */
function assertInert(text: string): void {
  for (const bad of FORBIDDEN_IN_ANY) expect(text).not.toContain(bad);
  expect(text).not.toMatch(/(?<!\\)<@[!&]?\d+>/); // user and role mentions
  expect(text).not.toMatch(/(?<!\\)<#\d+>/); // channel mentions
  expect(text).not.toMatch(/(?<!\\)\[click me/); // the user's masked link
}

const at = '2025-06-01T10:00:00.000Z';
const run = (over: Partial<Run>): Run =>
  ({
    id: 'rmbx3k2a1f00ba4c7d2',
    workflow: 'issue-pipeline',
    status: 'failed',
    node: 'execute',
    subject: { repo: 'acme/widgets', issue: 42, key: 'acme/widgets#42' },
    trigger: { source: 'discord', actor: '200000000000000001' },
    createdAt: at,
    updatedAt: at,
    version: 7,
    data: {},
    eventSeq: 9,
    ...over,
  }) as Run;

describe('Discord escaping', () => {
  it('the escaper leaves no mention, masked link or markup', () => {
    assertInert(escapeDiscord(HOSTILE));
    expect(escapeDiscordInline(HOSTILE)).not.toContain('\n');
    expect(escapeDiscordInline('plain words stay plain')).toBe('plain words stay plain');
  });

  it('a cancel reason in the run message is inert', () => {
    const msg = renderRunMessage(run({ status: 'cancelled', reason: `cancelled by alice: ${HOSTILE}` }));
    const text = JSON.stringify(msg.embeds);
    assertInert(
      JSON.parse(text)
        .map((e: { fields: { value: string }[] }) => e.fields.map((f) => f.value).join('\n'))
        .join('\n'),
    );
    expect(msg.allowed_mentions).toEqual({ parse: [] });
  });

  it('a gate prompt in the run message is inert', () => {
    const msg = renderRunMessage(
      run({
        status: 'waiting',
        node: 'execute',
        gate: {
          kind: 'escalation',
          node: 'execute',
          expiresAt: at,
          prompt: `Escalated: ${HOSTILE}`,
        } as NonNullable<Run['gate']>,
      }),
    );
    for (const f of msg.embeds[0]!.fields ?? []) assertInert(f.value);
  });

  it('plan titles and summaries are inert in /status', () => {
    const text = summarizePlan({ summary: HOSTILE, tasks: [{ title: HOSTILE }, { title: 'ok' }] })!;
    assertInert(text);
  });

  it('issue titles in the /plan summary are inert, and only the configured role may be pinged', () => {
    const body = planSummary([{ issue: 7, title: HOSTILE, runId: 'r1', outcome: 'created' }], '555');
    assertInert(body.content!.replace('<@&555>', ''));
    expect(body.allowed_mentions).toEqual({ parse: [], roles: ['555'] });
  });
});
