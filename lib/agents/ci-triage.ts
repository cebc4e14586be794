import { isRetryable } from '../common/errors.ts';
import type { StartRunInput, StartRunResult } from '../engine/engine.ts';
import type { RunStore } from '../engine/ports.ts';
import type { NodeResult, StepContext } from '../engine/workflow.ts';
import { type GitHubClient, type GitHubClientFactory, splitRepo } from '../github/client.ts';
import { GitHubApiError } from '../github/errors.ts';
import { codeSpan, escapeGitHubInline, linkSuffix } from '../github/escape.ts';
import type { NormalizedEvent } from '../github/events.ts';
import type { AgentIdentity } from '../github/permissions.ts';
import { AgentRegistry } from '../routing/agents.ts';
import type { SwitchyardConfig } from '../routing/config.ts';
import { guardBranch, recordCiSignal } from '../routing/guards.ts';
import { CI_TRIAGE } from '../workflows/ci-triage.ts';
import { AgentError, CiTriageBusyError } from './errors.ts';
import { isAgentWorkflowRun } from './workflow-run.ts';

/**
 * The CI-triage agent (built in). When a workflow run fails on a repository's default branch:
 *
 * 1. the webhook trips the CI guard (lib/routing/guards.ts `recordCiSignal`, the same record the
 *    router reads), and starts a `ci-triage` run;
 * 2. `collect` reads the run's failed jobs (`GET /repos/{o}/{r}/actions/runs/{id}/jobs`) and the
 *    first error lines of each job's log (`GET /repos/{o}/{r}/actions/jobs/{id}/logs`, which
 *    redirects to a plain-text file);
 * 3. `post` writes the summary to ONE open issue per failing branch, labelled `ci-failure`
 *    (found or created, then edited in place), with a section per failing workflow.
 *
 * When the same workflow later succeeds on the branch, its section is removed; when no section
 * is left, the issue says so and is closed. An issue (rather than a commit comment) is where
 * people look for "main is red", it collects the failures of several workflows, and it is the
 * obvious place to say that it is green again.
 *
 * The agent acts as the config's `ci-triage` agent; it needs `read` and `edit_issue` (to create
 * and edit the issue). Without credentials every call is a dry run, recorded in the run.
 */

export const CI_FAILURE_LABEL = 'ci-failure';
export const CI_TRIAGE_GROUP = 'ci-triage';
const MAX_JOBS = 5;
const MAX_ERROR_LINES = 12;
const RED = new Set(['failure', 'timed_out', 'startup_failure']);
/** A claim to create the branch's issue older than this was a crashed creator's. */
const CLAIM_MS = 2 * 60_000;

export interface CiTriageInput {
  repo: string;
  branch: string;
  mode: 'failed' | 'resolved';
  workflow: { runId: number; name: string; url?: string; sha?: string; conclusion: string | null };
}

export interface FailedJob {
  id: number;
  name: string;
  conclusion: string | null;
  url?: string;
  errors: string[];
}

interface Section {
  name: string;
  markdown: string;
  at: string;
}

interface IssueRecord {
  number?: number;
  /** The run holding the right to create the issue, and since when. */
  creating?: { runId: string; at: string };
  sections: Record<string, Section>;
}

const issueKey = (repo: string, branch: string) => `issue#${repo}#${branch}`;
/**
 * The issue's hidden marker. A branch name may contain `>` or `--` (git allows both): `<` and `>`
 * are percent-encoded so the name cannot end the HTML comment; other names keep their marker.
 */
const marker = (branch: string) =>
  `<!-- switchyard:ci-failure:${branch.replace(/[<>]/g, (c) => (c === '<' ? '%3C' : '%3E'))} -->`;

// ------------------------------------------------------------------------------ logs

