/**
 * Found by the fault bench (issue 9, "Proof"): the find-or-create of a GitHub Actions dispatch
 * read one page of the repository's 50 newest dispatched runs. Once 50 other dispatches had
 * started after ours (100 issues in one repository), a retried step no longer found it and
 * dispatched the task again. The stand-in pages its listings as GitHub does (30 by default, at
 * most 100 a page), so the lookup must page.
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

const REPO = 'acme/widgets';

describe('finding an earlier dispatch', () => {
  let fake: FakeGitHubActions;
  beforeAll(async () => {
    fake = await new FakeGitHubActions().start();
    fake.runName = (i) =>
      `switchyard ${i.switchyard_run} ${(JSON.parse(i.task ?? '{}') as { item?: string }).item ?? ''}`;
    fake.runDetails = 'ignore';
  });
  afterAll(async () => {
    await fake.stop();
  });

  function request(runId: string, item: string, createdAt: string): DispatchRequest {
    const run: Run = {
      id: runId,
      workflow: 'issue-pipeline',
      status: 'running',
      node: 'execute',
      subject: { repo: REPO, issue: 4, key: `${REPO}#4` },
      trigger: { source: 'test' },
      createdAt,
      updatedAt: createdAt,
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

  it('finds it behind more than a page of newer dispatches, and does not dispatch again', async () => {
    const executor = new GitHubActionsExecutor({
      github: new GitHubClientFactory({
        credentials: { kind: 'token', token: 'gh-test-token' },
        baseUrl: fake.url,
        throttle: false,
        retries: 0,
      }),
      env: {},
    });
    const req = request('rpaged1aaaa', 'rpaged1aaaa.t1.1', new Date(Date.now() - 60_000).toISOString());
    await executor.dispatch(req);
    // 150 other runs' agent workflows started after ours, newest first in every listing.
    for (let i = 1; i <= 150; i++) {
      const at = new Date(Date.now() + i * 1_000).toISOString();
      fake.addRun(REPO, {
        workflow: 'switchyard-agent.yml',
        event: 'workflow_dispatch',
        status: 'in_progress',
        conclusion: null,
        display_title: `switchyard rother${String(i).padStart(5, '0')} rother${String(i).padStart(5, '0')}.t1.1`,
        created_at: at,
        updated_at: at,
      });
    }

    const again = await executor.dispatch(req); // the step re-ran: its journal entry was lost

    const ours = fake.dispatches.filter((d) => d.display_title.includes('rpaged1aaaa.t1.1'));
    expect(ours).toHaveLength(1);
    expect(again.details.workflowRunId).toBe(ours[0]?.id);
  });
});
