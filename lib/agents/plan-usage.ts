import type { Plan } from './planner.ts';

/**
 * One line saying who planned and what it cost, for the status comment, Discord `/status` and
 * `runs show`: `bedrock:<model> · 1843 in / 212 out tokens · ~$0.002322`. Plain text; callers
 * format it for their medium.
 */
export function plannerLine(plan: unknown): string | undefined {
  if (typeof plan !== 'object' || plan === null) return undefined;
  const p = plan as Partial<Plan>;
  if (typeof p.planner !== 'string') return undefined;
  const parts = [p.planner];
  const u = p.usage;
  if (u && typeof u.inputTokens === 'number' && typeof u.outputTokens === 'number')
    parts.push(`${u.inputTokens} in / ${u.outputTokens} out tokens`);
  if (typeof p.costUsd === 'number') parts.push(`~$${p.costUsd.toFixed(6).replace(/0{1,4}$/, '')}`);
  if (p.fallback) parts.push(`fell back from ${p.fallback.from} (${p.fallback.reason})`);
  return parts.join(' · ');
}
