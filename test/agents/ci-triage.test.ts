import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CI_FAILURE_LABEL, errorLines } from '../../lib/agents/ci-triage.ts';
import { coverageTrigger, parseCoverage } from '../../lib/agents/coverage.ts';
import { createAgentDeliveryHook } from '../../lib/agents/hooks.ts';
import { GitHubClientFactory } from '../../lib/github/client.ts';
import { normalizeEvent } from '../../lib/github/events.ts';
import type { Delivery } from '../../lib/github/webhook.ts';
import { parseConfig } from '../../lib/routing/config.ts';
import { ciVerdict, readCiRecord } from '../../lib/routing/guards.ts';
import { ciTriageWorkflow } from '../../lib/workflows/ci-triage.ts';
import * as ciTriageNodes from '../../lib/workflows/ci-triage-nodes.ts';
import { coverageWorkflow } from '../../lib/workflows/coverage.ts';
import * as coverageNodes from '../../lib/workflows/coverage-nodes.ts';
import { withNodes } from '../../lib/workflows/graph.ts';
import { FakeGitHubActions } from '../support/fake-github-actions.ts';
import { type Harness, harness } from '../support/harness.ts';

const REPO = 'acme/app';
const config = parseConfig(`
agents:
  ci-triage: { type: ci-triage, permissions: [read, comment, edit_issue] }
  coverage: { type: coverage, permissions: [read, comment] }
`);

const LOG = [
  '2026-01-01T10:00:00.0000000Z ##[group]Run npm test',
  '2026-01-01T10:00:01.0000000Z > vitest run',
  '2026-01-01T10:00:02.0000000Z \u001b[31mFAIL\u001b[39m test/parser.test.ts > parses numbers',
  '2026-01-01T10:00:02.1000000Z AssertionError: expected 2 to be 3',
  '2026-01-01T10:00:03.0000000Z ##[error]Process completed with exit code 1.',
].join('\n');

