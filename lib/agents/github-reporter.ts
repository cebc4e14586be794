import { createHash } from 'node:crypto';
import { logger } from '../common/observability.ts';
import type { Reporter } from '../engine/engine.ts';
import type { RunStore } from '../engine/ports.ts';
import type { NewEvent, Run } from '../engine/types.ts';
import {
  EventCollector,
  type GitHubClient,
  type GitHubClientFactory,
  isOwnComment,
} from '../github/client.ts';
import { GitHubApiError } from '../github/errors.ts';
import { AgentRegistry } from '../routing/agents.ts';
import type { SwitchyardConfig } from '../routing/config.ts';
import { DEFAULT_RETENTION_DAYS } from '../store/schema.ts';
import { capComment } from './comment-cap.ts';
import { ReporterBusyError } from './errors.ts';
import { renderStatusComment, runMarker, shouldReport } from './status-comment.ts';

/**
 * Keeps ONE status comment per run on its issue, edited in place as the run moves.
 *
 * Find-or-create, safe against crashes and races:
 * - the comment id lives in KV (`status-comment`/<run id>) with the hash of the last body;
 * - creating needs a claim (a conditional KV put), so two workers never both create;
 * - the creator first looks for the hidden marker `<!-- switchyard:run:<id> -->` among the
 *   issue's comments, so a crash between "created" and "recorded" finds the comment instead of
 *   making a second one;
 * - an unchanged body is not sent again.
 *
 * In dry-run the would-be request is recorded as a run event (an audit event, which does not
 * touch the run item). The body is capped below GitHub's limit (comment-cap.ts); the record keeps
 * the run version shown, so an older version never overwrites a newer one; records have a TTL.
 */

export const STATUS_GROUP = 'status-comment';
/** A claim older than this is taken to be a crashed creator's, and taken over. */
const CLAIM_MS = 60_000;

interface StatusRecord {
  commentId: number | null;
  hash: string;
  /** The run version the comment shows: an older version never overwrites it (the fence). */
  version?: number;
  claimedAt?: string;
  dryRun?: boolean;
}

/** Status records live as long as the run's history, then DynamoDB TTL removes them. */
const RECORD_TTL_SECONDS = DEFAULT_RETENTION_DAYS * 86_400;

export interface GitHubReporterDeps {
  github: GitHubClientFactory;
  /** Config for the reporter's identity (an agent named `reporter` in config narrows its grants). */
  config?: () => SwitchyardConfig;
  /** engine.recordEvent: used for dry-run calls of finished runs only. */
  recordEvent?: (runId: string, event: NewEvent) => Promise<void>;
  now?: () => Date;
}

const hashOf = (body: string) => createHash('sha256').update(body).digest('hex').slice(0, 32);

