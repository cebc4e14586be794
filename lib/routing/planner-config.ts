import { z } from 'zod';

/**
 * Config `planner` (central only: a repository overlay may not set it, see REPO_CONFIG_KEYS).
 * `deterministic` (the default) copies the checklist and needs no AWS account;
 * `bedrock` asks a model on Amazon Bedrock through the Converse API (lib/agents/bedrock-planner.ts).
 */

/** USD per million tokens. */
export const PriceSchema = z.strictObject({
  inputPerMTok: z.number().min(0),
  outputPerMTok: z.number().min(0),
});
export type Price = z.output<typeof PriceSchema>;

/**
 * On-demand prices of the Anthropic and Amazon Nova models on Bedrock (us-east-1, USD per million
 * tokens), keyed by model id prefix. An inference profile's region prefix (`us.`, `eu.`, ...) is
 * ignored when looking a model up; `planner.prices` in config adds or overrides entries.
 */
export const DEFAULT_PRICES: Record<string, Price> = {
  'anthropic.claude-3-haiku': { inputPerMTok: 0.25, outputPerMTok: 1.25 },
  'anthropic.claude-3-5-haiku': { inputPerMTok: 0.8, outputPerMTok: 4 },
  'anthropic.claude-haiku-4-5': { inputPerMTok: 1, outputPerMTok: 5 },
  'anthropic.claude-3-sonnet': { inputPerMTok: 3, outputPerMTok: 15 },
  'anthropic.claude-3-5-sonnet': { inputPerMTok: 3, outputPerMTok: 15 },
  'anthropic.claude-3-7-sonnet': { inputPerMTok: 3, outputPerMTok: 15 },
  'anthropic.claude-sonnet-4': { inputPerMTok: 3, outputPerMTok: 15 },
  'anthropic.claude-3-opus': { inputPerMTok: 15, outputPerMTok: 75 },
  'anthropic.claude-opus-4': { inputPerMTok: 15, outputPerMTok: 75 },
  'amazon.nova-micro': { inputPerMTok: 0.035, outputPerMTok: 0.14 },
  'amazon.nova-lite': { inputPerMTok: 0.06, outputPerMTok: 0.24 },
  'amazon.nova-pro': { inputPerMTok: 0.8, outputPerMTok: 3.2 },
  'amazon.nova-premier': { inputPerMTok: 2.5, outputPerMTok: 12.5 },
};

/** A Bedrock model id (`anthropic.claude-3-5-haiku-20241022-v1:0`) or inference profile id (`us.amazon.nova-lite-v1:0`). */
const MODEL_ID = /^[a-z0-9][a-z0-9.-]*\.[a-z0-9][\w.-]*(?::[\w.-]+)?$/i;

export const PlannerConfigSchema = z
  .strictObject({
    provider: z.enum(['deterministic', 'bedrock']).default('deterministic'),
    model: z.string().regex(MODEL_ID, 'model must be a Bedrock model id or inference profile id').optional(),
    /** Tasks beyond this are dropped (and the drop recorded). */
    maxTasks: z.int().min(1).max(50).default(12),
    maxOutputTokens: z.int().min(256).max(32_000).default(4096),
    /** Bedrock region; defaults to the function's region (AWS_REGION). */
    region: z
      .string()
      .regex(/^[a-z]{2}(?:-[a-z]+)+-\d$/, 'not an AWS region')
      .optional(),
    /** Price table entries (model id prefix → USD per million tokens), merged over the defaults. */
    prices: z.record(z.string().min(1), PriceSchema).default({}),
  })
  .refine((p) => p.provider !== 'bedrock' || p.model !== undefined, {
    message: 'planner.provider bedrock needs planner.model',
    path: ['model'],
  });

export type PlannerConfig = z.output<typeof PlannerConfigSchema>;
export const DEFAULT_PLANNER_CONFIG: PlannerConfig = PlannerConfigSchema.parse({});

/** The price of `model`: the longest matching prefix in config, then in the defaults. */
export function priceOf(model: string, extra: Record<string, Price> = {}): Price | undefined {
  const base = model.replace(/^(?:us|eu|apac|us-gov|ca|jp|au|global)\./, '');
  for (const table of [extra, DEFAULT_PRICES]) {
    const key = Object.keys(table)
      .filter((k) => base.startsWith(k) || model.startsWith(k))
      .sort((a, b) => b.length - a.length)[0];
    if (key) return table[key];
  }
  return undefined;
}

/** Estimated cost in USD, rounded to a millionth of a dollar; undefined when the model has no price. */
export function estimateCostUsd(
  model: string,
  usage: { inputTokens: number; outputTokens: number },
  extra: Record<string, Price> = {},
): number | undefined {
  const p = priceOf(model, extra);
  if (!p) return undefined;
  const usd = (usage.inputTokens * p.inputPerMTok + usage.outputTokens * p.outputPerMTok) / 1_000_000;
  return Math.round(usd * 1_000_000) / 1_000_000;
}
