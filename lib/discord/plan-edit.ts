import type { APIInteractionResponse } from 'discord-api-types/v10';
import { type Plan, type PlanTask, planVersion } from '../agents/planner.ts';
import type { Run } from '../engine/types.ts';
import { encodeButtonId } from './custom-id.ts';
import { DiscordInputError } from './errors.ts';
import { ComponentType, ResponseType, TextInputStyle } from './protocol.ts';
import { truncate } from './render.ts';

/**
 * "Approve with edits": the Edit plan button opens a modal holding the task list as text, one
 * `agent: title` per line; its submission becomes a new plan version that the gate binds to.
 * The text is data: it can only name agents the routing decision chose, and the limits hold.
 */

export const PLAN_TEXT_INPUT = 'tasks';
/** Discord's limit for a text input's value. */
const TEXT_MAX = 4000;
export const PLAN_EDIT_LIMITS = { maxTasks: 20, maxTitle: 200 } as const;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

export function isPlan(v: unknown): v is Plan {
  return isObj(v) && Array.isArray(v.tasks) && typeof v.version === 'string';
}

/** The plan as the modal shows it. */
export function planText(plan: Plan): string {
  return truncate(plan.tasks.map((t) => `${t.agent}: ${t.title}`).join('\n'), TEXT_MAX);
}

/**
 * Agents a task may name: those the plan step recorded for the routing decision (`planAgents`),
 * else (runs planned before it did) the agents the plan already uses.
 */
export function editableAgents(run: Run): string[] {
  const recorded = run.data.planAgents;
  if (Array.isArray(recorded) && recorded.every((a) => typeof a === 'string')) return recorded as string[];
  const plan = run.data.plan;
  return isPlan(plan) ? [...new Set(plan.tasks.map((t) => t.agent))] : [];
}

export function planEditModal(run: Run, plan: Plan): APIInteractionResponse {
  return {
    type: ResponseType.Modal,
    data: {
      custom_id: encodeButtonId({ action: 'edit', runId: run.id, binding: plan.version }),
      title: truncate(`Edit plan ${plan.version}`, 45),
      components: [
        {
          type: ComponentType.ActionRow,
          components: [
            {
              type: ComponentType.TextInput,
              custom_id: PLAN_TEXT_INPUT,
              style: TextInputStyle.Paragraph,
              label: 'Tasks: one "agent: title" per line',
              value: planText(plan),
              required: true,
              max_length: TEXT_MAX,
            },
          ],
        },
      ],
    },
  } as APIInteractionResponse;
}

/** Parse the modal's text into tasks; every problem is reported as `line N: reason`. */
export function parsePlanText(
  text: string,
  agents: readonly string[],
  limits: { maxTasks: number; maxTitle: number } = PLAN_EDIT_LIMITS,
): Array<{ agent: string; title: string }> {
  const problems: string[] = [];
  const tasks: Array<{ agent: string; title: string }> = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const m = /^([\w.-]{1,64})\s*:\s*(.+)$/.exec(line);
    if (!m) {
      problems.push(`line ${i + 1}: write it as "agent: title"`);
      return;
    }
    const [, agent, title] = m as unknown as [string, string, string];
    if (!agents.includes(agent)) {
      problems.push(
        `line ${i + 1}: ${truncate(agent, 64)} is not an agent of this run (${agents.join(', ') || 'none'})`,
      );
      return;
    }
    if (title.length > limits.maxTitle) {
      problems.push(`line ${i + 1}: the title is longer than ${limits.maxTitle} characters`);
      return;
    }
    tasks.push({ agent, title });
  });
  if (tasks.length === 0 && problems.length === 0) problems.push('the plan needs at least one task');
  if (tasks.length > limits.maxTasks) problems.push(`at most ${limits.maxTasks} tasks (got ${tasks.length})`);
  if (problems.length > 0)
    throw new DiscordInputError(`the plan was not changed: ${problems.slice(0, 5).join('; ')}`);
  return tasks;
}

/** The edited plan: a task keeping its title keeps its files and done mark; the version is recomputed. */
export function editPlan(
  plan: Plan,
  tasks: ReadonlyArray<{ agent: string; title: string }>,
  by: string,
  at: string,
): Plan & { edited: { by: string; at: string; from: string } } {
  const before = new Map(plan.tasks.map((t) => [t.title, t]));
  const next: PlanTask[] = tasks.map((t, i) => {
    const old = before.get(t.title);
    return {
      id: `t${i + 1}`,
      title: t.title,
      agent: t.agent,
      files: old?.files ?? [],
      done: old?.done ?? false,
    };
  });
  const files = [...new Set(next.flatMap((t) => t.files))];
  const version = planVersion({ tasks: next, files: files.length > 0 ? files : plan.files });
  return {
    ...plan,
    tasks: next,
    files: files.length > 0 ? files : plan.files,
    version,
    edited: { by, at, from: plan.version },
  };
}
