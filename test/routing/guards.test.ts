import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NewEvent, Run } from '../../lib/engine/types.ts';
import { GitHubClientFactory } from '../../lib/github/client.ts';
import { ciVerdict, readCiRecord } from '../../lib/routing/guards.ts';
import { route } from '../../lib/routing/route.ts';
import type { GitHubServices } from '../../lib/routing/services.ts';
import { example, signedRequest, TEST_SECRET, type TestIngress, testIngress } from '../github/support.ts';
import { FakeGitHub } from '../support/fake-github.ts';

/** A real `workflow_run.completed` payload, moved onto a branch with a conclusion. */
function workflowRun(opts: {
  conclusion: string;
  branch?: string;
  at: string;
  workflowId?: number;
  event?: string;
}) {
  const p = example('workflow_run', 'completed');
  const wr = p.workflow_run as Record<string, unknown>;
  wr.status = 'completed';
  wr.conclusion = opts.conclusion;
  wr.head_branch = opts.branch ?? 'main';
  wr.updated_at = opts.at;
  wr.event = opts.event ?? 'push';
  if (opts.workflowId !== undefined) wr.workflow_id = opts.workflowId;
  return p;
}

function readyIssue(n: number) {
  const p = example('issues', 'labeled');
  const i = p.issue as { number: number; labels: Array<{ name: string }> };
  i.number = n;
  i.labels = [{ name: 'ready' }];
  (p.label as { name: string }).name = 'ready';
  // Same repository as the workflow_run example, so the guard applies to it.
  p.repository = example('workflow_run', 'completed').repository;
  return p;
}

const REPO = (example('workflow_run', 'completed').repository as { full_name: string }).full_name;