describe('CI triage and coverage agents', () => {
  let fake: FakeGitHubActions;
  let h: Harness<unknown>;
  let hook: ReturnType<typeof createAgentDeliveryHook>;

  beforeAll(async () => {
    fake = await new FakeGitHubActions().start();
    const github = new GitHubClientFactory({
      credentials: { kind: 'token', token: 't' },
      baseUrl: fake.url,
      throttle: false,
      retries: 0,
    });
    const services: Record<string, unknown> = {};
    h = await harness<unknown>(
      [withNodes(ciTriageWorkflow, ciTriageNodes), withNodes(coverageWorkflow, coverageNodes)],
      { services },
    );
    // The nodes' services (lib/workflows/services.ts): the GitHub side, over the harness's store.
    services.github = { github, store: h.store, config: { central: config } };
    hook = createAgentDeliveryHook({ engine: h.engine, config: { central: config } });
  });
  afterAll(async () => {
    h.queue.stop();
    await fake.stop();
  });

  const deliver = async (name: string, payload: Record<string, unknown>) => {
    const id = randomUUID();
    const d: Delivery = { name, id, event: normalizeEvent(name, id, payload), payload };
    const out = await hook(d);
    await h.settle();
    return out;
  };

  const ciIssues = () =>
    [...fake.github.issues.entries()]
      .filter(([k, i]) => k.startsWith(`${REPO}#`) && i.labels.includes(CI_FAILURE_LABEL))
      .map(([, i]) => i);

  it('finds the first error lines in a job log', () => {
    expect(errorLines(LOG)).toEqual([
      'FAIL test/parser.test.ts > parses numbers',
      'AssertionError: expected 2 to be 3',
      'Process completed with exit code 1.',
    ]);
    expect(errorLines('all good\nnothing to see')).toEqual(['all good', 'nothing to see']);
  });

  it('summarises a failed default-branch run on a ci-failure issue and trips the CI guard', async () => {
    const run = fake.addRun(REPO, { name: 'CI', conclusion: 'failure' });
    fake.jobs.set(run.id, [
      { id: 11, name: 'test', status: 'completed', conclusion: 'failure', log: LOG },
      { id: 12, name: 'lint', status: 'completed', conclusion: 'success', log: 'ok' },
    ]);

    const out = await deliver('workflow_run', fake.payload(run));

    expect(out?.body).toMatchObject({ status: 'ci-triage', mode: 'failed', guard: 'recorded' });
    const [issue, ...more] = ciIssues();
    expect(more).toEqual([]);
    expect(issue!.title).toBe('CI failing on main');
    expect(issue!.body).toContain('### ❌ CI');
    expect(issue!.body).toContain('**test** — failure');
    expect(issue!.body).toContain('AssertionError: expected 2 to be 3');
    expect(issue!.body).not.toContain('**lint**');
    expect(fake.requests.some((r) => r.path.endsWith(`/actions/jobs/11/logs`))).toBe(true);
    expect(ciVerdict(await readCiRecord(h.store, REPO), config).state).toBe('red');
  });

  it('adds a second failing workflow to the same issue, edited in place', async () => {
    const run = fake.addRun(REPO, { name: 'Deploy', conclusion: 'timed_out' });
    fake.jobs.set(run.id, [
      { id: 21, name: 'deploy', status: 'completed', conclusion: 'timed_out', log: 'Error: took too long' },
    ]);
    await deliver('workflow_run', fake.payload(run));
    const issues = ciIssues();
    expect(issues).toHaveLength(1);
    expect(issues[0]!.body).toContain('### ❌ CI');
    expect(issues[0]!.body).toContain('### ❌ Deploy');
  });

  it('removes a workflow once it is green again, and closes the issue when nothing fails', async () => {
    await deliver('workflow_run', fake.payload(fake.addRun(REPO, { name: 'CI', conclusion: 'success' })));
    expect(ciIssues()[0]!.body).not.toContain('### ❌ CI');
    expect(ciIssues()[0]!.state).toBe('open');
    await deliver('workflow_run', fake.payload(fake.addRun(REPO, { name: 'Deploy', conclusion: 'success' })));
    expect(ciIssues()[0]!.state).toBe('closed');
    expect(ciIssues()[0]!.body).toContain('CI is green again');
  });

  it.each([
    ['a pull request run', { event: 'pull_request' }],
    ['another branch', { head_branch: 'feature' }],
    ['a cancelled run', { conclusion: 'cancelled' }],
    ['a success with nothing to resolve', { conclusion: 'success', name: 'Nightly' }],
  ])('leaves %s to the ingress', async (_what, over) => {
    const out = await deliver('workflow_run', fake.payload(fake.addRun(REPO, over)));
    expect(out).toBeUndefined();
  });

  it.each([
    ['Coverage: 84.1%', 84.1],
    ['All files |   91.3 |   80 |   88 |   91.3 |', 91.3],
    ['Name  Stmts  Miss  Cover\nTOTAL  1200  60  95%', 95],
    ['Lines: 72.5% (1000/1379)', 72.5],
    ['no numbers here', undefined],
  ])('reads coverage from %j', (text, pct) => {
    expect(parseCoverage(text)).toBe(pct);
  });

  const checkRun = (pct: number, pr?: number, sha = 'c'.repeat(40)) => ({
    action: 'completed',
    check_run: {
      id: 1,
      name: 'coverage',
      head_sha: sha,
      status: 'completed',
      conclusion: 'success',
      html_url: 'https://github.com/acme/app/runs/1',
      output: { title: `Coverage: ${pct}%`, summary: '' },
      check_suite: { head_branch: pr ? 'feature' : 'main' },
      pull_requests: pr ? [{ number: pr, base: { ref: 'main' }, head: { ref: 'feature' } }] : [],
    },
    repository: { full_name: REPO, default_branch: 'main', owner: { login: 'acme' }, name: 'app' },
    sender: { login: 'github-actions[bot]' },
  });

  it('ignores a check without a coverage figure', () => {
    const payload = checkRun(50);
    payload.check_run.output = { title: 'tests passed', summary: '' };
    expect(coverageTrigger(payload, config, new Date())).toBeUndefined();
  });

  it('records the default branch baseline, then posts the change on a PR as one comment edited in place', async () => {
    fake.github.addIssue(REPO, { number: 40, title: 'PR', pullRequest: true });
    expect((await deliver('check_run', checkRun(80)))?.body).toMatchObject({
      status: 'coverage-baseline',
      pct: 80,
    });

    expect((await deliver('check_run', checkRun(82.5, 40)))?.body).toMatchObject({
      status: 'coverage-report',
    });
    let comments = fake.github.commentsOn(REPO, 40);
    expect(comments).toHaveLength(1);
    expect(comments[0]!.body).toContain('### Coverage: 82.5% (▲ +2.5 pp vs `main` 80%)');

    await deliver('check_run', checkRun(79, 40, 'd'.repeat(40)));
    comments = fake.github.commentsOn(REPO, 40);
    expect(comments).toHaveLength(1);
    expect(comments[0]!.body).toContain('### Coverage: 79% (▼ -1 pp vs `main` 80%)');
  });
});
