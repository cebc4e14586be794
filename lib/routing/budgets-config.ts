import { z } from 'zod';

/**
 * Config `budgets`: spend caps per run (issue #11). Central, and a repository overlay may only
 * lower a cap (`budgetRaises` names any field it tries to raise, and the overlay is refused).
 * When a dispatch would pass a cap the run waits at a `budget` gate (lib/agents/budget.ts).
 */
export const PerRunBudgetSchema = z.strictObject({
  /** Estimated USD: the planner's cost plus every agent's reported `usage.costUsd`. */
  usd: z.number().positive().max(1_000_000).default(10),
  /** Agent dispatches (tasks, fix attempts and consultations). */
  dispatches: z.int().min(1).max(10_000).default(12),
  /** Hours since the run started. */
  wallClockHours: z
    .number()
    .positive()
    .max(24 * 365)
    .default(24),
});

export const BudgetsSchema = z.strictObject({
  perRun: PerRunBudgetSchema.default(PerRunBudgetSchema.parse({})),
});

export type BudgetCaps = z.output<typeof PerRunBudgetSchema>;
export const DEFAULT_BUDGETS = BudgetsSchema.parse({});

/** The overlay's shape: every cap optional (compared with the central one after parsing). */
export const BudgetsOverlaySchema = z.strictObject({ perRun: PerRunBudgetSchema.partial().optional() });

/** The `budgets.perRun` fields an overlay sets above the central cap, with a reason each. */
export function budgetRaises(
  centralRaw: unknown,
  overlayRaw: unknown,
): Array<{ field: keyof BudgetCaps; message: string }> {
  const central = BudgetsSchema.safeParse(centralRaw ?? {});
  const over = BudgetsOverlaySchema.safeParse(overlayRaw ?? {});
  if (!central.success || !over.success) return [];
  const out: Array<{ field: keyof BudgetCaps; message: string }> = [];
  for (const [field, value] of Object.entries(over.data.perRun ?? {}) as Array<[keyof BudgetCaps, number]>) {
    const cap = central.data.perRun[field];
    if (value > cap)
      out.push({
        field,
        message: `budgets.perRun.${field} ${value} would raise the central cap ${cap}: a repository may only lower it`,
      });
  }
  return out;
}
