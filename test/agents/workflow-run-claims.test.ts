import { afterEach, describe, expect, it } from 'vitest';
import { agentWorkflows, isAgentWorkflowRun, resumeFromWorkflowRun } from '../../lib/agents/workflow-run.ts';
import { normalizeEvent } from '../../lib/github/events.ts';
import { example } from '../github/support.ts';
import { type AgentWorld, agentWorld } from './support.ts';

/**
 * Issue #9, defect 5: a `workflow_run` is claimed as an agent's only when GitHub says it was a
 * `workflow_dispatch` of a configured agent workflow and its title is exactly the run-name the
 * reference workflow sets. Before, an unanchored title match claimed any run whose title merely
 * contained "switchyard r…" (a push whose commit message said so was hidden from the CI guard),
 * and a PR- or issue-triggered workflow could resume a run with its own conclusion.
 */

const RUN = 'rm3x1abcd0123456789';

/** A real workflow_run delivery (@octokit/webhooks-examples), given the fields that matter here. */
function delivery(over: { event: string; title: string; path?: string }) {
  const p = example('workflow_run', 'completed');
  const wr = p.workflow_run as Record<string, unknown>;
  wr.event = over.event;
  wr.display_title = over.title;
  wr.path = over.path ?? '.github/workflows/switchyard-agent.yml';
  return p;
}

describe('which workflow runs are claimed as agent runs', () => {
  const workflows = ['switchyard-agent.yml'];

  it.each([
    ['a dispatch with the exact run-name', 'workflow_dispatch', `switchyard ${RUN}`, true],
    ['a dispatch with run id and work item', 'workflow_dispatch', `switchyard ${RUN} ${RUN}.t1.1`, true],
    ['a push whose commit message names a run', 'push', `switchyard ${RUN}`, false],
    ['a pull_request run titled like an agent run', 'pull_request', `switchyard ${RUN}`, false],
    ['an issues-triggered run titled like an agent run', 'issues', `switchyard ${RUN}`, false],
    [
      'a dispatch whose title only contains the run-name',
      'workflow_dispatch',
      `revert switchyard ${RUN}`,
      false,
    ],
    ['a dispatch with text after the run-name', 'workflow_dispatch', `switchyard ${RUN} and more`, false],
  ])('%s: %s', (_, event, title, claimed) => {
    const raw = delivery({ event, title });
    expect(isAgentWorkflowRun(raw, workflows)).toBe(claimed);
    // The normalised event (what the CI guard and triage see) agrees.
    const ev = normalizeEvent('workflow_run', 'd-1', raw);
    expect(isAgentWorkflowRun(ev)).toBe(claimed);
  });

  it('a dispatch of a workflow no agent is configured with is not claimed', () => {
    const raw = delivery({
      event: 'workflow_dispatch',
      title: `switchyard ${RUN}`,
      path: '.github/workflows/deploy.yml',
    });
    expect(isAgentWorkflowRun(raw, workflows)).toBe(false);
  });
});

describe('resuming a run from a workflow_run', () => {
  let w: AgentWorld;
  afterEach(async () => {
    await w?.stop();
  });

  it('a pull_request-triggered run titled with the run id cannot resume it; the dispatched run can', async () => {
    w = await agentWorld();
    expect(agentWorkflows(w.config)).toEqual(['switchyard-agent.yml']);
    const run = await w.start([{ agent: 'coder' }]);
    const wr = w.fake.runs.find((r) => r.display_title.includes(run.id))!;
    w.fake.finish(wr, 'success');

    const forged = w.fake.payload({ ...wr, id: wr.id + 1000, event: 'pull_request' }, 'completed');
    const out = await resumeFromWorkflowRun(w.h.engine, forged, { now: w.clock.now });
    expect(out.outcome).toBe('ignored');
    await w.h.settle();
    expect((await w.run(run.id)).status).toBe('waiting');

    const wrongWorkflow = w.fake.payload({ ...wr, id: wr.id + 2000, workflow: 'other.yml' }, 'completed');
    expect((await resumeFromWorkflowRun(w.h.engine, wrongWorkflow, { now: w.clock.now })).outcome).toBe(
      'ignored',
    );

    const real = await resumeFromWorkflowRun(w.h.engine, w.fake.payload(wr, 'completed'), {
      now: w.clock.now,
    });
    expect(real.outcome).toBe('resumed');
    await w.h.settle();
    expect((await w.run(run.id)).status).toBe('succeeded');
  });
});
