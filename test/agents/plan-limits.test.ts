import { describe, expect, it } from 'vitest';
import { limitPlan, PLAN_LIMITS, PlanTooLargeError } from '../../lib/agents/plan-limits.ts';
import { deterministicPlanner, type PlanInput } from '../../lib/agents/planner.ts';

const input = (body: string): PlanInput => ({
  repo: 'acme/widget',
  issue: 5,
  title: 'Big checklist',
  body,
  labels: [],
  agents: [{ name: 'coder', type: 'coder' }],
});

describe('the plan size budget', () => {
  it('fails a checklist of 2,001 tasks with a reason that says to split the issue', async () => {
    const body = Array.from({ length: 2_001 }, (_, i) => `- [ ] task ${i}`).join('\n');
    const draft = await deterministicPlanner.plan(input(body));

    expect(() => limitPlan(draft)).toThrow(PlanTooLargeError);
    expect(() => limitPlan(draft)).toThrow(/2001 tasks; a run holds at most 100: split the issue/);
  });

  it('keeps a plan of the maximum size whole', async () => {
    const body = Array.from({ length: PLAN_LIMITS.tasks }, (_, i) => `- [ ] task ${i}`).join('\n');
    const limited = limitPlan(await deterministicPlanner.plan(input(body)));

    expect(limited.tasks).toHaveLength(PLAN_LIMITS.tasks);
  });

  it('shortens a long task title at a word, with an ellipsis', async () => {
    const long = `${'word '.repeat(200)}end`;
    const limited = limitPlan(await deterministicPlanner.plan(input(`- [ ] ${long}`)));

    const title = limited.tasks[0]!.title;
    expect(title.length).toBeLessThanOrEqual(PLAN_LIMITS.titleChars);
    expect(title).toMatch(/word…$/);
  });

  it('caps the files of a task and drops over-long paths', async () => {
    const files = Array.from({ length: 30 }, (_, i) => `\`src/f${i}.ts\``).join(' ');
    const limited = limitPlan(
      await deterministicPlanner.plan(input(`- [ ] touch ${files} \`src/${'d/'.repeat(150)}x.ts\``)),
    );

    expect(limited.tasks[0]!.files).toHaveLength(PLAN_LIMITS.filesPerTask);
    expect(limited.files.every((f) => f.length <= PLAN_LIMITS.pathChars)).toBe(true);
  });
});
