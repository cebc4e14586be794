import type { StartRunInput, StartRunResult } from '../engine/engine.ts';
import type { RunStore } from '../engine/ports.ts';
import type { NodeResult, StepContext } from '../engine/workflow.ts';
import { type GitHubClientFactory, isOwnComment } from '../github/client.ts';
import { codeSpan, escapeGitHubInline, linkSuffix } from '../github/escape.ts';
import type { AgentIdentity } from '../github/permissions.ts';
import { AgentRegistry } from '../routing/agents.ts';
import type { SwitchyardConfig } from '../routing/config.ts';
import { COVERAGE } from '../workflows/coverage.ts';
import { CoverageError } from './errors.ts';

/**
 * The coverage agent (built in). A `check_run` completes with a coverage figure in its output
 * (title, summary or text: `Coverage: 84.1%`, an istanbul `All files | 84.1 |` row, a coverage.py
 * `TOTAL ... 84%` line), or under a configured check name (`coverage.checkName`, default: any
 * check whose name mentions coverage):
 *
 * - on the default branch (no pull request), the figure becomes the branch's baseline (KV);
 * - on a pull request, a `coverage-report` run compares it with its base branch's baseline and
 *   posts the change as ONE comment on the PR, found by a hidden marker and edited in place.
 *
 * The agent acts as the config's `coverage` agent (it needs `read` and `comment`).
 */

export const COVERAGE_GROUP = 'coverage';
const MARKER = '<!-- switchyard:coverage -->';

export interface CoverageInput {
  repo: string;
  check: string;
  sha: string;
  pct: number;
  pr: number;
  base: string;
  url?: string;
}

interface Baseline {
  pct: number;
  sha: string;
  at: string;
}

const baseKey = (repo: string, branch: string) => `base#${repo}#${branch}`;
const commentKey = (repo: string, pr: number) => `comment#${repo}#${pr}`;

const PATTERNS: RegExp[] = [
  /All files\s*\|\s*(\d{1,3}(?:\.\d+)?)\s*\|/i,
  /^TOTAL\s+(?:\d+\s+)+(\d{1,3}(?:\.\d+)?)%\s*$/m,
  /\b(?:total\s+)?coverage\b[^\d\n%]{0,30}(\d{1,3}(?:\.\d+)?)\s?%/i,
  /\b(?:lines|statements)\b[^\d\n%]{0,30}(\d{1,3}(?:\.\d+)?)\s?%/i,
];

/** The coverage percentage in a check's output text, if there is one. */
export function parseCoverage(text: string): number | undefined {
  for (const re of PATTERNS) {
    const m = re.exec(text);
    const v = m?.[1] ? Number(m[1]) : Number.NaN;
    if (Number.isFinite(v) && v >= 0 && v <= 100) return v;
  }
  return undefined;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

/** The configured coverage check name, if any. */
function checkName(config: SwitchyardConfig): string | undefined {
  return config.coverage?.checkName;
}

export type CoverageTrigger =
  | { kind: 'pull_request'; input: CoverageInput }
  | { kind: 'baseline'; repo: string; branch: string; baseline: Baseline };

/** What a `check_run` delivery means for the coverage agent (no I/O). */
export function coverageTrigger(
  payload: unknown,
  config: SwitchyardConfig,
  now: Date,
): CoverageTrigger | undefined {
  if (!isObj(payload) || payload.action !== 'completed' || !isObj(payload.check_run)) return undefined;
  const cr = payload.check_run;
  const repo = isObj(payload.repository) ? str(payload.repository.full_name) : undefined;
  const name = str(cr.name) ?? '';
  const sha = str(cr.head_sha);
  if (!repo || !sha) return undefined;
  const wanted = checkName(config);
  const named = wanted ? name === wanted : /coverage/i.test(name);
  const out = isObj(cr.output) ? cr.output : {};
  const pct = parseCoverage([str(out.title), str(out.summary), str(out.text)].filter(Boolean).join('\n'));
  if (pct === undefined || (wanted && !named)) return undefined;
  const prs = Array.isArray(cr.pull_requests) ? cr.pull_requests.filter(isObj) : [];
  const pr = prs[0];
  const url = str(cr.html_url) ?? str(cr.details_url);
  if (pr && typeof pr.number === 'number') {
    const base = isObj(pr.base) ? str(pr.base.ref) : undefined;
    const defaultBranch = isObj(payload.repository) ? str(payload.repository.default_branch) : undefined;
    return {
      kind: 'pull_request',
      input: {
        repo,
        check: name,
        sha,
        pct,
        pr: pr.number,
        base: base ?? defaultBranch ?? 'main',
        ...(url ? { url } : {}),
      },
    };
  }
  const branch = isObj(cr.check_suite) ? str(cr.check_suite.head_branch) : undefined;
  const defaultBranch = isObj(payload.repository) ? str(payload.repository.default_branch) : undefined;
  if (!branch || branch !== defaultBranch) return undefined;
  return { kind: 'baseline', repo, branch, baseline: { pct, sha, at: now.toISOString() } };
}

export interface CoverageStartDeps {
  engine: { startRun(input: StartRunInput): Promise<StartRunResult> };
  store: RunStore;
  config: { central: SwitchyardConfig };
  now?: () => Date;
}

/** From the webhook: record a baseline, or start a coverage-report run for a pull request. */
export async function startCoverage(
  deps: CoverageStartDeps,
  delivery: { id: string; payload: unknown },
): Promise<{ status: 'coverage-baseline' | 'coverage-report'; runId?: string; pct: number } | undefined> {
  const config = deps.config.central;
  if (new AgentRegistry(config).byType('coverage').length === 0) return undefined;
  const trigger = coverageTrigger(delivery.payload, config, deps.now?.() ?? new Date());
  if (!trigger) return undefined;
  if (trigger.kind === 'baseline') {
    const key = baseKey(trigger.repo, trigger.branch);
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await deps.store.kvGet<Baseline>(COVERAGE_GROUP, key);
      if (cur && cur.value.at > trigger.baseline.at) break;
      if (
        await deps.store.kvPut(COVERAGE_GROUP, key, trigger.baseline, { expectedVersion: cur?.version ?? 0 })
      )
        break;
    }
    return { status: 'coverage-baseline', pct: trigger.baseline.pct };
  }
  const input = trigger.input;
  const res = await deps.engine.startRun({
    workflow: COVERAGE,
    subject: { repo: input.repo, issue: input.pr, key: `${input.repo}#${input.pr}#coverage` },
    trigger: { source: 'github', event: 'check_run.completed', delivery: delivery.id },
    input: { coverage: input },
    idempotencyKey: `github:${delivery.id}:${COVERAGE}`,
    concurrency: 'supersede',
  });
  return { status: 'coverage-report', runId: res.run.id, pct: input.pct };
}