export function createGitHubReporter(deps: GitHubReporterDeps): Reporter {
  const now = deps.now ?? (() => new Date());
  const identity = () => {
    const cfg = deps.config?.();
    return cfg
      ? new AgentRegistry(cfg).identity('reporter')
      : { name: 'reporter', permissions: ['read', 'comment'] as const };
  };

  /** Our own marked comment: a marker in someone else's comment is not ours (issue #9, defect 10). */
  async function findMarked(client: GitHubClient, repo: string, issue: number, marker: string) {
    const comments = await client.listIssueComments(repo, issue);
    if (!comments?.length) return undefined;
    const self = await deps.github.selfLogin();
    return comments.find((c) => isOwnComment(c, marker, self));
  }

  const ttl = () => Math.floor(now().getTime() / 1000) + RECORD_TTL_SECONDS;

  async function dryRun(run: Run, store: RunStore, body: string, hash: string): Promise<void> {
    const item = await store.kvGet<StatusRecord>(STATUS_GROUP, run.id);
    if (item?.value.hash === hash) return;
    if (item?.value.version !== undefined && item.value.version >= run.version) return;
    const collector = new EventCollector();
    const client = deps.github.forAgent(identity(), { runId: run.id, node: 'report', sink: collector.sink });
    await client.createComment(run.subject.repo!, run.subject.issue!, body);
    await store.kvPut<StatusRecord>(
      STATUS_GROUP,
      run.id,
      { commentId: null, hash, version: run.version, dryRun: true },
      { ttl: ttl() },
    );
    const events = collector.drain();
    // Every dry-run edit is a run event (the contract: every outbound call is recorded). An audit
    // event does not touch the run item, so recording one mid-run never races a step's commit.
    if (deps.recordEvent) {
      for (const e of events) await deps.recordEvent(run.id, { ...e, node: run.node ?? 'report' });
    } else {
      for (const e of events) logger.info('github dry-run status comment', { runId: run.id, ...e.detail });
    }
  }

  return {
    name: 'github',
    async report(run, ctx) {
      if (!shouldReport(run)) return;
      const repo = run.subject.repo!;
      const issue = run.subject.issue!;
      const body = capComment(renderStatusComment(run, ctx.events, ctx.workflow));
      const hash = hashOf(body);
      const store = ctx.store;
      if (deps.github.dryRun) return dryRun(run, store, body, hash);

      const client = deps.github.forAgent(identity(), { runId: run.id, node: 'report' });
      // Under the engine, what the comment shows (its id and body hash) is noted with the report's
      // completion, which is written anyway: the KV record is then only the creator's claim, and
      // is not written on any edit.
      const note = ctx.note;
      const remember = (commentId: number) => note?.(JSON.stringify({ c: commentId, h: hash }));
      const noted = notedOf(ctx.noted);
      /** Edit the comment; a deleted one is forgotten, to be created again on the next report. */
      const edit = async (id: number, record: { version: number } | undefined) => {
        try {
          await client.updateComment(repo, id, body);
        } catch (err) {
          if (!(err instanceof GitHubApiError && err.status === 404)) throw err;
          const known = record ?? (await store.kvGet<StatusRecord>(STATUS_GROUP, run.id));
          if (known) await store.kvDelete(STATUS_GROUP, run.id, { expectedVersion: known.version });
          throw new ReporterBusyError(`status comment ${id} of run ${run.id} is gone; recreating`, {
            runId: run.id,
          });
        }
      };
      if (noted) {
        // The note is what the last completed report showed, nothing written since (the engine
        // drops notes it cannot vouch for): an unchanged body is not sent again.
        if (noted.h === hash) return remember(noted.c);
        if (ctx.current && !(await ctx.current())) return;
        await edit(noted.c, undefined);
        return remember(noted.c);
      }
      const item = await store.kvGet<StatusRecord>(STATUS_GROUP, run.id);
      const id = item?.value.commentId;
      if (item && id) {
        // The record's hash is only kept up to date without the engine's notes (see above).
        if (!note && item.value.hash === hash) return;
        // The fence: a late writer (an older version, or a claim that lapsed) drops its update.
        if (item.value.version !== undefined && item.value.version >= run.version) return;
        if (ctx.current && !(await ctx.current())) return;
        await edit(id, item);
        if (note) return remember(id);
        await store.kvPut<StatusRecord>(
          STATUS_GROUP,
          run.id,
          { commentId: id, hash, version: run.version },
          { expectedVersion: item.version, ttl: ttl() },
        );
        return;
      }

      // No comment recorded. Under the engine a creator leaves the comment's id in the report's note
      // only (below), so a record that is just a claim may stand for a comment already there: one
      // this report (a lapsed claim dropped the note) edits.
      if (item) {
        const made = await findMarked(client, repo, issue, runMarker(run.id));
        if (made) {
          if (ctx.current && !(await ctx.current())) return;
          if (made.body !== body) await client.updateComment(repo, made.id, body);
          if (note) return remember(made.id);
          await store.kvPut<StatusRecord>(
            STATUS_GROUP,
            run.id,
            { commentId: made.id, hash, version: run.version },
            { expectedVersion: item.version, ttl: ttl() },
          );
          return;
        }
      }
      // Claim the right to create it.
      const claimedAt = now().toISOString();
      const stale =
        item?.value.claimedAt === undefined || now().getTime() - Date.parse(item.value.claimedAt) > CLAIM_MS;
      const claimed = item
        ? stale &&
          (await store.kvPut<StatusRecord>(
            STATUS_GROUP,
            run.id,
            { commentId: null, hash: '', claimedAt },
            { expectedVersion: item.version, ttl: ttl() },
          ))
        : await store.kvPut<StatusRecord>(
            STATUS_GROUP,
            run.id,
            { commentId: null, hash: '', claimedAt },
            { expectedVersion: 0, ttl: ttl() },
          );
      if (!claimed)
        throw new ReporterBusyError(`another worker is creating the status comment of run ${run.id}`, {
          runId: run.id,
        });
      const version = (item?.version ?? 0) + 1;

      const existing = await findMarked(client, repo, issue, runMarker(run.id));
      let commentId: number;
      if (ctx.current && !(await ctx.current())) {
        // Superseded while we looked: give the claim back for the newer report.
        await store.kvDelete(STATUS_GROUP, run.id, { expectedVersion: version });
        return;
      }
      if (existing) {
        commentId = existing.id;
        if (existing.body !== body) await client.updateComment(repo, commentId, body);
      } else {
        const created = await client.createComment(repo, issue, body);
        if (!created) throw new ReporterBusyError('comment creation returned nothing', { runId: run.id });
        commentId = created.id;
      }
      // Under the engine the comment's id rides on the report's completion (the note), which is
      // written anyway: the claim stays as the record, and a report without the note finds the
      // comment by its marker (above). Without the engine the record names it.
      if (note) return remember(commentId);
      await store.kvPut<StatusRecord>(
        STATUS_GROUP,
        run.id,
        { commentId, hash, version: run.version },
        { expectedVersion: version, ttl: ttl() },
      );
    },
  };
}

/** The engine's note of what the comment shows: `{ c: comment id, h: body hash }`. */
function notedOf(value: string | undefined): { c: number; h: string } | undefined {
  if (value === undefined) return undefined;
  try {
    const parsed = JSON.parse(value) as { c?: unknown; h?: unknown };
    return typeof parsed.c === 'number' && typeof parsed.h === 'string'
      ? { c: parsed.c, h: parsed.h }
      : undefined;
  } catch {
    return undefined;
  }
}
