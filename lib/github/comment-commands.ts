import type { StartRunInput, StartRunResult } from '../engine/engine.ts';
import type { SwitchyardConfig } from '../routing/config.ts';
import type { DeliveryHook } from '../routing/deliveries.ts';
import { COMMENT_COMMAND } from '../workflows/comment-command.ts';
import type { Delivery, DeliveryOutcome } from './webhook.ts';

/**
 * Commands in GitHub comments, the habit Prow taught: `/approve [plan]`, `/reject [reason]`,
 * `/cancel [reason]`, `/retry`, `/hold` or `/unhold` as the first line of an issue or PR comment acts on that
 * subject's run. This half runs at ingress and only recognises: a new comment (never an edit or
 * a deletion), by a person (never a bot), starting with a command. Each becomes a small run, so
 * the worker confirms permission through the API, acts, and answers with a reaction.
 */
export const COMMENT_COMMANDS = ['approve', 'reject', 'cancel', 'retry', 'hold', 'unhold'] as const;
export type CommentCommandName = (typeof COMMENT_COMMANDS)[number];

export interface CommentCommand {
  command: CommentCommandName;
  /** The rest of the first line: a plan version for /approve, a reason for /reject and /cancel. */
  arg?: string;
}

/** The command on the first line, or undefined. The rest of the comment is never read. */
export function parseCommentCommand(body: string): CommentCommand | undefined {
  const first =
    body
      .replace(/^\uFEFF/, '')
      .split(/\r?\n/, 1)[0]
      ?.trim() ?? '';
  const m = /^\/([a-z]+)(?:\s+(.*))?$/.exec(first);
  if (!m || !(COMMENT_COMMANDS as readonly string[]).includes(m[1]!)) return undefined;
  const arg = m[2]?.trim().slice(0, 200);
  return { command: m[1] as CommentCommandName, ...(arg ? { arg } : {}) };
}

/** What the worker needs, taken from the payload once (small: it is written on every transition). */
export interface CommentCommandInput extends Record<string, unknown> {
  repo: string;
  issue: number;
  commentId: number;
  login: string;
  association: string;
  command: CommentCommandName;
  arg?: string;
  /** The association or login is on `github.commands.allow` (the API still has to confirm). */
  listed: boolean;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export function commentCommandOf(
  payload: unknown,
  allow: SwitchyardConfig['github']['commands']['allow'],
): CommentCommandInput | undefined {
  if (!isObj(payload) || payload.action !== 'created') return undefined;
  const comment = isObj(payload.comment) ? payload.comment : undefined;
  const issue = isObj(payload.issue) ? payload.issue : undefined;
  const repo = isObj(payload.repository) ? str(payload.repository.full_name) : undefined;
  const user = comment && isObj(comment.user) ? comment.user : undefined;
  const login = str(user?.login);
  if (
    !comment ||
    !issue ||
    !repo ||
    !login ||
    typeof comment.id !== 'number' ||
    typeof issue.number !== 'number'
  )
    return undefined;
  // Bots never act: their type says so, and so does the `[bot]` suffix apps' logins carry.
  if (user?.type === 'Bot' || /\[bot\]$/i.test(login) || comment.performed_via_github_app) return undefined;
  const parsed = parseCommentCommand(str(comment.body) ?? '');
  if (!parsed) return undefined;
  const association = str(comment.author_association) ?? 'NONE';
  const listed =
    (allow.associations as readonly string[]).includes(association) ||
    allow.users.some((u) => u.toLowerCase() === login.toLowerCase());
  return {
    repo,
    issue: issue.number,
    commentId: comment.id,
    login,
    association,
    ...parsed,
    listed,
  };
}

export interface CommentCommandHookDeps {
  engine: { startRun(input: StartRunInput): Promise<StartRunResult> };
  config: { central: SwitchyardConfig };
}

/** The ingress hook: `issue_comment` created with a command becomes a comment-command run. */
export function createCommentCommandHook(deps: CommentCommandHookDeps): DeliveryHook {
  return async (d: Delivery): Promise<DeliveryOutcome | undefined> => {
    if (d.name !== 'issue_comment') return undefined;
    const input = commentCommandOf(d.payload, deps.config.central.github.commands.allow);
    if (!input) return undefined;
    const res = await deps.engine.startRun({
      workflow: COMMENT_COMMAND,
      subject: {
        repo: input.repo,
        issue: input.issue,
        key: `${input.repo}#${input.issue}#comment#${input.commentId}`,
      },
      trigger: { source: 'github', actor: input.login, event: 'issue_comment.created', delivery: d.id },
      input,
      idempotencyKey: `github:${d.id}`,
      concurrency: 'attach',
    });
    return { statusCode: 202, body: { status: 'comment-command', command: input.command, run: res.run.id } };
  };
}
