import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GitHubClientFactory } from '../../lib/github/client.ts';
import { normalizeEvent } from '../../lib/github/events.ts';
import { checkPayload } from '../../lib/github/payload.ts';
import type { RouteMessage } from '../../lib/queue/port.ts';
import { routeLater } from '../../lib/routing/route-later.ts';
import { FakeGitHub } from '../support/fake-github.ts';
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
      expect(['pong', 'accepted', 'ignored', 'guard', 'config-refresh', 'rejected', 'deferred']).toContain(
        body.status,
      );
    },
  );

  it.each(examples.map((e) => [`${e.event}${e.action ? `.${e.action}` : ''} #${e.index}`, e] as const))(
    '%s has every field its event needs (no real delivery is refused as malformed)',
    (_name, e) => {
      expect(checkPayload(e.event, e.payload)).toEqual({ ok: true });
    },
  );
});

/**
 * What each example did before issue 15 (commit 7b1779e, shipped config, one ingress, corpus
 * order): its answer's status and, for runs, the run's workflow and subject, plus the ingress
 * decision (`ignore` marks a speculative run, started only because the repository's config was
 * not cached).
 */
interface Before {
  status: string;
  workflow?: string;
  repo?: string;
  issue?: number;
  decided?: string;
}
const BEFORE = JSON.parse(
  readFileSync(new URL('../fixtures/github/corpus-outcomes.json', import.meta.url), 'utf8'),
) as Record<string, Before>;

/** Subject keys become case-insensitive elsewhere (issue 9): compare repositories without case. */
const runKey = (workflow: string | undefined, repo: string | undefined, issue: number | undefined) =>
  `${workflow} ${repo?.toLowerCase()}#${issue ?? '-'}`;

describe('the corpus still gives the same runs as before', () => {
  let ingress: TestIngress;
  let gh: FakeGitHub;
  beforeAll(async () => {
    gh = await new FakeGitHub('corpus-token').start();
    ingress = await testIngress();
  });
  afterAll(async () => {
    await gh.stop();
  });

  it('every example gets the same answer, speculative runs are deferred, and the same runs exist', async () => {
    expect(Object.keys(BEFORE)).toHaveLength(examples.length);
    const differences: string[] = [];
    for (const e of examples) {
      const name = `${e.event}${e.action ? `.${e.action}` : ''} #${e.index}`;
      const before = BEFORE[name];
      const res = await ingress.send(
        signedRequest(TEST_SECRET, e.event, e.payload, { delivery: `corpus-${e.event}-${e.index}` }),
      );
      const body = JSON.parse(res.body) as { status: string; run?: string };
      const speculative = before?.status === 'accepted' && before.decided === 'ignore';
      const expected = speculative ? 'deferred' : before?.status;
      if (body.status !== expected) differences.push(`${name}: ${body.status}, was ${before?.status}`);
      if (body.run && !speculative) {
        const run = await ingress.engine.getRun(body.run);
        const now = runKey(run?.workflow, run?.subject.repo, run?.subject.issue);
        const was = runKey(before?.workflow, before?.repo, before?.issue);
        if (now !== was) differences.push(`${name}: run ${now}, was ${was}`);
      }
    }
    expect(differences).toEqual([]);

    // The deferred deliveries, routed by the worker against a GitHub where these repositories
    // have no .github/switchyard.yml: the central config applies, and it ignores them.
    const deferred = ingress.queue.pending.filter((m): m is RouteMessage => m.kind === 'route');
    expect(deferred.map((m) => m.delivery)).toEqual(
      Object.entries(BEFORE)
        .filter(([, b]) => b.status === 'accepted' && b.decided === 'ignore')
        .map(([name]) => {
          const e = examples.find((x) => `${x.event}${x.action ? `.${x.action}` : ''} #${x.index}` === name);
          return `corpus-${e?.event}-${e?.index}`;
        }),
    );
    const github = new GitHubClientFactory({
      credentials: { kind: 'token', token: 'corpus-token' },
      baseUrl: gh.url,
      throttle: false,
    });
    for (const m of deferred) {
      const out = await routeLater({ engine: ingress.engine, config: ingress.config, github }, m);
      expect(out.body).toMatchObject({ status: 'ignored' });
    }

    // Before, the speculative run held the subject and the triaged issues.opened joined it; now
    // the triage run is the one run. Same workflows on the same subjects, either way.
    const runs = await ingress.engine.listRuns({ limit: 100 });
    const was = new Set(
      Object.values(BEFORE)
        .filter((b) => b.status === 'accepted')
        .map((b) => runKey(b.workflow, b.repo, b.issue)),
    );
    expect(new Set(runs.map((r) => runKey(r.workflow, r.subject.repo, r.subject.issue)))).toEqual(was);
  });
});
