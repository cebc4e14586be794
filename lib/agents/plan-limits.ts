import { AgentError } from './errors.ts';
import type { PlanDraft } from './planner.ts';

/**
 * The size budget of a plan (issue #9, defect 3). A plan is run data, rewritten on every
 * transition and shown in the status comment: a 64 KB checklist once made 2,001 tasks, and 8,192
 * tasks made a plan that could never be committed. Text is shortened (at a word, never mid-line);
 * a checklist with more tasks than a run can carry fails the plan step with a clear reason.
 */
export const PLAN_LIMITS = {
  tasks: 100,
  titleChars: 300,
  filesPerTask: 20,
  files: 200,
  pathChars: 200,
  summaryChars: 1_000,
} as const;

/** The issue asks for more than a plan can hold; splitting it is the fix, not a retry. */
export class PlanTooLargeError extends AgentError {
  override name = 'PlanTooLargeError';
  override readonly retryable = false;
}

/** `text` cut to `max` characters at a word boundary, with an ellipsis when cut. */
export function shorten(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (flat.length <= max) return flat;
  const cut = flat.slice(0, max - 1);
  const atWord = cut.lastIndexOf(' ');
  return `${(atWord > max / 2 ? cut.slice(0, atWord) : cut).trimEnd()}…`;
}

/** The draft within PLAN_LIMITS, or PlanTooLargeError when it has too many tasks. */
export function limitPlan<T extends PlanDraft>(draft: T): T {
  if (draft.tasks.length > PLAN_LIMITS.tasks) {
    throw new PlanTooLargeError(
      `the plan has ${draft.tasks.length} tasks; a run holds at most ${PLAN_LIMITS.tasks}: split the issue`,
    );
  }
  const paths = (files: string[], max: number) =>
    files.filter((f) => f.length <= PLAN_LIMITS.pathChars).slice(0, max);
  return {
    ...draft,
    title: shorten(draft.title, PLAN_LIMITS.titleChars),
    summary: shorten(draft.summary, PLAN_LIMITS.summaryChars),
    tasks: draft.tasks.map((t) => ({
      ...t,
      title: shorten(t.title, PLAN_LIMITS.titleChars),
      files: paths(t.files, PLAN_LIMITS.filesPerTask),
    })),
    files: paths(draft.files, PLAN_LIMITS.files),
  };
}
