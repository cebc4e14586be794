import { z } from 'zod';

/**
 * Config `recovery`: how the sweeper recovers events GitHub never sends again.
 *
 * - `redelivery`: GitHub does not redeliver a failed webhook delivery by itself. The sweeper lists
 *   the hook's recent deliveries (the App's hook by default, or a repository's or an
 *   organisation's hook) and asks GitHub, once per delivery, to redeliver each failed one while
 *   it is still inside GitHub's 3-day window.
 * - `reconcile`: an agent's completion arrives only as a `workflow_run` webhook. A task still
 *   waiting `afterMinutes` after its dispatch has its Actions run looked up through the API, and
 *   a finished run resumes the task exactly as the webhook would have.
 */

/** GitHub keeps deliveries for redelivery for 3 days. */
export const GITHUB_REDELIVERY_WINDOW_HOURS = 72;

const HookSchema = z.union([
  z.literal('app'),
  z.strictObject({ repo: z.string().regex(/^[^/\s]+\/[^/\s]+$/, 'owner/name'), id: z.int().positive() }),
  z.strictObject({ org: z.string().min(1), id: z.int().positive() }),
]);

export type HookTarget = z.infer<typeof HookSchema>;

const RedeliverySchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** `app` (GET /app/hook/deliveries, App JWT), `{repo, id}` or `{org, id}` (a hook's id). */
  hook: HookSchema.default('app'),
  /** Failed deliveries younger than this are redelivered (at most GitHub's 72 hours). */
  windowHours: z
    .number()
    .positive()
    .max(GITHUB_REDELIVERY_WINDOW_HOURS)
    .default(GITHUB_REDELIVERY_WINDOW_HOURS),
  /** The sweep lists deliveries at most this often (the sweeper itself runs every minute). */
  everyMinutes: z.number().positive().default(5),
  /** Pages of 100 deliveries read per sweep, newest first. */
  maxPages: z.int().min(1).max(100).default(10),
  /** Redelivery requests per sweep; the rest wait for the next sweep. */
  maxPerSweep: z.int().min(1).max(1_000).default(100),
});

const ReconcileSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** A task waiting this long after its dispatch has its Actions run looked up. */
  afterMinutes: z.number().positive().default(10),
  /** One task is looked up again at most this often while it keeps waiting. */
  everyMinutes: z.number().positive().default(5),
  /** Lookups per sweep; the rest wait for the next sweep. */
  maxPerSweep: z.int().min(1).max(1_000).default(50),
});

export const RecoverySchema = z
  .strictObject({
    redelivery: RedeliverySchema.default(RedeliverySchema.parse({})),
    reconcile: ReconcileSchema.default(ReconcileSchema.parse({})),
  })
  .default({ redelivery: RedeliverySchema.parse({}), reconcile: ReconcileSchema.parse({}) });

export type RecoveryConfig = z.infer<typeof RecoverySchema>;
export type RedeliveryConfig = RecoveryConfig['redelivery'];
export type ReconcileConfig = RecoveryConfig['reconcile'];
