import { createHash } from 'node:crypto';
import type { AgentType } from '../routing/config.ts';

/**
 * The planner turns an issue into a plan: a checklist of tasks, each with the agent that will do
 * it. The default planner is deterministic (same issue, same plan, same version); `Planner` is
 * the seam for an LLM planner. The plan's `version` is a content hash, and the approval gate
 * binds to it: approving version A does not approve a plan that has since become B.
 */

export interface PlanTask {
  /** Stable within a plan: `t1`, `t2`, ... */
  id: string;
  title: string;
  agent: string;
  /** Files the task mentions. */
  files: string[];
  /** Already ticked in the issue's task list. */
  done: boolean;
  /** Why the planner chose this task (a model planner's rationale; not part of the version). */
  rationale?: string;
}

export interface PlanDraft {
  title: string;
  summary: string;
  tasks: PlanTask[];
  /** Every file the issue references. */
  files: string[];
}

export interface PlanUsage {
  inputTokens: number;
  outputTokens: number;
}

/** A change the planner made to what the model answered (recorded, and shown with the plan). */
export interface PlanAdjustment {
  kind: 'reassigned' | 'dropped' | 'over-limit' | 'file-refused';
  /** The task as the model numbered it (1-based). */
  task?: number;
  detail: string;
}

/** What a planner may add to its draft: who planned, what it cost, what was corrected, why it fell back. */
export interface PlanMeta {
  /** `deterministic`, `bedrock:<model>`; defaults to the planner's name. */
  planner?: string;
  usage?: PlanUsage;
  /** Estimated from the price table in config; absent when the model has no price. */
  costUsd?: number;
  adjustments?: PlanAdjustment[];
  /** Set when a model planner gave up and the deterministic plan was used instead. */
  fallback?: { from: string; reason: string; error?: string };
}

export type PlanOutcome = PlanDraft & PlanMeta;

export interface Plan extends PlanOutcome {
  /** Content hash of the tasks and files: what an approval binds to. */
  version: string;
  planner: string;
  repo: string;
  issue: number;
  /** The issue text it was made from (lib/agents/replan.ts); absent in plans made before. */
  source?: { hash: string; updatedAt?: string };
}

export interface PlanInput {
  repo: string;
  issue: number;
  title: string;
  body: string;
  labels: string[];
  /** Agents the routing decision selected (name and type); tasks are assigned among them. */
  agents: Array<{ name: string; type: AgentType; description?: string }>;
  /** Context for model planners (read only when the planner asks for it): the last comments, oldest first. */
  comments?: Array<{ author: string; body: string }>;
  /** The repository's instructions for agents (AGENTS.md, CLAUDE.md, ...) from the default branch. */
  instructions?: Array<{ path: string; text: string }>;
  /** The repository's top-level entries (directories end with `/`). */
  tree?: string[];
}

export interface Planner {
  name: string;
  /** Read comments, agent instructions and the top-level tree before planning (model planners). */
  wantsContext?: boolean;
  plan(input: PlanInput): Promise<PlanOutcome>;
}

/** `- [ ] task`, `* [x] task`, `1. [ ] task` (GitHub task lists). */
const TASK = /^\s{0,6}(?:[-*+]|\d+[.)])\s+\[([ xX])\]\s+(.+?)\s*$/;
/** A path in backticks: has a slash or a file extension, no spaces. */
const BACKTICK = /`([^`\s]+)`/g;
const BLOB_LINK = /https?:\/\/[^\s/]+\/[\w.-]+\/[\w.-]+\/(?:blob|tree)\/[^\s/]+\/([^\s)#?]+)/g;

function looksLikePath(s: string): boolean {
  if (s.length > 200 || s.startsWith('-') || /[(){}<>=;,'"]/.test(s)) return false;
  if (/^https?:/.test(s)) return false;
  return s.includes('/') ? /[\w-]/.test(s) : /^[\w.-]+\.[A-Za-z0-9]{1,8}$/.test(s);
}

export function referencedFiles(text: string): string[] {
  const files = new Set<string>();
  for (const m of text.matchAll(BACKTICK))
    if (m[1] && looksLikePath(m[1])) files.add(m[1].replace(/^\.\//, ''));
  for (const m of text.matchAll(BLOB_LINK)) if (m[1]) files.add(decodeURIComponent(m[1]));
  return [...files];
}

export function taskList(body: string): Array<{ title: string; done: boolean }> {
  const out: Array<{ title: string; done: boolean }> = [];
  let fence = false;
  for (const line of body.split(/\r?\n/)) {
    if (/^\s*(```|~~~)/.test(line)) fence = !fence;
    if (fence) continue;
    const m = TASK.exec(line);
    if (m?.[2]) out.push({ title: m[2], done: m[1] !== ' ' });
  }
  return out;
}

