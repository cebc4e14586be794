import type { Run } from '../../engine/types.ts';
import { type GitHubClient, type GitHubClientFactory, splitRepo } from '../../github/client.ts';
import type { RegisteredAgent } from '../../routing/agents.ts';
import { scrub, secretValues } from '../allowlist.ts';
import { NoExecutorError } from '../errors.ts';
import { type DispatchOutcome, type DispatchRequest, type Executor, payloadFor } from './types.ts';

/**
 * The GitHub Actions executor: a `workflow_dispatch` of the agent's configured workflow, in the
 * run's repository (or the executor's `repo`), with inputs `switchyard_run` (the run id) and `task`
 * (a JSON string: the task, filtered by the agent's env allowlist), asking GitHub for the new
 * run's id (`return_run_details`): the id is recorded with the dispatch, binds the OIDC callback
 * (actions-callback.ts) and the `workflow_run` completion to that exact run, and cancels it.
 * Where GitHub does not return it, the workflow's `run-name` (which carries the run id, so its
 * `workflow_run` deliveries have it in `display_title`) is matched instead (workflow-run.ts).
 *
 * The call goes through the GitHub client built for the agent: an agent without
 * `dispatch_workflow` is refused before anything is sent (and the refusal is an event of the
 * run); without credentials the call is a dry run, recorded as an event.
 */

/** GitHub caps the inputs of one dispatch at 65,535 characters in total. */
const MAX_TASK_CHARS = 60_000;

export interface GitHubActionsExecutorDeps {
  github: GitHubClientFactory;
  env?: NodeJS.ProcessEnv;
}

export class GitHubActionsExecutor implements Executor {
  readonly type = 'github-actions' as const;

  constructor(private readonly deps: GitHubActionsExecutorDeps) {}

  /** The agent's configured workflow, in its configured repository or else the run's. */
  destination(agent: RegisteredAgent, run: Readonly<Run>): { repo?: string; workflow?: string } {
    const ex = agent.executor;
    if (ex.type !== 'github-actions') return {};
    const repo = ex.repo ?? run.subject.repo;
    return { workflow: ex.workflow, ...(repo ? { repo } : {}) };
  }

  async dispatch(req: DispatchRequest): Promise<DispatchOutcome> {
    const ex = req.agent.executor;
    if (ex.type !== 'github-actions')
      throw new NoExecutorError(`agent ${req.agent.name} has no GitHub Actions executor`, {
        runId: req.run.id,
      });
    const { repo } = this.destination(req.agent, req.run);
    if (!repo)
      throw new NoExecutorError(`run ${req.run.id} has no repository to dispatch ${ex.workflow} in`, {
        runId: req.run.id,
      });
    const env = this.deps.env ?? process.env;
    const payload = payloadFor(req, env);
    let task = JSON.stringify(payload);
    if (task.length > MAX_TASK_CHARS) {
      const { title, id, item, run } = payload as Record<string, unknown>;
      task = JSON.stringify({ run, item, id, title, truncated: true });
    }
    // Extra inputs from config are plain strings, scrubbed like everything else we send.
    const extra = scrub(ex.inputs ?? {}, secretValues(env)) as Record<string, string>;
    const inputs: Record<string, string> = { ...extra, switchyard_run: req.run.id, task };
    const client = this.deps.github.forAgent(
      { name: req.agent.name, permissions: req.agent.permissions },
      { runId: req.run.id, node: req.node, sink: req.emit },
    );
    // Find-or-create: a crash between a dispatch and its journal entry re-runs this step; a run
    // of the workflow already titled with this run and work item means the dispatch happened.
    const existing = await findDispatched(client, repo, req.run, req.item);
    if (existing !== undefined) {
      req.emit({
        type: 'agent.dispatch.found',
        node: req.node,
        by: req.agent.name,
        detail: { item: req.item, workflowRunId: existing, repo },
      });
      return {
        executor: 'github-actions',
        dryRun: false,
        details: { repo, workflow: ex.workflow, ref: ex.ref, workflowRunId: existing },
      };
    }
    const run = await client.dispatchWorkflow(repo, ex.workflow, ex.ref, inputs);
    return {
      executor: 'github-actions',
      dryRun: client.dryRun,
      details: {
        repo,
        workflow: ex.workflow,
        ref: ex.ref,
        runDetails: run.details,
        ...(run.workflowRunId !== undefined ? { workflowRunId: run.workflowRunId } : {}),
        ...(run.htmlUrl ? { workflowRunUrl: run.htmlUrl } : {}),
        ...(run.runUrl ? { runUrl: run.runUrl } : {}),
      },
    };
  }
}

/** Pages of 100 read at most when looking for an earlier dispatch (1,000 dispatched runs). */
const FIND_PAGES = 10;
/** Clock skew allowed between our run's creation time and GitHub's `created_at`. */
const FIND_SKEW_MS = 10 * 60_000;

/**
 * The id of a dispatched workflow run whose title (its `run-name`, examples/switchyard-agent.yml)
 * names both this run and this work item, if GitHub lists one. Work item ids are unique per try,
 * so a match is this very dispatch. Skipped in dry-run and for agents without `read`.
 *
 * Every page of the repository's dispatched runs created since our run was (GitHub lists 30 a
 * page by default, 100 at most): one page of the repository's 50 newest runs lost an earlier dispatch
 * once 50 others had started after it, and the task was dispatched twice (the fault bench, with
 * 100 issues in one repository, showed it once its GitHub stand-in paged as GitHub does).
 */
async function findDispatched(
  client: GitHubClient,
  repo: string,
  run: { id: string; createdAt: string },
  item: string,
): Promise<number | undefined> {
  if (client.dryRun || !client.can('read')) return undefined;
  const since = new Date(Date.parse(run.createdAt) - FIND_SKEW_MS).toISOString().replace(/\.\d{3}Z$/, 'Z');
  for (let page = 1; page <= FIND_PAGES; page++) {
    const res = await client.request<{ workflow_runs?: Array<Record<string, unknown>> }>(
      'read',
      'GET /repos/{owner}/{repo}/actions/runs',
      {
        ...splitRepo(repo),
        event: 'workflow_dispatch',
        created: `>=${since}`,
        per_page: 100,
        page,
      },
    );
    if (res.dryRun) return undefined;
    const runs = res.data.workflow_runs ?? [];
    const hit = runs.find((w) => {
      const words = typeof w.display_title === 'string' ? w.display_title.split(/\s+/) : [];
      return words.includes(run.id) && words.includes(item);
    });
    if (typeof hit?.id === 'number') return hit.id;
    if (runs.length < 100) return undefined;
  }
  return undefined;
}
