import { z } from 'zod';

/**
 * The fields each handled GitHub event must carry, as one zod schema per event (issue 15).
 *
 * A signature proves who sent a delivery, not that its shape is sane. The webhook core checks a
 * verified payload against its event's schema before anything else looks at it (hooks, guards,
 * routing, `startRun`): a delivery that lacks a field we depend on later is answered 2xx,
 * logged and counted, and goes no further. So a missing issue number, a bad `full_name` or a
 * nameless label can never start a run, nor surface as a crash deep in a node.
 *
 * Only what Switchyard depends on is checked; every other field stays free, so GitHub may add
 * or drop fields without us refusing real deliveries. Events not listed here are not inspected
 * (the hub ignores them, or a hook reads them defensively). Every example of
 * `@octokit/webhooks-examples` passes (test/github/corpus.test.ts).
 */

/** GitHub ids and issue/PR numbers: positive integers that survive JSON as exact doubles. */
const positiveInt = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

/**
 * `owner/name`. Owners are letters, digits and hyphens (enterprise-managed users add `_`);
 * repository names add `.`, but are never `.` or `..` (a path segment, not a name).
 */
export const REPO_FULL_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\/(?!\.{1,2}$)[A-Za-z0-9_.-]{1,100}$/;

const repository = z.object({
  full_name: z.string().regex(REPO_FULL_NAME, 'expected owner/name'),
});
/** Policies match senders (`*[bot]` may not start automation): a sender we cannot name fails closed. */
const sender = z.object({ login: z.string().min(1) });
const action = z.string().min(1);
/** GitHub caps label names at 50 characters; a label with no visible name cannot match a rule. */
const label = z.object({ name: z.string().trim().min(1).max(100) });
const numbered = z.object({ number: positiveInt });
const withId = z.object({ id: positiveInt });

/** Issue and PR events: everything that can start an issue-pipeline run. */
const issueEvent = z.object({ action, repository, sender, issue: numbered });
const pullEvent = z.object({ action, repository, sender, pull_request: numbered });

const SCHEMAS: Record<string, z.ZodType> = {
  issues: issueEvent,
  pull_request: pullEvent,
  pull_request_review: pullEvent,
  pull_request_review_comment: pullEvent,
  issue_comment: issueEvent.extend({ comment: z.object({ id: positiveInt, body: z.string() }) }),
  // The CI guard and the agents' hooks: a run id and the workflow it belongs to.
  workflow_run: z.object({
    action,
    repository,
    workflow_run: z.object({ id: positiveInt, workflow_id: positiveInt }),
  }),
  check_suite: z.object({ action, repository, check_suite: withId }),
  check_run: z.object({ action, repository, check_run: withId }),
  // Config refresh: the branch pushed to.
  push: z.object({ repository, ref: z.string().startsWith('refs/') }),
};

/** `labeled` / `unlabeled` mean the label just added or removed: its name is required too. */
const LABEL_ACTIONS = new Set(['labeled', 'unlabeled']);
const LABEL_SCHEMAS: Record<string, z.ZodType> = {
  issues: issueEvent.extend({ label }),
  pull_request: pullEvent.extend({ label }),
};

/** The events whose payloads are checked (the rest pass through unchecked). */
export const CHECKED_EVENTS: readonly string[] = Object.keys(SCHEMAS);

export type PayloadCheck = { ok: true } | { ok: false; field: string; reason: string };

function schemaFor(name: string, payload: Record<string, unknown>): z.ZodType | undefined {
  const labelled = typeof payload.action === 'string' && LABEL_ACTIONS.has(payload.action);
  return (labelled ? LABEL_SCHEMAS[name] : undefined) ?? SCHEMAS[name];
}

/** Check a verified, parsed payload against its event's schema. The first problem is named. */
export function checkPayload(name: string, payload: Record<string, unknown>): PayloadCheck {
  const schema = schemaFor(name, payload);
  if (!schema) return { ok: true };
  const res = schema.safeParse(payload);
  if (res.success) return { ok: true };
  const issue = res.error.issues[0];
  const field = issue?.path.map(String).join('.') || '(payload)';
  return { ok: false, field, reason: `${field}: ${issue?.message ?? 'invalid'}` };
}
