import { afterEach, describe, expect, it } from 'vitest';
import { reconcileAgentRuns } from '../../lib/agents/reconcile.ts';
import { resumeFromWorkflowRun } from '../../lib/agents/workflow-run.ts';
import { type ReconcileConfig, RecoverySchema } from '../../lib/routing/recovery-config.ts';
import type { FakeActionsRun } from '../support/fake-github-actions.ts';
import { type AgentWorld, agentWorld } from './support.ts';

/**
 * Lost `workflow_run` completions: the sweeper finds the agent's Actions run through the API
 * (GitHub Actions played on loopback, DynamoDB Local) and resumes the task through the same code
 * path as the webhook, exactly once, whatever arrives later.
 */

const MIN = 60_000;
const config = (over: Partial<ReconcileConfig> = {}): ReconcileConfig => ({
  ...RecoverySchema.parse({}).reconcile,
  ...over,
});

describe('reconciling agent completions through the Actions API', () => {
  let w: AgentWorld;
  afterEach(async () => {
    await w.stop();
  });

  const reconcile = async (over: Partial<ReconcileConfig> = {}) => {
    const report = await reconcileAgentRuns({
      engine: w.h.engine,
      github: w.github,
      config: config(over),
      now: w.clock.now,
    });
    await w.h.settle();
    return report;
  };
  const dispatched = (runId: string): FakeActionsRun => {
    const wr = w.fake.dispatches.find((d) => d.inputs.switchyard_run === runId);
    if (!wr) throw new Error(`nothing dispatched for ${runId}`);
    return wr;
  };
  const results = async (runId: string) => (await w.types(runId)).filter((t) => t === 'signal.result');
  const apiLookups = () =>
    w.fake.requests.filter(
      (r) => r.method === 'GET' && /\/actions\/(runs\/\d+|workflows\/[^/]+\/runs)/.test(r.path),
    );

  it('resumes a task whose completion webhook was lost, found by its run-name, exactly once', async () => {
    w = await agentWorld();
    w.fake.runDetails = 'ignore'; // GitHub answered 204: no run id recorded, so look it up by run-name
    const run = await w.start([{ agent: 'coder' }]);
    const wr = dispatched(run.id);
    w.fake.finish(wr, 'success'); // GitHub finished it; the webhook never arrives
    w.clock.advance(11 * MIN);

    const report = await reconcile();

    expect(report).toMatchObject({ checked: 1, resumed: 1, errors: 0 });
    expect((await w.run(run.id)).status).toBe('succeeded');
    const lookup = apiLookups()[0]!;
    expect(lookup.path).toMatch(/\/actions\/workflows\/switchyard-agent\.yml\/runs\?/);
    expect(new URL(lookup.path, 'http://x').searchParams.get('event')).toBe('workflow_dispatch');
    expect(await w.types(run.id)).toEqual(
      expect.arrayContaining(['agent.workflow-run.linked', 'agent.workflow-run.reconciled', 'signal.result']),
    );
    expect(await results(run.id)).toHaveLength(1);

    // The real webhook turns up after all: a no-op.
    const late = await resumeFromWorkflowRun(w.h.engine, w.fake.payload(wr, 'completed'), {
      now: w.clock.now,
    });
    await w.h.settle();
    expect(['duplicate', 'stale']).toContain(late.outcome);
    expect(await results(run.id)).toHaveLength(1);
    // And so does the next sweep.
    w.clock.advance(10 * MIN);
    expect(await reconcile()).toMatchObject({ checked: 0, resumed: 0 });
  });

  it('looks the run up by its recorded id when the in_progress webhook linked it', async () => {
    w = await agentWorld();
    const run = await w.start([{ agent: 'coder' }]);
    const wr = dispatched(run.id);
    expect((await resumeFromWorkflowRun(w.h.engine, w.fake.payload(wr, 'in_progress'))).outcome).toBe(
      'linked',
    );
    w.fake.finish(wr, 'failure');
    w.clock.advance(11 * MIN);

    const report = await reconcile();

    expect(report).toMatchObject({ checked: 1, resumed: 1 });
    expect(apiLookups().map((r) => r.path)).toEqual([`/repos/acme/app/actions/runs/${wr.id}`]);
    const result = (await w.events(run.id)).find((e) => e.type === 'signal.result');
    expect(result?.detail).toMatchObject({ ok: false });
  });

  it('leaves young tasks alone, and checks a still-running one again only after everyMinutes', async () => {
    w = await agentWorld();
    const run = await w.start([{ agent: 'coder' }]);
    const wr = dispatched(run.id);
    w.clock.advance(5 * MIN);
    expect(await reconcile()).toMatchObject({ checked: 0 });
    expect(apiLookups()).toHaveLength(0);

    w.clock.advance(6 * MIN);
    expect(await reconcile()).toMatchObject({ checked: 1, resumed: 0, pending: 1 });
    w.clock.advance(1 * MIN);
    expect(await reconcile()).toMatchObject({ checked: 0 });
    expect(apiLookups()).toHaveLength(1);

    w.fake.finish(wr, 'success');
    w.clock.advance(5 * MIN);
    expect(await reconcile()).toMatchObject({ checked: 1, resumed: 1 });
    expect((await w.run(run.id)).status).toBe('succeeded');
    // The pending lookup linked the workflow run, so the second lookup went by id.
    expect(apiLookups()[1]?.path).toBe(`/repos/acme/app/actions/runs/${wr.id}`);
  });

  it('a webhook and the reconcile arriving together resume the task once', async () => {
    w = await agentWorld();
    const run = await w.start([{ agent: 'coder' }]);
    const wr = dispatched(run.id);
    w.fake.finish(wr, 'success');
    w.clock.advance(11 * MIN);

    const [report, hook] = await Promise.all([
      reconcileAgentRuns({ engine: w.h.engine, github: w.github, config: config(), now: w.clock.now }),
      resumeFromWorkflowRun(w.h.engine, w.fake.payload(wr, 'completed'), { now: w.clock.now }),
    ]);
    await w.h.settle();

    expect(report.resumed + (hook.outcome === 'resumed' ? 1 : 0)).toBe(1);
    expect(await results(run.id)).toHaveLength(1);
    expect((await w.run(run.id)).status).toBe('succeeded');
  });

  it('does nothing in dry-run or when disabled', async () => {
    w = await agentWorld({ dryRun: true });
    await w.start([{ agent: 'coder' }]);
    w.clock.advance(11 * MIN);
    expect((await reconcile()).skipped).toMatch(/dry-run/);
    expect((await reconcile({ enabled: false })).skipped).toBe('disabled');
    expect(apiLookups()).toHaveLength(0);
  });
});