// -------------------------------------------------------------------------- the nodes

export interface CoverageDeps {
  github: GitHubClientFactory;
  store: RunStore;
  config: { central: SwitchyardConfig };
}

type Ctx = Pick<StepContext<unknown>, 'run' | 'node' | 'emit' | 'effect'>;

function identity(config: SwitchyardConfig): AgentIdentity {
  const registry = new AgentRegistry(config);
  const agent = registry.byType('coverage')[0];
  return agent ? registry.identity(agent.name) : { name: 'coverage', permissions: ['read'] };
}

const fmt = (n: number) => `${Math.round(n * 100) / 100}%`;

export function renderCoverage(input: CoverageInput, baseline: Baseline | undefined): string {
  // The check's name, branch, sha and details URL come from the check run (any app or workflow
  // sets them): escaped, code spans and an https-only link (issue #9, defect 11).
  const base = codeSpan(input.base);
  let change = `no baseline for ${base} yet`;
  if (baseline) {
    const delta = Math.round((input.pct - baseline.pct) * 100) / 100;
    const arrow = delta > 0 ? '▲' : delta < 0 ? '▼' : '=';
    change = `${arrow} ${delta > 0 ? '+' : ''}${delta} pp vs ${base} ${fmt(baseline.pct)}`;
  }
  return [
    MARKER,
    `### Coverage: ${fmt(input.pct)} (${change})`,
    '',
    `Check **${escapeGitHubInline(input.check)}** on ${codeSpan(input.sha.slice(0, 12))}${linkSuffix('details', input.url)}.`,
    '',
    '_Posted by the Switchyard coverage agent; this comment is edited in place._',
  ].join('\n');
}

export function createCoverageServices(deps: CoverageDeps): {
  compare(ctx: Ctx): Promise<NodeResult>;
  comment(ctx: Ctx): Promise<NodeResult>;
} {
  const inputOf = (ctx: Ctx): CoverageInput => {
    const input = ctx.run.data.coverage as CoverageInput | undefined;
    if (!input?.repo) throw new CoverageError('coverage run without its input', { runId: ctx.run.id });
    return input;
  };
  return {
    async compare(ctx) {
      const input = inputOf(ctx);
      const baseline = (await deps.store.kvGet<Baseline>(COVERAGE_GROUP, baseKey(input.repo, input.base)))
        ?.value;
      const delta = baseline ? Math.round((input.pct - baseline.pct) * 100) / 100 : null;
      ctx.emit({
        type: 'coverage.compared',
        node: ctx.node,
        by: identity(deps.config.central).name,
        detail: { pct: input.pct, base: input.base, basePct: baseline?.pct ?? null, delta },
      });
      return { output: { coverageBaseline: baseline ?? null, coverageDelta: delta } };
    },

    async comment(ctx) {
      const input = inputOf(ctx);
      const baseline = (ctx.run.data.coverageBaseline as Baseline | null | undefined) ?? undefined;
      const body = renderCoverage(input, baseline);
      const client = deps.github.forAgent(identity(deps.config.central), {
        runId: ctx.run.id,
        node: ctx.node,
        sink: ctx.emit,
      });
      const key = commentKey(input.repo, input.pr);
      let id = (await deps.store.kvGet<{ id: number }>(COVERAGE_GROUP, key))?.value.id;
      if (id === undefined) {
        const comments = await client.listIssueComments(input.repo, input.pr);
        // Only our own marked comment (issue #9, defect 10).
        const self = comments?.length ? await deps.github.selfLogin() : undefined;
        id = comments?.find((c) => isOwnComment(c, MARKER, self))?.id;
      }
      if (id !== undefined) {
        await client.updateComment(input.repo, id, body);
      } else {
        const created = await (ctx.effect
          ? ctx.effect(
              'create-comment',
              async () => (await client.createComment(input.repo, input.pr, body)) ?? null,
            )
          : client.createComment(input.repo, input.pr, body));
        id = created?.id;
      }
      if (id !== undefined) await deps.store.kvPut(COVERAGE_GROUP, key, { id });
      return { output: { coverageComment: id ?? null } };
    },
  };
}
