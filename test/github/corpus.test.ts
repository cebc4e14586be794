import { beforeAll, describe, expect, it } from 'vitest';
import { normalizeEvent } from '../../lib/github/events.ts';
import { signedRequest, TEST_SECRET, type TestIngress, testIngress, webhookExamples } from './support.ts';

const examples = webhookExamples();

describe('every @octokit/webhooks-examples payload', () => {
  let ingress: TestIngress;
  beforeAll(async () => {
    ingress = await testIngress();
  });

  it('covers the whole corpus', () => {
    expect(examples.length).toBeGreaterThan(300);
    expect(new Set(examples.map((e) => e.event)).size).toBeGreaterThan(50);
  });

  it.each(examples.map((e) => [`${e.event}${e.action ? `.${e.action}` : ''} #${e.index}`, e] as const))(
    '%s is normalised without error',
    (_name, e) => {
      const ev = normalizeEvent(e.event, 'd-1', e.payload);
      expect(ev.name).toBe(e.event);
      if (e.action) expect(ev.action).toBe(e.action);
      if ((e.payload.repository as { full_name?: string } | undefined)?.full_name)
        expect(ev.repo?.fullName).toBeTruthy();
      // The run data keeps only this view, never the raw payload.
      expect(JSON.stringify(ev).length).toBeLessThan(40_000);
    },
  );

  it.each(examples.map((e) => [`${e.event}${e.action ? `.${e.action}` : ''} #${e.index}`, e] as const))(
    '%s, signed at test time, gets a 2xx from the full ingress',
    async (_name, e) => {
      const res = await ingress.send(signedRequest(TEST_SECRET, e.event, e.payload));
      expect(res.statusCode, res.body).toBeGreaterThanOrEqual(200);
      expect(res.statusCode, res.body).toBeLessThan(300);
      const body = JSON.parse(res.body) as { status?: string; error?: string };
      expect(body.error).toBeUndefined();
      expect(['pong', 'accepted', 'ignored', 'guard', 'config-refresh', 'rejected']).toContain(body.status);
    },
  );
});
