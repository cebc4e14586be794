import { describe, expect, it } from 'vitest';
import {
  addAgentUsage,
  budgetCheck,
  budgetLine,
  budgetState,
  raiseBudget,
  withPlanCost,
} from '../../lib/agents/budget.ts';
import { budgetOf } from '../../lib/console/view.ts';
import type { Run } from '../../lib/engine/types.ts';
import { overlayConfig, parseConfigSource, readSource } from '../../lib/routing/config.ts';
import { ConfigError } from '../../lib/routing/errors.ts';

/** Spend caps (issue #11): the accounting, the gate decision, raising, and the overlay rule. */

const caps = { usd: 10, dispatches: 12, wallClockHours: 24 };
const start = '2026-11-30T10:00:00.000Z';
const at = (h: number) => new Date(Date.parse(start) + h * 3_600_000);

describe('budget accounting', () => {
  it('adds each plan version once, then agent usage, and counts toward the caps', () => {
    let raw = withPlanCost(undefined, { version: 'p1', costUsd: 0.25 });
    raw = withPlanCost(raw, { version: 'p1', costUsd: 0.25 }); // a re-run plan step
    raw = withPlanCost(raw, { version: 'p2', costUsd: 0.5 }); // a re-plan
    const b = budgetState(raw, caps, start);
    expect(b.spent).toMatchObject({ usd: 0.75, plannerUsd: 0.75, dispatches: 0 });
    expect(b.cap).toEqual(caps);
    b.spent.dispatches = 2;
    expect(addAgentUsage(b, { usage: { inputTokens: 1, outputTokens: 1, costUsd: 0.45 } })).toBe(0.45);
    expect(addAgentUsage(b, { summary: 'no usage reported' })).toBeUndefined();
    expect(b.spent).toMatchObject({ usd: 1.2, agentUsd: 0.45, dispatches: 2 });
    expect(budgetLine(b)).toBe('$1.20 of $10 · 2 of 12 dispatches · 24 h wall clock');
    // The console reads the same shape.
    expect(budgetOf({ data: { budget: b } } as unknown as Run)).toBe('$1.20 / $10.00, 2 / 12 dispatches');
    // Round trip through run data keeps everything.
    expect(
      budgetState(JSON.parse(JSON.stringify(b)), { usd: 1, dispatches: 1, wallClockHours: 1 }, 'x'),
    ).toEqual(b);
  });

  it('opens the gate before a dispatch would pass any cap, and names it', () => {
    const b = budgetState(undefined, caps, start);
    expect(budgetCheck(b, at(1))).toBeUndefined();
    b.spent.usd = 9.8;
    expect(budgetCheck(b, at(1))).toBeUndefined(); // no agent cost known yet: the next one may fit
    expect(addAgentUsage(b, { usage: { costUsd: 0 } })).toBe(0);
    b.spent.usd = 10;
    expect(budgetCheck(b, at(1))).toEqual({ dimensions: ['usd'], reason: 'budget reached: $10 of $10' });
    const c = budgetState(undefined, caps, start);
    c.spent.usd = 9.8;
    c.spent.agentUsd = 0.6;
    c.spent.agentCostedDispatches = 2;
    expect(budgetCheck(c, at(1))?.reason).toBe(
      'budget reached: $9.80 of $10 (the next dispatch is expected to cost about $0.30)',
    );
    const d = budgetState(undefined, caps, start);
    d.spent.dispatches = 12;
    expect(budgetCheck(d, at(1))).toEqual({
      dimensions: ['dispatches'],
      reason: 'budget reached: 12 of 12 dispatches',
    });
    d.spent.dispatches = 11;
    expect(budgetCheck(d, at(1))).toBeUndefined();
    expect(budgetCheck(d, at(24))).toEqual({
      dimensions: ['wallClockHours'],
      reason: 'budget reached: wall clock 24 h of 24 h',
    });
  });

  it('approval raises the cap: to the amount given, else by the starting cap; and records it', () => {
    const b = budgetState(undefined, caps, start);
    b.spent.usd = 10;
    b.spent.dispatches = 12;
    const gate = {
      binding: 'budget-1',
      reason: 'r',
      dimensions: ['usd', 'dispatches'] as const,
      openedAt: start,
      expiresAt: start,
    };
    const r1 = raiseBudget(
      b,
      { ...gate, dimensions: [...gate.dimensions] },
      { by: 'cli:ops', at: start, budget: 25 },
      at(1),
    );
    expect(r1).toMatchObject({
      by: 'cli:ops',
      from: caps,
      to: { usd: 25, dispatches: 24, wallClockHours: 24 },
    });
    expect(budgetCheck(b, at(1))).toBeUndefined();
    b.spent.usd = 25;
    raiseBudget(b, { ...gate, dimensions: ['usd'] }, { by: 'discord:1', at: start }, at(1));
    expect(b.cap.usd).toBe(35);
    expect(b.raises).toHaveLength(2);
    expect(budgetLine(b)).toContain('raised 2×');
  });
});

describe('budgets config', () => {
  const central = parseConfigSource(
    'budgets:\n  perRun: { usd: 10, dispatches: 12 }\n',
    'central.yml',
  ).source;
  const repo = (text: string) => readSource(text, 'acme/app:.github/switchyard.yml');

  it('defaults to $10, 12 dispatches and 24 hours per run', () => {
    const none = parseConfigSource('version: 1\n', 'c.yml').config;
    expect(none.budgets.perRun).toEqual({ usd: 10, dispatches: 12, wallClockHours: 24 });
  });

  it('lets a repository lower a cap', () => {
    const merged = overlayConfig(central, repo('budgets:\n  perRun:\n    usd: 2\n    wallClockHours: 4\n'));
    expect(merged.budgets.perRun).toEqual({ usd: 2, dispatches: 12, wallClockHours: 4 });
  });

  it('refuses a repository raising a cap, naming the file, line and reason', () => {
    try {
      overlayConfig(central, repo('budgets:\n  perRun:\n    usd: 2\n    dispatches: 50\n'));
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).issues.map((i) => `${i.file}:${i.line}: ${i.message}`)).toEqual([
        'acme/app:.github/switchyard.yml:4: budgets.perRun.dispatches 50 would raise the central cap 12: a repository may only lower it',
      ]);
    }
  });
});
