import type { BudgetCaps } from '../routing/budgets-config.ts';

/**
 * Spend accounting of one run (issue #11, "Spend caps"), kept in run data `budget`:
 *
 * - `spent.usd` adds up the planner's estimated cost (each plan, re-plans included) and every
 *   agent result's `usage.costUsd`; `spent.dispatches` counts agent dispatches; wall clock runs
 *   from the run's start.
 * - Before a dispatch, `budgetCheck` says whether it would pass a cap: the dispatch count, the
 *   hours, or the USD (already at the cap, or the next dispatch expected to pass it at the mean
 *   cost of the agent dispatches so far). The execute node then opens a `budget` gate; approving
 *   raises the cap (recorded in `raises`), rejecting stops the run. A run never spends past its
 *   cap silently.
 *
 * The shape is also what the console reads: `{ spent: { usd, dispatches }, cap: { usd, dispatches } }`.
 */

export interface BudgetGate {
  binding: string;
  reason: string;
  dimensions: BudgetDimension[];
  openedAt: string;
  expiresAt: string;
}

export type BudgetDimension = 'usd' | 'dispatches' | 'wallClockHours';

export interface BudgetState {
  cap: BudgetCaps;
  /** The caps the run started with: an approval without an amount raises by these. */
  base: BudgetCaps;
  spent: {
    usd: number;
    plannerUsd: number;
    agentUsd: number;
    dispatches: number;
    agentCostedDispatches: number;
  };
  startedAt: string;
  /** Plan versions whose cost is counted (a re-run step does not count one twice). */
  plans: string[];
  raises: Array<{ by: string; at: string; from: BudgetCaps; to: BudgetCaps }>;
  gates: number;
  gate?: BudgetGate;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const round = (usd: number) => Math.round(usd * 1e6) / 1e6;

/** The run's budget from run data, or a fresh one with these caps. */
export function budgetState(raw: unknown, caps: BudgetCaps, startedAt: string): BudgetState {
  const b = isObj(raw) ? raw : {};
  const spent = isObj(b.spent) ? b.spent : {};
  const cap = isObj(b.cap) && num(b.cap.usd) !== undefined ? (b.cap as unknown as BudgetCaps) : caps;
  const base = isObj(b.base) && num(b.base.usd) !== undefined ? (b.base as unknown as BudgetCaps) : cap;
  return {
    cap: { ...cap },
    base: { ...base },
    spent: {
      usd: num(spent.usd) ?? 0,
      plannerUsd: num(spent.plannerUsd) ?? 0,
      agentUsd: num(spent.agentUsd) ?? 0,
      dispatches: num(spent.dispatches) ?? 0,
      agentCostedDispatches: num(spent.agentCostedDispatches) ?? 0,
    },
    startedAt: typeof b.startedAt === 'string' ? b.startedAt : startedAt,
    plans: Array.isArray(b.plans) ? b.plans.filter((p): p is string => typeof p === 'string') : [],
    raises: Array.isArray(b.raises) ? (b.raises as BudgetState['raises']) : [],
    gates: num(b.gates) ?? 0,
    ...(isObj(b.gate) ? { gate: b.gate as unknown as BudgetGate } : {}),
  };
}

/** The plan step's budget: the existing one plus this plan's estimated cost (once per version). */
export function withPlanCost(raw: unknown, plan: { version?: unknown; costUsd?: unknown }): Obj | undefined {
  const cost = num(plan.costUsd);
  const version = typeof plan.version === 'string' ? plan.version : undefined;
  if (cost === undefined || version === undefined) return isObj(raw) ? raw : undefined;
  const b = isObj(raw) ? raw : {};
  const spent = isObj(b.spent) ? b.spent : {};
  const plans = Array.isArray(b.plans) ? b.plans : [];
  if (plans.includes(version)) return b;
  return {
    ...b,
    spent: {
      ...spent,
      usd: round((num(spent.usd) ?? 0) + cost),
      plannerUsd: round((num(spent.plannerUsd) ?? 0) + cost),
    },
    plans: [...plans, version],
  };
}

/** An agent result's reported cost (`usage.costUsd`, from the OIDC callback). */
export function addAgentUsage(b: BudgetState, result: Obj): number | undefined {
  const usage = isObj(result.usage) ? result.usage : undefined;
  const cost = num(usage?.costUsd);
  if (cost === undefined || cost < 0) return undefined;
  b.spent.usd = round(b.spent.usd + cost);
  b.spent.agentUsd = round(b.spent.agentUsd + cost);
  b.spent.agentCostedDispatches++;
  return cost;
}

export const usd = (v: number): string => (Number.isInteger(v) ? `$${v}` : `$${v.toFixed(2)}`);
const hours = (v: number): string => `${Math.round(v * 10) / 10} h`;

/** Would one more dispatch pass a cap? The dimensions reached and the gate's message. */
export function budgetCheck(
  b: BudgetState,
  now: Date,
): { dimensions: BudgetDimension[]; reason: string } | undefined {
  const parts: string[] = [];
  const dimensions: BudgetDimension[] = [];
  const { spent, cap } = b;
  const mean = spent.agentCostedDispatches > 0 ? spent.agentUsd / spent.agentCostedDispatches : 0;
  if (spent.usd >= cap.usd || spent.usd + mean > cap.usd) {
    dimensions.push('usd');
    parts.push(
      `${usd(spent.usd)} of ${usd(cap.usd)}${spent.usd < cap.usd ? ` (the next dispatch is expected to cost about ${usd(mean)})` : ''}`,
    );
  }
  if (spent.dispatches + 1 > cap.dispatches) {
    dimensions.push('dispatches');
    parts.push(`${spent.dispatches} of ${cap.dispatches} dispatches`);
  }
  const elapsed = (now.getTime() - Date.parse(b.startedAt)) / 3_600_000;
  if (elapsed >= cap.wallClockHours) {
    dimensions.push('wallClockHours');
    parts.push(`wall clock ${hours(elapsed)} of ${hours(cap.wallClockHours)}`);
  }
  return dimensions.length > 0 ? { dimensions, reason: `budget reached: ${parts.join(', ')}` } : undefined;
}

/**
 * An approved budget gate: the USD cap becomes `amount` when given (the CLI's `--budget`), and
 * every other cap that was reached grows by the run's starting cap. Returns the raise recorded.
 */
export function raiseBudget(
  b: BudgetState,
  gate: BudgetGate,
  approval: { by: string; at: string; budget?: number },
  now: Date,
): BudgetState['raises'][number] {
  const from = { ...b.cap };
  const to = { ...b.cap };
  if (approval.budget !== undefined) to.usd = approval.budget;
  else if (gate.dimensions.includes('usd')) to.usd = round(Math.max(b.cap.usd, b.spent.usd) + b.base.usd);
  if (gate.dimensions.includes('dispatches')) to.dispatches = b.spent.dispatches + b.base.dispatches;
  if (gate.dimensions.includes('wallClockHours')) {
    const elapsed = (now.getTime() - Date.parse(b.startedAt)) / 3_600_000;
    to.wallClockHours = Math.ceil(Math.max(elapsed, b.cap.wallClockHours) + b.base.wallClockHours);
  }
  b.cap = to;
  const raise = { by: approval.by, at: approval.at, from, to };
  b.raises = [...b.raises, raise];
  return raise;
}

/** `$1.20 of $10 · 3 of 12 dispatches` (plus the hours when a wall-clock cap was raised), or undefined. */
export function budgetLine(raw: unknown): string | undefined {
  if (!isObj(raw) || !isObj(raw.spent) || !isObj(raw.cap)) return undefined;
  const s = raw.spent;
  const c = raw.cap;
  const parts: string[] = [];
  const su = num(s.usd) ?? 0;
  const cu = num(c.usd);
  if (cu !== undefined) parts.push(`${usd(su)} of ${usd(cu)}`);
  const cd = num(c.dispatches);
  if (cd !== undefined) parts.push(`${num(s.dispatches) ?? 0} of ${cd} dispatches`);
  const ch = num(c.wallClockHours);
  if (ch !== undefined) parts.push(`${hours(ch)} wall clock`);
  const raises = Array.isArray(raw.raises) ? raw.raises.length : 0;
  if (raises > 0) parts.push(`raised ${raises}×`);
  return parts.length > 0 ? parts.join(' · ') : undefined;
}
