import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidSubjectError } from '../../lib/engine/errors.ts';
import type { Subject } from '../../lib/engine/types.ts';
import type { WorkflowDefinition } from '../../lib/engine/workflow.ts';
import { issuePipeline } from '../../lib/workflows/issue-pipeline.ts';
import { type Harness, harness } from '../support/harness.ts';

/** Issue 15: a run always has the subject its workflow needs; `startRun` refuses one without it. */

const REPO_ONLY: WorkflowDefinition<unknown> = {
  name: 'repo-only',
  version: 1,
  start: 'a',
  requires: ['repo'],
  nodes: { a: { handler: async () => ({}) } },
  edges: [],
};

describe('startRun checks the subject against the workflow’s required fields', () => {
  let h: Harness<unknown>;
  beforeAll(async () => {
    h = await harness<unknown>([issuePipeline as WorkflowDefinition<unknown>, REPO_ONLY], {
      autoConsume: false,
    });
  });

  it('declares repo and issue as required by the issue pipeline', () => {
    expect(h.engine.workflows.get('issue-pipeline')?.requires).toEqual(['repo', 'issue']);
  });

  it.each<[string, Subject | string, string]>([
    ['no issue', { repo: 'acme/app', key: 'acme/app' }, 'subject.issue'],
    ['no issue (string subject)', 'acme/app', 'subject.issue'],
    ['no repo', { issue: 4, key: 'x#4' }, 'subject.repo'],
    ['a bad repo', { repo: 'acme', issue: 4, key: 'acme#4' }, 'subject.repo'],
    ['issue 0', { repo: 'acme/app', issue: 0, key: 'acme/app#0' }, 'subject.issue'],
    ['a fractional issue', { repo: 'acme/app', issue: 1.5, key: 'acme/app#1.5' }, 'subject.issue'],
    [
      'an issue that is a string',
      { repo: 'acme/app', issue: '7' as unknown as number, key: 'k' },
      'subject.issue',
    ],
  ])(
    'refuses an issue-pipeline subject with %s, naming the field, and writes nothing',
    async (_what, subject, field) => {
      const key = `refused-${JSON.stringify(subject)}`;
      const start = h.engine.startRun({
        workflow: 'issue-pipeline',
        subject,
        trigger: { source: 'test' },
        idempotencyKey: key,
      });

      await expect(start).rejects.toBeInstanceOf(InvalidSubjectError);
      await expect(start).rejects.toMatchObject({ field, retryable: false });
      await expect(start).rejects.toThrow(field);
      expect(h.queue.sent).toEqual([]);
      expect(await h.engine.listRuns({ limit: 10 })).toEqual([]);
    },
  );

  it('starts a run whose subject has what the workflow requires', async () => {
    const { run } = await h.engine.startRun({
      workflow: 'repo-only',
      subject: { repo: 'acme/app', key: 'acme/app' },
      trigger: { source: 'test' },
    });
    expect(run.subject).toEqual({ repo: 'acme/app', key: 'acme/app' });
    // The refused start claimed nothing: its idempotency key still makes a new run.
    const pipeline = await h.engine.startRun({
      workflow: 'issue-pipeline',
      subject: 'acme/app#12',
      trigger: { source: 'test' },
      idempotencyKey: `refused-${JSON.stringify({ repo: 'acme/app', key: 'acme/app' })}`,
    });
    expect(pipeline).toMatchObject({ outcome: 'created', run: { subject: { repo: 'acme/app', issue: 12 } } });
  });
});