/** Words that point a task at an agent type, strongest first. */
const AFFINITY: Array<{ type: AgentType; words: RegExp }> = [
  { type: 'coverage', words: /\b(tests?|testing|coverage|spec|unit test|e2e)\b/i },
  { type: 'ci-triage', words: /\b(ci|pipeline|workflow|flaky|build (?:is )?(?:red|failing|broken))\b/i },
  { type: 'reviewer', words: /\b(review|audit)\b/i },
];

const WORKERS: AgentType[] = ['coder', 'coverage', 'ci-triage', 'reviewer', 'custom'];

export function assign(title: string, agents: PlanInput['agents']): string {
  for (const a of AFFINITY) {
    if (!a.words.test(title)) continue;
    const hit = agents.find((x) => x.type === a.type);
    if (hit) return hit.name;
  }
  const coder = agents.find((x) => x.type === 'coder');
  if (coder) return coder.name;
  const worker = agents.find((x) => WORKERS.includes(x.type));
  if (worker) return worker.name;
  // No executing agent was selected: the task is for a person, and the plan says so.
  return 'human';
}

function summaryOf(body: string, title: string): string {
  const para = body
    .split(/\r?\n\s*\r?\n/)
    .map((p) => p.replace(/<!--[\s\S]*?-->/g, '').trim())
    .find((p) => p !== '' && !p.startsWith('#') && !TASK.test(p.split('\n')[0] ?? ''));
  const text = (para ?? title).replace(/\s+/g, ' ');
  return text.length > 280 ? `${text.slice(0, 277)}...` : text;
}

export const deterministicPlanner: Planner = {
  name: 'deterministic',
  async plan(input) {
    const files = referencedFiles(`${input.title}\n${input.body}`);
    const items = taskList(input.body);
    const drafts =
      items.length > 0 ? items : [{ title: input.title.trim() || `Issue #${input.issue}`, done: false }];
    const tasks: PlanTask[] = drafts.map((t, i) => ({
      id: `t${i + 1}`,
      title: t.title,
      agent: assign(t.title, input.agents),
      // A single task derived from the title covers every file the issue names.
      files: items.length > 0 ? referencedFiles(t.title) : files,
      done: t.done,
    }));
    // A selected coverage agent with nothing to do gets the tests for the rest of the work.
    const coverage = input.agents.find((a) => a.type === 'coverage');
    const open = tasks.filter((t) => !t.done && t.agent !== coverage?.name);
    if (coverage && !tasks.some((t) => t.agent === coverage.name) && open.length > 0) {
      const touched = [...new Set(open.flatMap((t) => t.files))];
      tasks.push({
        id: `t${tasks.length + 1}`,
        title: `Cover ${touched.length > 0 ? touched.map((f) => `\`${f}\``).join(', ') : open.map((t) => t.id).join(', ')} with tests`,
        agent: coverage.name,
        files: touched,
        done: false,
      });
    }
    return { title: input.title, summary: summaryOf(input.body, input.title), tasks, files };
  },
};

/** `p` + 12 hex of SHA-256 over the canonical tasks and files (not the summary: rewording prose does not void an approval). */
export function planVersion(draft: Pick<PlanDraft, 'tasks' | 'files'>): string {
  const canonical = JSON.stringify({
    tasks: draft.tasks.map((t) => [t.id, t.title, t.agent, [...t.files].sort(), t.done]),
    files: [...draft.files].sort(),
  });
  return `p${createHash('sha256').update(canonical).digest('hex').slice(0, 12)}`;
}
