import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkflowDefinition } from '../../lib/engine/workflow.ts';
import { normalizeEvent } from '../../lib/github/events.ts';
import { parseConfig } from '../../lib/routing/config.ts';
import { readCiRecord, recordCiSignal } from '../../lib/routing/guards.ts';
import { example } from '../github/support.ts';
import { type Harness, harness } from '../support/harness.ts';

/**
 * Issue #9, defect 9: GitHub treats `Acme/Widget` and `acme/widget` as one repository, so every
 * key a subject is stored under (idempotency, lock, subject and repo indexes, KV records) is
 * case-insensitive in its repository part. Before, `/plan issue: Acme/Widget#12` next to a
 * webhook for `acme/widget#12` started two live pipelines on one issue.
 */

const parked: WorkflowDefinition<Record<string, never>> = {
  name: 'parked',
  version: 1,
  start: 'wait',
  nodes: { wait: { handler: async () => ({ wait: { kind: 'approval', expiresInMs: 3_600_000 } }) } },
  edges: [],
};

describe('subject keys are case-insensitive in the repository name', () => {
  let h: Harness<Record<string, never>>;
  beforeAll(async () => {
    h = await harness([parked]);
  });
  afterAll(() => h.queue.stop());

  it('Acme/Widget#12 and acme/widget#12 are one subject: the second start attaches', async () => {
    const first = await h.engine.startRun({
      workflow: 'parked',
      subject: { repo: 'Acme/Widget', issue: 12, key: 'Acme/Widget#12' },
      trigger: { source: 'discord', actor: 'u1' },
    });
    const second = await h.engine.startRun({
      workflow: 'parked',
      subject: { repo: 'acme/widget', issue: 12, key: 'acme/widget#12' },
      trigger: { source: 'github', actor: 'octocat' },
    });
    expect(first.outcome).toBe('created');
    expect(second).toMatchObject({ outcome: 'attached', run: { id: first.run.id } });
    // The display name is kept as it was given.
    expect((await h.engine.getRun(first.run.id))?.subject.repo).toBe('Acme/Widget');
  });

  it('an idempotency key differing only in the repository case finds the same run', async () => {
    const a = await h.engine.startRun({
      workflow: 'parked',
      subject: { repo: 'Acme/Gadget', issue: 3, key: 'Acme/Gadget#3#plan#1' },
      trigger: { source: 'discord' },
      idempotencyKey: 'rparent:Acme/Gadget#3',
    });
    const b = await h.engine.startRun({
      workflow: 'parked',
      subject: { repo: 'acme/gadget', issue: 3, key: 'acme/gadget#3#plan#2' },
      trigger: { source: 'discord' },
      idempotencyKey: 'rparent:acme/gadget#3',
    });
    expect(b).toMatchObject({ outcome: 'duplicate', run: { id: a.run.id } });
  });

  it('listing by repository or subject ignores case', async () => {
    const { run } = await h.engine.startRun({
      workflow: 'parked',
      subject: { repo: 'Acme/Listed', issue: 1, key: 'Acme/Listed#1' },
      trigger: { source: 'cli' },
    });
    expect((await h.store.listRuns({ repo: 'acme/listed' })).map((r) => r.id)).toEqual([run.id]);
    expect((await h.store.listRuns({ repo: 'ACME/LISTED' })).map((r) => r.id)).toEqual([run.id]);
    expect((await h.store.listRuns({ subject: 'acme/listed#1' })).map((r) => r.id)).toEqual([run.id]);
  });

  it('KV records keyed by repository (the CI guard) are one record whatever the case', async () => {
    const config = parseConfig('version: 1\n');
    const p = example('workflow_run', 'completed');
    const repo = p.repository as Record<string, unknown>;
    repo.full_name = 'Acme/Guarded';
    repo.default_branch = 'main';
    Object.assign(p.workflow_run as object, {
      head_branch: 'main',
      event: 'push',
      status: 'completed',
      conclusion: 'failure',
    });
    const ev = normalizeEvent('workflow_run', 'd-case-1', p);
    expect(await recordCiSignal(h.store, ev, config, new Date())).toEqual({ outcome: 'recorded' });
    const upper = await readCiRecord(h.store, 'Acme/Guarded');
    expect(upper).toBeDefined();
    expect(await readCiRecord(h.store, 'acme/guarded')).toEqual(upper);
  });
});