describe('the CI guard', () => {
  let ingress: TestIngress;
  let gh: FakeGitHub;
  beforeAll(async () => {
    gh = await new FakeGitHub('gh-token').start();
  });
  afterAll(async () => {
    await gh.stop();
  });
  beforeEach(async () => {
    ingress = await testIngress();
    gh.workflowRuns.clear();
    gh.requests.length = 0;
  });

  const deliver = (event: string, payload: unknown) =>
    ingress.send(signedRequest(TEST_SECRET, event, payload, { delivery: randomUUID() }));
  const state = async () => ciVerdict(await readCiRecord(ingress.store, REPO), ingress.config.central).state;

  it('turns red on a failed default-branch workflow_run and green again when it passes', async () => {
    expect(
      JSON.parse(
        (await deliver('workflow_run', workflowRun({ conclusion: 'failure', at: '2024-05-01T10:00:00Z' })))
          .body,
      ),
    ).toMatchObject({
      status: 'guard',
      outcome: 'recorded',
    });
    expect(await state()).toBe('red');
    await deliver('workflow_run', workflowRun({ conclusion: 'success', at: '2024-05-01T11:00:00Z' }));
    expect(await state()).toBe('green');
  });

  it('ignores other branches, pull request runs and non-determinative conclusions', async () => {
    await deliver('workflow_run', workflowRun({ conclusion: 'success', at: '2024-05-01T09:00:00Z' }));
    for (const p of [
      workflowRun({ conclusion: 'failure', branch: 'feature', at: '2024-05-01T10:00:00Z' }),
      workflowRun({ conclusion: 'failure', event: 'pull_request', at: '2024-05-01T10:00:00Z' }),
      workflowRun({ conclusion: 'cancelled', at: '2024-05-01T10:00:00Z' }),
    ]) {
      expect(JSON.parse((await deliver('workflow_run', p)).body).outcome).toBe('ignored');
    }
    expect(await state()).toBe('green');
  });

  it('keeps the newest result when deliveries arrive out of order', async () => {
    await deliver('workflow_run', workflowRun({ conclusion: 'success', at: '2024-05-01T12:00:00Z' }));
    const late = await deliver(
      'workflow_run',
      workflowRun({ conclusion: 'failure', at: '2024-05-01T08:00:00Z' }),
    );
    expect(JSON.parse(late.body).outcome).toBe('unchanged');
    expect(await state()).toBe('green');
  });

  it('stays red while any workflow is red', async () => {
    await deliver(
      'workflow_run',
      workflowRun({ conclusion: 'failure', workflowId: 1, at: '2024-05-01T10:00:00Z' }),
    );
    await deliver(
      'workflow_run',
      workflowRun({ conclusion: 'success', workflowId: 2, at: '2024-05-01T11:00:00Z' }),
    );
    expect(await state()).toBe('red');
  });

  it('learns from check_suite too (apps other than GitHub Actions)', async () => {
    const p = example('check_suite', 'completed');
    const cs = p.check_suite as Record<string, unknown>;
    cs.head_branch = (p.repository as { default_branch: string }).default_branch;
    cs.conclusion = 'failure';
    cs.status = 'completed';
    cs.app = { ...(cs.app as object), slug: 'circleci', name: 'CircleCI' };
    expect(JSON.parse((await deliver('check_suite', p)).body).outcome).toBe('recorded');
    const repo = (p.repository as { full_name: string }).full_name;
    expect(ciVerdict(await readCiRecord(ingress.store, repo), ingress.config.central)).toMatchObject({
      state: 'red',
      failing: [{ source: 'app:circleci', name: 'CircleCI' }],
    });
  });

  describe('in the route step', () => {
    const services = (): GitHubServices => ({
      github: new GitHubClientFactory({
        credentials: { kind: 'token', token: 'gh-token' },
        baseUrl: gh.url,
        throttle: false,
      }),
      store: ingress.store,
      config: ingress.config,
    });
    const startRun = async (n: number): Promise<Run> => {
      const res = JSON.parse((await deliver('issues', readyIssue(n))).body) as { run: string };
      return (await ingress.store.getRun(res.run))!;
    };
    const scope = (run: Run) => {
      const events: NewEvent[] = [];
      return { events, scope: { run, node: 'route', emit: (e: NewEvent) => void events.push(e) } };
    };

    it('blocks a new run while CI is red, confirmed through the API, with the reason in the events', async () => {
      await deliver(
        'workflow_run',
        workflowRun({ conclusion: 'failure', workflowId: 7, at: '2024-05-01T10:00:00Z' }),
      );
      gh.workflowRuns.set(REPO, [
        {
          id: 70,
          name: 'CI',
          workflow_id: 7,
          head_branch: 'main',
          status: 'completed',
          conclusion: 'failure',
          updated_at: '2024-05-01T10:00:00Z',
          event: 'push',
        },
      ]);
      const { events, scope: s } = scope(await startRun(201));
      const { decision } = await route(services(), s);
      expect(decision).toMatchObject({
        outcome: 'blocked',
        guards: [{ guard: 'ci', verdict: 'block', state: 'red', confirmed: true }],
      });
      expect(decision.reason).toContain('CI guard: main is red');
      expect(events.find((e) => e.type === 'guard.verdict')?.detail).toMatchObject({
        verdict: 'block',
        state: 'red',
      });
      expect(events.find((e) => e.type === 'routing.decided')?.detail).toMatchObject({
        outcome: 'blocked',
        rule: 'ready-issue',
      });
      expect(gh.calls('GET', /\/actions\/runs\?/)).toHaveLength(1);
    });

    it('does not count a failed Switchyard agent run as the branch going red when confirming', async () => {
      await deliver(
        'workflow_run',
        workflowRun({ conclusion: 'failure', workflowId: 7, at: '2024-05-01T10:00:00Z' }),
      );
      gh.workflowRuns.set(REPO, [
        {
          id: 72,
          name: 'Switchyard agent',
          workflow_id: 9,
          head_branch: 'main',
          status: 'completed',
          conclusion: 'failure',
          updated_at: '2024-05-01T12:00:00Z',
          event: 'workflow_dispatch',
          display_title: 'switchyard rabcdef123456',
        },
        {
          id: 71,
          name: 'CI',
          workflow_id: 7,
          head_branch: 'main',
          status: 'completed',
          conclusion: 'success',
          updated_at: '2024-05-01T11:00:00Z',
          event: 'push',
        },
      ]);
      const { scope: s } = scope(await startRun(203));
      const { decision } = await route(services(), s);
      expect(decision).toMatchObject({ outcome: 'run', guards: [{ verdict: 'pass', state: 'green' }] });
    });

    it('lifts a red state whose green delivery was lost, when the API says the branch is green', async () => {
      await deliver(
        'workflow_run',
        workflowRun({ conclusion: 'failure', workflowId: 7, at: '2024-05-01T10:00:00Z' }),
      );
      gh.workflowRuns.set(REPO, [
        {
          id: 71,
          name: 'CI',
          workflow_id: 7,
          head_branch: 'main',
          status: 'completed',
          conclusion: 'success',
          updated_at: '2024-05-01T11:00:00Z',
          event: 'push',
        },
        {
          id: 70,
          name: 'CI',
          workflow_id: 7,
          head_branch: 'main',
          status: 'completed',
          conclusion: 'failure',
          updated_at: '2024-05-01T10:00:00Z',
          event: 'push',
        },
      ]);
      const { scope: s } = scope(await startRun(202));
      const { decision } = await route(services(), s);
      expect(decision).toMatchObject({
        outcome: 'run',
        guards: [{ verdict: 'pass', state: 'green', confirmed: true }],
      });
      expect(await state()).toBe('green');
    });

    it('lets runs through once a green workflow_run arrives', async () => {
      await deliver(
        'workflow_run',
        workflowRun({ conclusion: 'failure', workflowId: 7, at: '2024-05-01T10:00:00Z' }),
      );
      await deliver(
        'workflow_run',
        workflowRun({ conclusion: 'success', workflowId: 7, at: '2024-05-01T11:00:00Z' }),
      );
      const { scope: s } = scope(await startRun(203));
      const { decision } = await route(services(), s);
      expect(decision).toMatchObject({
        outcome: 'run',
        guards: [{ verdict: 'pass', state: 'green', confirmed: false }],
      });
      // Green from deliveries needs no API confirmation.
      expect(gh.calls('GET', /\/actions\/runs/)).toHaveLength(0);
    });
  });
});
