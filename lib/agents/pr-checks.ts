import type { RunStore } from '../engine/ports.ts';
import type { GitHubClient } from '../github/client.ts';
import { isSwitchyardAgentRun, splitRepo } from '../github/client.ts';
import type { Delivery } from '../github/webhook.ts';
import { collectFailedJobs, type FailedJob } from './ci-triage.ts';
import { type DeliveryResult, deliverResult, type HubEngine } from './results.ts';
import { AgentWorkQueue } from './work-queue.ts';

/**
 * Following an agent's pull request to green. A task whose agent reports a PR waits (an `agent`
 * gate with correlation `checks:<run>.<task>`) while CI runs on the PR's head SHA. Each
 * `check_suite` or `workflow_run` completion on the task's branch (`switchyard/<run>/<task>`)
 * nudges the run; the execute node then reads the verdict from the API (the PR's head SHA, the
 * workflow runs and check suites on it), so a missed or reordered delivery never decides anything.
 */

export type ChecksState = 'pending' | 'green' | 'red';

export interface ChecksVerdict {
  state: ChecksState;
  headSha: string;
  /** Completed and still running, for the status comment. */
  counts: { total: number; pending: number; failed: number };
  /** Red: the failing jobs and their first error lines (the CI-triage summary). */
  failing?: FailedJob[];
  summary?: string;
}

const RED = new Set(['failure', 'timed_out', 'startup_failure', 'action_required', 'cancelled', 'stale']);
const BRANCH = /^switchyard\/(r[0-9a-z]{8,40})\/([A-Za-z0-9_-]{1,64})$/;

export const checksCorrelation = (runId: string, task: string) => `checks:${runId}.${task}`;

/** The run and task a `switchyard/<run>/<task>` branch belongs to. */
export function branchTask(branch: string | undefined | null): { runId: string; task: string } | undefined {
  const m = branch ? BRANCH.exec(branch) : null;
  return m ? { runId: m[1]!, task: m[2]! } : undefined;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

/** The CI-triage summary as the coding agent's `lastFailure`: job names and first error lines. */
export function failureSummary(
  sha: string,
  runs: Array<{ name: string; url?: string }>,
  jobs: FailedJob[],
): string {
  const lines = [`CI failed on ${sha.slice(0, 7)}: ${runs.map((r) => r.name).join(', ') || 'checks'}`];
  for (const j of jobs) {
    lines.push(`- ${j.name} (${j.conclusion ?? 'failed'})${j.url ? ` ${j.url}` : ''}`);
    for (const e of j.errors.slice(0, 5)) lines.push(`    ${e}`);
  }
  return lines.join('\n').slice(0, 2_000);
}

/** The checks on a pull request's head, read from the API (`undefined` in dry-run). */
export async function readChecks(
  client: GitHubClient,
  repo: string,
  pr: number,
): Promise<ChecksVerdict | undefined> {
  const pull = await client.request<{ head?: { sha?: string } }>(
    'read',
    'GET /repos/{owner}/{repo}/pulls/{pull_number}',
    {
      ...splitRepo(repo),
      pull_number: pr,
    },
  );
  if (pull.dryRun) return undefined;
  const headSha = str(pull.data.head?.sha) ?? '';
  const runsRes = await client.request<{ workflow_runs?: Obj[] }>(
    'read',
    'GET /repos/{owner}/{repo}/actions/runs',
    {
      ...splitRepo(repo),
      head_sha: headSha,
      per_page: 100,
    },
  );
  const runs = (runsRes.data?.workflow_runs ?? []).filter(
    (r) =>
      str(r.head_sha) === headSha &&
      !isSwitchyardAgentRun({ event: str(r.event), display_title: str(r.display_title) }),
  );
  // Workflow runs appear as GitHub Actions check suites too; other apps' suites count on their own.
  // A suite with no check runs is an app that never ran anything (GitHub leaves it queued).
  const suites = ((await client.listCheckSuites(repo, headSha)) ?? []).filter(
    (s) =>
      s.app?.slug !== 'github-actions' &&
      (s as { latest_check_runs_count?: number }).latest_check_runs_count !== 0,
  );
  const all = [
    ...runs.map((r) => ({ status: str(r.status), conclusion: str(r.conclusion) ?? null })),
    ...suites.map((s) => ({ status: s.status ?? undefined, conclusion: s.conclusion })),
  ];
  const pending = all.filter((c) => c.status !== 'completed').length;
  const failed = all.filter((c) => c.status === 'completed' && c.conclusion && RED.has(c.conclusion)).length;
  const counts = { total: all.length, pending, failed };
  // No CI yet (it starts a moment after the push): wait for the first completion to nudge us.
  if (all.length === 0 || pending > 0) return { state: 'pending', headSha, counts };
  if (failed === 0) return { state: 'green', headSha, counts };
  const redRuns = runs.filter((r) => RED.has(str(r.conclusion) ?? ''));
  const failing: FailedJob[] = [];
  for (const r of redRuns.slice(0, 3)) {
    if (typeof r.id !== 'number') continue;
    failing.push(...((await collectFailedJobs(client, repo, r.id)) ?? []));
  }
  const named = redRuns.map((r) => ({
    name: str(r.name) ?? 'workflow',
    ...(str(r.html_url) ? { url: str(r.html_url)! } : {}),
  }));
  return { state: 'red', headSha, counts, failing, summary: failureSummary(headSha, named, failing) };
}

/**
 * A `check_suite` or `workflow_run` completion on a task branch: nudge the run that waits for
 * its checks (or park the nudge while the run is mid-step). Not for us: `undefined`.
 */
export async function nudgePrChecks(
  engine: HubEngine & { readonly store: RunStore },
  d: Pick<Delivery, 'name' | 'payload'>,
  now: () => Date = () => new Date(),
): Promise<{ runId: string; task: string; outcome: DeliveryResult } | undefined> {
  const p = d.payload as Obj;
  if (p.action !== 'completed') return undefined;
  const source =
    d.name === 'check_suite' ? p.check_suite : d.name === 'workflow_run' ? p.workflow_run : undefined;
  if (!isObj(source)) return undefined;
  const ids = branchTask(str(source.head_branch));
  if (!ids) return undefined;
  const correlation = checksCorrelation(ids.runId, ids.task);
  const outcome = await deliverResult(
    engine,
    new AgentWorkQueue(engine.store, { now }),
    {
      runId: ids.runId,
      item: correlation,
      correlation,
      ok: true,
      by: 'github',
      payload: { checks: d.name, headSha: str(source.head_sha) ?? null },
    },
    now,
  );
  return { ...ids, outcome };
}