const TIMESTAMP = /^\uFEFF?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z\s?/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colour codes in CI logs
const ANSI = /\u001b\[[0-9;]*[A-Za-z]/g;
const ERROR_LINE =
  /##\[error\]|\berror\b|\bERR!|\bFAIL(?:ED)?\b|\bfailed\b|Traceback|\bException\b|AssertionError|✗|✕|×|panicked/i;
const NOISE = /^(##\[(group|endgroup)\]|\s*$)|\b0 errors?\b|error-?log|--fail-fast|continue-on-error/i;

/** The first lines of a job log that look like errors (timestamps and colours stripped). */
export function errorLines(log: string, max = MAX_ERROR_LINES): string[] {
  const lines = log.split(/\r?\n/).map((l) => l.replace(TIMESTAMP, '').replace(ANSI, '').trimEnd());
  const hits: string[] = [];
  for (const line of lines) {
    if (NOISE.test(line) || !ERROR_LINE.test(line)) continue;
    const clean = line.replace(/^##\[error\]/, '').trim();
    if (clean === '' || hits.includes(clean)) continue;
    hits.push(clean.length > 300 ? `${clean.slice(0, 297)}...` : clean);
    if (hits.length >= max) break;
  }
  if (hits.length > 0) return hits;
  // Nothing looked like an error: the end of the log is the next best thing.
  return lines.filter((l) => l.trim() !== '').slice(-Math.min(5, max));
}

/**
 * The failed jobs of a workflow run with the first error lines of each log (at most MAX_JOBS):
 * the CI-triage summary, also handed to a coding agent whose pull request went red. `null` in
 * dry-run.
 */
export async function collectFailedJobs(
  client: GitHubClient,
  repoName: string,
  runId: number,
): Promise<FailedJob[] | null> {
  const { owner, repo } = splitRepo(repoName);
  const res = await client.request<{ jobs?: Array<Record<string, unknown>> }>(
    'read',
    'GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs',
    { owner, repo, run_id: runId, filter: 'latest', per_page: 100 },
  );
  if (res.dryRun) return null;
  const failed = (res.data.jobs ?? []).filter(
    (j) => typeof j.conclusion === 'string' && RED.has(j.conclusion),
  );
  const jobs: FailedJob[] = [];
  for (const j of failed.slice(0, MAX_JOBS)) {
    const id = j.id as number;
    let errors: string[] = [];
    try {
      const log = await client.request<unknown>(
        'read',
        'GET /repos/{owner}/{repo}/actions/jobs/{job_id}/logs',
        {
          owner,
          repo,
          job_id: id,
        },
      );
      const text =
        typeof log.data === 'string'
          ? log.data
          : log.data instanceof ArrayBuffer
            ? Buffer.from(log.data).toString('utf8')
            : '';
      errors = errorLines(text);
    } catch (err) {
      // Logs expire (90 days by default) or are not readable: the job is still worth listing.
      if (!(err instanceof GitHubApiError) || isRetryable(err)) throw err;
      errors = [`(log not available: ${err.status})`];
    }
    jobs.push({
      id,
      name: typeof j.name === 'string' ? j.name : `job ${id}`,
      conclusion: typeof j.conclusion === 'string' ? j.conclusion : null,
      ...(typeof j.html_url === 'string' ? { url: j.html_url } : {}),
      errors,
    });
  }
  return jobs;
}

// ----------------------------------------------------------------------- the trigger

/** Whether a delivery is a completed workflow run on the repository's default branch worth triaging. */
export function ciTriageInput(event: NormalizedEvent, config: SwitchyardConfig): CiTriageInput | undefined {
  const ci = event.ci;
  const repo = event.repo;
  if (event.name !== 'workflow_run' || event.action !== 'completed' || !ci || !repo || ci.runId === undefined)
    return undefined;
  if (isAgentWorkflowRun(event)) return undefined;
  if (ci.trigger === 'pull_request' || ci.trigger === 'pull_request_target') return undefined;
  const branch = guardBranch(config, repo.defaultBranch) ?? repo.defaultBranch;
  if (!branch || ci.branch !== branch) return undefined;
  if (config.guards.ci.ignore.includes(ci.name)) return undefined;
  const red = ci.conclusion !== null && RED.has(ci.conclusion);
  if (!red && ci.conclusion !== 'success') return undefined;
  return {
    repo: repo.fullName,
    branch,
    mode: red ? 'failed' : 'resolved',
    workflow: {
      runId: ci.runId,
      name: ci.name,
      conclusion: ci.conclusion,
      ...(ci.url ? { url: ci.url } : {}),
      ...(ci.sha ? { sha: ci.sha } : {}),
    },
  };
}

export interface CiTriageStartDeps {
  engine: { startRun(input: StartRunInput): Promise<StartRunResult> };
  store: RunStore;
  config: { central: SwitchyardConfig };
  now?: () => Date;
}

/**
 * From the webhook: trip (or clear) the CI guard for this result, and start a ci-triage run
 * when there is something to say: a failure, or a success of a workflow whose failure is on the
 * branch's issue. Undefined when the delivery is not for CI triage (the ingress goes on as usual).
 */
export async function startCiTriage(
  deps: CiTriageStartDeps,
  event: NormalizedEvent,
): Promise<{ runId: string; outcome: string; mode: string; guard: string } | undefined> {
  const config = deps.config.central;
  const registry = new AgentRegistry(config);
  if (registry.byType('ci-triage').length === 0) return undefined;
  const input = ciTriageInput(event, config);
  if (!input) return undefined;
  if (input.mode === 'resolved') {
    const rec = (await deps.store.kvGet<IssueRecord>(CI_TRIAGE_GROUP, issueKey(input.repo, input.branch)))
      ?.value;
    if (!rec?.sections[input.workflow.name]) return undefined;
  }
  const guard = await recordCiSignal(deps.store, event, config, deps.now?.() ?? new Date());
  const res = await deps.engine.startRun({
    workflow: CI_TRIAGE,
    subject: { repo: input.repo, key: `${input.repo}#ci#${input.branch}#${input.workflow.name}` },
    trigger: {
      source: 'github',
      ...(event.sender ? { actor: event.sender.login } : {}),
      event: 'workflow_run.completed',
      delivery: event.delivery,
    },
    input: { ciTriage: input },
    idempotencyKey: `github:${event.delivery}:${CI_TRIAGE}`,
    // A newer result of the same workflow on the same branch replaces an older one in flight.
    concurrency: 'supersede',
  });
  return { runId: res.run.id, outcome: res.outcome, mode: input.mode, guard: guard.outcome };
}

// -------------------------------------------------------------------------- the nodes

export interface CiTriageDeps {
  github: GitHubClientFactory;
  store: RunStore;
  config: { central: SwitchyardConfig };
  now?: () => Date;
}

type Ctx = Pick<StepContext<unknown>, 'run' | 'node' | 'emit' | 'effect'>;

function inputOf(ctx: Ctx): CiTriageInput {
  const input = ctx.run.data.ciTriage as CiTriageInput | undefined;
  if (!input?.repo || !input.branch)
    throw new AgentError('ci-triage run without its input', { runId: ctx.run.id });
  return input;
}

function identity(config: SwitchyardConfig): AgentIdentity {
  const registry = new AgentRegistry(config);
  const agent = registry.byType('ci-triage')[0];
  return agent ? registry.identity(agent.name) : { name: 'ci-triage', permissions: ['read'] };
}

export function renderSection(input: CiTriageInput, jobs: FailedJob[] | undefined, at: string): string {
  // Workflow and job names, conclusions and URLs come from the repository's workflow files and
  // GitHub's payloads: escaped, and links only to https (issue #9, defect 11). Log lines stay in a
  // fenced block, where nothing renders, and cannot close it.
  const wf = input.workflow;
  const head = `### ❌ ${escapeGitHubInline(wf.name)} — ${escapeGitHubInline(wf.conclusion ?? 'failed')}${linkSuffix('run', wf.url)}`;
  const lines = [head, '', `Commit ${codeSpan((wf.sha ?? 'unknown').slice(0, 12))}, seen ${at}.`, ''];
  if (jobs === undefined) {
    lines.push('_Jobs not read (dry-run: no GitHub credentials)._');
  } else if (jobs.length === 0) {
    lines.push('_No failed job was listed (the run may have failed to start)._');
  } else {
    for (const job of jobs) {
      lines.push(
        `**${escapeGitHubInline(job.name)}** — ${escapeGitHubInline(job.conclusion ?? 'failed')}${linkSuffix('log', job.url)}`,
      );
      if (job.errors.length > 0) lines.push('```', ...job.errors.map((e) => e.replace(/```/g, "'''")), '```');
      lines.push('');
    }
  }
  return lines.join('\n').trimEnd();
}

export function renderIssue(branch: string, sections: Record<string, Section>): string {
  const list = Object.values(sections).sort((a, b) => a.name.localeCompare(b.name));
  return [
    marker(branch),
    `CI is failing on ${codeSpan(branch)}. Switchyard blocks new automation on this repository until it is green again (CI guard).`,
    '',
    ...list.map((s) => `${s.markdown}\n`),
    '_Updated by the Switchyard CI-triage agent; this issue is edited in place and closed when CI is green._',
  ].join('\n');
}

export function createCiTriageServices(deps: CiTriageDeps): {
  collect(ctx: Ctx): Promise<NodeResult>;
  post(ctx: Ctx): Promise<NodeResult>;
} {
  const now = deps.now ?? (() => new Date());
  const clientFor = (ctx: Ctx): GitHubClient =>
    deps.github.forAgent(identity(deps.config.central), {
      runId: ctx.run.id,
      node: ctx.node,
      sink: ctx.emit,
    });

  async function collect(ctx: Ctx): Promise<NodeResult> {
    const input = inputOf(ctx);
    if (input.mode === 'resolved') return { output: { ciJobs: [] } };
    const jobs = await collectFailedJobs(clientFor(ctx), input.repo, input.workflow.runId);
    if (jobs === null) return { output: { ciJobs: null } };
    ctx.emit({
      type: 'ci-triage.collected',
      node: ctx.node,
      by: identity(deps.config.central).name,
      detail: {
        workflow: input.workflow.name,
        failedJobs: jobs.map((j) => ({ name: j.name, errors: j.errors.length })),
      },
    });
    return { output: { ciJobs: jobs } };
  }

  /** Conditional read-modify-write of the branch's record. */
  async function update(
    key: string,
    change: (r: IssueRecord) => IssueRecord | undefined,
  ): Promise<IssueRecord> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const cur = await deps.store.kvGet<IssueRecord>(CI_TRIAGE_GROUP, key);
      const base: IssueRecord = cur?.value ?? { sections: {} };
      const next = change(structuredClone(base));
      if (!next) return base;
      if (await deps.store.kvPut(CI_TRIAGE_GROUP, key, next, { expectedVersion: cur?.version ?? 0 }))
        return next;
    }
    throw new CiTriageBusyError('ci-triage issue record: too much write contention');
  }

  async function post(ctx: Ctx): Promise<NodeResult> {
    const input = inputOf(ctx);
    const at = now().toISOString();
    const key = issueKey(input.repo, input.branch);
    const jobs = ctx.run.data.ciJobs as FailedJob[] | null | undefined;
    const name = input.workflow.name;
    let record = await update(key, (r) => {
      if (input.mode === 'resolved') {
        if (!r.sections[name]) return undefined;
        delete r.sections[name];
        return r;
      }
      r.sections[name] = { name, markdown: renderSection(input, jobs ?? undefined, at), at };
      return r;
    });
    const client = clientFor(ctx);
    const { owner, repo } = splitRepo(input.repo);
    const body = renderIssue(input.branch, record.sections);
    const resolved = Object.keys(record.sections).length === 0;

    let number = record.number;
    let created = false;
    if (number === undefined && !resolved) {
      // Find one we made earlier (a crash between "created" and "recorded"), else create it.
      const open = await client.request<Array<{ number: number; body?: string | null }>>(
        'read',
        'GET /repos/{owner}/{repo}/issues',
        { owner, repo, labels: CI_FAILURE_LABEL, state: 'open', per_page: 100 },
      );
      if (open.dryRun) return { output: { ciIssue: null } };
      number = open.data.find((i) => i.body?.includes(marker(input.branch)))?.number;
      if (number === undefined) {
        const claimed = await update(key, (r) => {
          if (r.number !== undefined) return undefined;
          if (
            r.creating &&
            r.creating.runId !== ctx.run.id &&
            now().getTime() - Date.parse(r.creating.at) < CLAIM_MS
          )
            return undefined;
          r.creating = { runId: ctx.run.id, at };
          return r;
        });
        if (claimed.number !== undefined) {
          number = claimed.number;
        } else if (claimed.creating?.runId !== ctx.run.id) {
          throw new CiTriageBusyError(`another run is creating the ci-failure issue of ${input.branch}`, {
            runId: ctx.run.id,
          });
        } else {
          const made = await client.request<{ number: number }>(
            'edit_issue',
            'POST /repos/{owner}/{repo}/issues',
            {
              owner,
              repo,
              title: `CI failing on ${input.branch}`,
              body,
              labels: [CI_FAILURE_LABEL],
            },
          );
          number = made.data?.number;
          created = true;
        }
      }
      if (number !== undefined) {
        const n = number;
        record = await update(key, (r) => {
          r.number = n;
          delete r.creating;
          return r;
        });
      }
    }
    if (number === undefined) return { output: { ciIssue: null } };

    if (!created) {
      await client.request('edit_issue', 'PATCH /repos/{owner}/{repo}/issues/{issue_number}', {
        owner,
        repo,
        issue_number: number,
        body: resolved
          ? `${marker(input.branch)}\n✅ CI is green again on ${codeSpan(input.branch)}.`
          : renderIssue(input.branch, record.sections),
        state: resolved ? 'closed' : 'open',
      });
    }
    if (resolved) {
      // The next failure opens a new issue.
      await update(key, (r) => (Object.keys(r.sections).length === 0 ? { sections: {} } : undefined));
    }
    ctx.emit({
      type: resolved ? 'ci-triage.resolved' : 'ci-triage.posted',
      node: ctx.node,
      by: identity(deps.config.central).name,
      detail: { issue: number, branch: input.branch, workflow: name, created },
    });
    return { output: { ciIssue: number } };
  }

  return { collect, post };
}
