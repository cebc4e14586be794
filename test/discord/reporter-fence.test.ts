/**
 * Issue #9, defect 7: the Discord run message is fenced by the version it shows, like the status
 * comment, so a reporter that stalled past its claim cannot put back an older state.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createDiscordReporter } from '../../lib/discord/reporter.ts';
import { DiscordRest } from '../../lib/discord/rest.ts';
import type { Run } from '../../lib/engine/types.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { createTestStore } from '../support/dynamo.ts';

let seq = 0;
function discordRun(version: number, status: Run['status'], id = `rfence${++seq}`): Run {
  const at = '2024-05-01T10:00:00.000Z';
  return {
    id,
    workflow: 'issue-pipeline',
    status,
    node: 'plan',
    subject: { repo: 'acme/app', issue: 3, key: 'acme/app#3' },
    trigger: { source: 'discord', actor: 'u1', channelId: '111', guildId: '222' },
    createdAt: at,
    updatedAt: at,
    version,
    data: {},
    eventSeq: 1,
  };
}

describe('the Discord reporter fence', () => {
  let store: DynamoRunStore;
  const calls: Array<{ method: string; url: string }> = [];
  const rest = new DiscordRest({
    botToken: 'bot-token',
    maxRetries: 0,
    fetch: (async (url: string | URL | Request, init?: RequestInit) => {
      calls.push({ method: String(init?.method), url: String(url) });
      return new Response(JSON.stringify({ id: '999', channel_id: '111', content: '' }), {
        status: 200,
        headers: { 'content-type': 'application/json' },
      });
    }) as typeof fetch,
  });
  beforeAll(async () => {
    store = await createTestStore();
  });

  it('drops the update of a late writer showing an older version', async () => {
    const reporter = createDiscordReporter({ store, rest });
    const newer = discordRun(5, 'succeeded');
    await reporter.report(newer, { events: [], workflow: undefined, store });
    const before = calls.length;

    await reporter.report(
      { ...discordRun(4, 'running', newer.id) },
      { events: [], workflow: undefined, store },
    );

    expect(before).toBe(1);
    expect(calls).toHaveLength(1);
  });

  it('sends nothing once the engine says the report is no longer current', async () => {
    const reporter = createDiscordReporter({ store, rest });
    const before = calls.length;

    await reporter.report(discordRun(2, 'running'), {
      events: [],
      workflow: undefined,
      store,
      current: async () => false,
    });

    expect(calls.length).toBe(before);
  });
});
