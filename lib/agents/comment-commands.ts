import type { Signal } from '../engine/engine.ts';
import { InvalidSignalError, StaleApprovalError } from '../engine/errors.ts';
import type { RunStore } from '../engine/ports.ts';
import { isTerminal, type NewEvent, type Run } from '../engine/types.ts';
import type { NodeResult, StepContext } from '../engine/workflow.ts';
import { type GitHubClientFactory, splitRepo } from '../github/client.ts';
import type { CommentCommandInput } from '../github/comment-commands.ts';
import { COMMENT_COMMAND } from '../workflows/comment-command.ts';
import { heldBy, liftHold, setHold } from './gates.ts';

/**
 * The worker half of comment commands (lib/github/comment-commands.ts): confirm that the author
 * has write access or more (the collaborator-permission API; a dry-run cannot confirm, so it
 * refuses), act on the subject's run, record who did what on that run, and answer on the comment
 * with 👍 (done) or 😕 (refused).
 */
const IDENTITY = { name: 'comment-commands', permissions: ['read', 'comment'] as const };
const WRITE_OR_HIGHER = new Set(['admin', 'maintain', 'write']);
const VERDICT_GROUP = 'comment-command';

export interface CommentCommandDeps {
  github: GitHubClientFactory;
  store: RunStore;
  engine: () => {
    signal(runId: string, signal: Signal): Promise<Run>;
    recordEvent(runId: string, event: NewEvent): Promise<void>;
  };
}

type Ctx = Pick<StepContext<unknown>, 'run' | 'node' | 'emit' | 'effect'>;

interface Verdict {
  outcome: 'done' | 'refused';
  reason: string;
  target?: string;
}

export function commentCommandNodes(deps: CommentCommandDeps) {
  async function targetOf(input: CommentCommandInput): Promise<Run | undefined> {
    const runs = (await deps.store.listRuns({ subject: `${input.repo}#${input.issue}`, limit: 20 })).filter(
      (r) => r.workflow !== COMMENT_COMMAND,
    );
    const newest = (list: Run[]) => list.sort((a, b) => b.createdAt.localeCompare(a.createdAt))[0];
    if (input.command === 'retry')
      return newest(runs.filter((r) => r.status === 'failed' || r.status === 'expired'));
    return newest(runs.filter((r) => !isTerminal(r.status)));
  }

  async function decide(ctx: Ctx, input: CommentCommandInput): Promise<Verdict> {
    const client = deps.github.forAgent(IDENTITY, { runId: ctx.run.id, node: ctx.node, sink: ctx.emit });
    // Found first, so a refusal is recorded on the run it was aimed at too.
    const target = await targetOf(input);
    const on = target ? { target: target.id } : {};
    if (!input.listed) {
      return {
        outcome: 'refused',
        reason: `author association ${input.association} may not use commands`,
        ...on,
      };
    }
    const perm = await client.request<{ permission?: string }>(
      'read',
      'GET /repos/{owner}/{repo}/collaborators/{username}/permission',
      { ...splitRepo(input.repo), username: input.login },
    );
    const level = perm.data?.permission ?? 'none';
    if (perm.dryRun || !WRITE_OR_HIGHER.has(level)) {
      return {
        outcome: 'refused',
        reason: `${input.login} has ${perm.dryRun ? 'unconfirmed' : level} access (write or higher needed)`,
        ...on,
      };
    }

    if (!target) {
      return {
        outcome: 'refused',
        reason: input.command === 'retry' ? 'no failed run to retry here' : 'no active run here',
      };
    }
    const by = `github:${input.login}`;
    if (input.command === 'hold' || input.command === 'unhold') {
      if (input.command === 'hold') {
        if (await heldBy(deps.store, target.id))
          return { outcome: 'refused', reason: 'the run is already held', target: target.id };
        await setHold(deps.store, target.id, { by, at: new Date().toISOString() });
      } else if (!(await liftHold(deps.store, deps.engine(), target, by))) {
        return { outcome: 'refused', reason: 'the run is not held', target: target.id };
      }
      return { outcome: 'done', reason: `${input.command} by ${by}`, target: target.id };
    }
    let signal: Signal;
    switch (input.command) {
      case 'approve': {
        // Bound to the version given, or to what the gate shows now (never whatever it shows later).
        const binding = input.arg ?? target.gate?.binding;
        signal = { type: 'approve', by, ...(binding !== undefined ? { binding } : {}) };
        break;
      }
      case 'reject':
        signal = { type: 'reject', by, ...(input.arg ? { reason: input.arg } : {}) };
        break;
      case 'cancel':
        signal = { type: 'cancel', by, ...(input.arg ? { reason: input.arg } : {}) };
        break;
      case 'retry':
        signal = { type: 'retry', by };
        break;
    }
    const engine = deps.engine();
    try {
      await engine.signal(target.id, signal);
    } catch (err) {
      if (err instanceof InvalidSignalError || err instanceof StaleApprovalError) {
        return { outcome: 'refused', reason: err.message, target: target.id };
      }
      throw err;
    }
    return { outcome: 'done', reason: `${input.command} by ${by}`, target: target.id };
  }

  return {
    async act(ctx: Ctx): Promise<NodeResult> {
      const input = ctx.run.data as CommentCommandInput;
      // Kept per comment (the effect journal is per attempt): a retried step neither signals twice
      // nor turns a done into a refusal.
      const key = `${input.repo}#${input.commentId}`;
      let verdict = (await deps.store.kvGet<Verdict>(VERDICT_GROUP, key))?.value;
      if (!verdict) {
        verdict = await decide(ctx, input);
        await deps.store.kvPut(VERDICT_GROUP, key, verdict, {
          ttl: Math.floor(Date.now() / 1000) + 30 * 86_400,
        });
      }
      const decided = verdict;
      if (decided.target) {
        await ctx.effect('record', () =>
          deps.engine().recordEvent(decided.target!, {
            type: 'github.command',
            by: `github:${input.login}`,
            detail: {
              command: input.command,
              outcome: decided.outcome,
              reason: decided.reason,
              comment: input.commentId,
              association: input.association,
            },
          }),
        );
      }
      const content = verdict.outcome === 'done' ? '+1' : 'confused';
      await ctx.effect('react', async () => {
        const client = deps.github.forAgent(IDENTITY, { runId: ctx.run.id, node: ctx.node, sink: ctx.emit });
        await client.request('comment', 'POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions', {
          ...splitRepo(input.repo),
          comment_id: input.commentId,
          content,
        });
        return content;
      });
      ctx.emit({
        type: 'comment-command.decided',
        node: ctx.node,
        by: `github:${input.login}`,
        detail: { ...verdict },
      });
      return { output: { verdict } };
    },
  };
}
