/**
 * Issue #9, defect 17: a crash between a `workflow_dispatch` and its journal entry re-runs the
 * dispatch; it must find the Actions run it already made (by run-name) instead of dispatching twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GitHubActionsExecutor } from '../../lib/agents/executors/github-actions.ts';
import type { DispatchRequest } from '../../lib/agents/executors/types.ts';
import type { Run } from '../../lib/engine/types.ts';
import { GitHubClientFactory } from '../../lib/github/client.ts';
import { AgentRegistry } from '../../lib/routing/agents.ts';
import { parseConfig } from '../../lib/routing/config.ts';
import { FakeGitHubActions } from '../support/fake-github-actions.ts';
import { AGENTS_YAML } from './support.ts';

describe('a GitHub Actions dispatch', () => {
  let fake: FakeGitHubActions;
  beforeAll(async () => {
    fake = await new FakeGitHubActions().start();
    // The reference workflow's run-name: "switchyard <run id> <work item>".
    fake.runName = (i) =>
      `switchyard ${i.switchyard_run} ${(JSON.parse(i.task ?? '{}') as { item?: string }).item ?? ''}`;
  });
  afterAll(async () => {
    await fake.stop();
  });

  function request(runId: string, item: string): DispatchRequest {
    const at = new Date().toISOString();
    const run: Run = {
      id: runId,
      workflow: 'issue-pipeline',
      status: 'running',
      node: 'execute',
      subject: { repo: 'acme/widgets', issue: 4, key: 'acme/widgets#4' },
      trigger: { source: 'test' },
      createdAt: at,
      updatedAt: at,
      version: 3,
      data: {},
      eventSeq: 3,
    };
    const agent = new AgentRegistry(parseConfig(AGENTS_YAML)).get('coder')!;
    return {
      run,
      node: 'execute',
      item,
      agent,
      task: { id: 't1', title: 'Fix it', item },
      correlation: item,
      expiresAt: new Date(Date.now() + 3600_000).toISOString(),
      emit: () => {},
    };
  }

  it('finds the run it already dispatched for the same work item instead of dispatching again', async () => {
    // GitHub answered 204 (no run details): the id is learnt only by finding the run again.
    fake.runDetails = 'ignore';
    const executor = new GitHubActionsExecutor({
      github: new GitHubClientFactory({
        credentials: { kind: 'token', token: 'gh-test-token' },
        baseUrl: fake.url,
        throttle: false,
        retries: 0,
      }),
      env: {},
    });
    const req = request('rdispatch1', 'rdispatch1.t1.1');

    const first = await executor.dispatch(req);
    const again = await executor.dispatch(req); // the step re-ran: its journal entry was lost

    expect(fake.dispatches.filter((d) => d.display_title.includes('rdispatch1.t1.1'))).toHaveLength(1);
    expect(first.details.workflowRunId).toBeUndefined();
    expect(again.details.workflowRunId).toBe(
      fake.dispatches.find((d) => d.display_title.includes('rdispatch1'))?.id,
    );
  });

  it('dispatches a new try of the same task (another work item)', async () => {
    const executor = new GitHubActionsExecutor({
      github: new GitHubClientFactory({
        credentials: { kind: 'token', token: 'gh-test-token' },
        baseUrl: fake.url,
        throttle: false,
        retries: 0,
      }),
      env: {},
    });

    await executor.dispatch(request('rdispatch2', 'rdispatch2.t1.1'));
    await executor.dispatch(request('rdispatch2', 'rdispatch2.t1.2'));

    expect(fake.dispatches.filter((d) => d.display_title.includes('rdispatch2'))).toHaveLength(2);
  });
});
