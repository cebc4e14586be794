import { afterEach, describe, expect, it } from 'vitest';
import { reconcileAgentRuns } from '../../lib/agents/reconcile.ts';
import { RecoverySchema } from '../../lib/routing/recovery-config.ts';
import { type AgentWorld, agentWorld } from './support.ts';

/**
 * Found by the fault bench (issue 9, "Proof"): the reconcile looked a lost completion up by its
 * run-name in ONE page of 100 of the workflow's dispatched runs. With more than 100 agent runs
 * started since (100 issues in one repository), it never found it, and the task waited for the
 * agent timeout. The stand-in pages its listings as GitHub does, so the lookup must page.
 */

const MIN = 60_000;

describe('reconciling a lost completion behind many newer agent runs', () => {
  let w: AgentWorld;
  afterEach(async () => {
    await w.stop();
  });

  it('finds it on a later page and resumes the task once', async () => {
    w = await agentWorld();
    w.fake.runDetails = 'ignore'; // no run id recorded: found by run-name only
    const run = await w.start([{ agent: 'coder' }]);
    const wr = w.fake.dispatches.find((d) => d.inputs.switchyard_run === run.id);
    if (!wr) throw new Error(`nothing dispatched for ${run.id}`);
    w.fake.finish(wr, 'success'); // GitHub finished it; the webhook never arrives
    // 150 other runs' agent workflows started after ours: newest first, ours is on page 2.
    for (let i = 1; i <= 150; i++) {
      const at = new Date(Date.parse(wr.created_at) + i * 1_000).toISOString();
      w.fake.addRun('acme/app', {
        workflow: wr.workflow,
        event: 'workflow_dispatch',
        status: 'in_progress',
        conclusion: null,
        display_title: `switchyard rother${String(i).padStart(5, '0')}`,
        created_at: at,
        updated_at: at,
      });
    }
    w.clock.advance(11 * MIN);

    const report = await reconcileAgentRuns({
      engine: w.h.engine,
      github: w.github,
      config: RecoverySchema.parse({}).reconcile,
      now: w.clock.now,
    });
    await w.h.settle();

    expect(report).toMatchObject({ checked: 1, resumed: 1, missing: 0, errors: 0 });
    expect((await w.run(run.id)).status).toBe('succeeded');
  });
});
