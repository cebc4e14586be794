import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NonRetryableError } from '../../lib/engine/errors.ts';
import type { Run } from '../../lib/engine/types.ts';
import { withNodes } from '../../lib/workflows/graph.ts';
import { issuePipeline } from '../../lib/workflows/issue-pipeline.ts';
import { main } from '../../scripts/runs-cli.ts';
import { testEndpoint } from '../support/dynamo.ts';
import { type Harness, harness } from '../support/harness.ts';

/** The issue pipeline's graph with stub nodes: it plans `plan-v1` and parks at the approval gate. */
const stubPipeline = withNodes(issuePipeline, {
  intake: async (ctx) => {
    if (ctx.run.data.failIntake) throw new NonRetryableError('issue is locked');
    return { output: { issue: { title: 'Fix the parser' } } };
  },
  route: async () => ({ output: { routing: { outcome: 'run' } } }),
  plan: async () => ({ output: { plan: { version: 'plan-v1', tasks: [] } } }),
  approval: async () => ({
    wait: { kind: 'approval', binding: 'plan-v1', prompt: 'Approve the plan?', expiresInMs: 3_600_000 },
  }),
  execute: async () => ({ output: { work: { tasks: [] } } }),
  report: async () => ({ output: { summary: { tasks: 0, done: 0 } } }),
});

const ENV_KEYS = ['DYNAMODB_ENDPOINT', 'TABLE_NAME', 'QUEUE_URL', 'USER'] as const;

describe('runs CLI', () => {
  let h: Harness<unknown>;
  const saved = new Map<string, string | undefined>();
  let issue = 0;

  beforeAll(async () => {
    h = await harness<unknown>([stubPipeline]);
    for (const k of ENV_KEYS) saved.set(k, process.env[k]);
    // The CLI reads the store from the environment (lib/app/local-env.ts); no QUEUE_URL: no SQS.
    process.env.DYNAMODB_ENDPOINT = testEndpoint();
    process.env.TABLE_NAME = h.store.tableName;
    delete process.env.QUEUE_URL;
    process.env.USER = 'operator1';
  });
  afterAll(() => {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  afterEach(async () => {
    await h.settle();
  });

  async function cli(...argv: string[]): Promise<{ code: number; out: string }> {
    const lines: string[] = [];
    const code = await main(argv, (s) => lines.push(s));
    return { code, out: lines.join('\n') };
  }

  /** A pipeline run on a fresh issue of `repo`, moved by the test engine as far as it goes. */
  async function pipelineRun(repo = 'acme/app', input: Record<string, unknown> = {}): Promise<Run> {
    issue++;
    const { run } = await h.engine.startRun({
      workflow: 'issue-pipeline',
      subject: `${repo}#${issue}`,
      trigger: { source: 'github', actor: 'alice' },
      input,
    });
    await h.settle();
    return (await h.store.getRun(run.id))!;
  }
  const parkedRun = (repo?: string) => pipelineRun(repo);
  const failedRun = () => pipelineRun('acme/app', { failIntake: true });

  describe('usage', () => {
    it('prints the usage and exits 2 without a command', async () => {
      const { code, out } = await cli();

      expect(code).toBe(2);
      expect(out).toMatch(/^usage: npm run runs -- <command>/);
    });

    it.each([[['--help']], [['-h']], [['list', '--help']]])(
      'prints the usage and exits 0 when asked with %s',
      async (argv) => {
        const { code, out } = await cli(...argv);

        expect(code).toBe(0);
        expect(out).toMatch(/^usage:/);
      },
    );

    it.each([
      ['an unknown command', ['frobnicate', 'r1'], 'unknown command frobnicate'],
      ['a signal without a run id', ['approve'], 'approve needs a run id'],
      ['start without --repo', ['start'], 'start needs --repo owner/name'],
      [
        'start with a repo that is not owner/name',
        ['start', '--repo', 'acme'],
        'start needs --repo owner/name',
      ],
    ])('exits 2 with the usage on %s', async (_what, argv, message) => {
      const { code, out } = await cli(...argv);

      expect(code).toBe(2);
      expect(out.split('\n')[0]).toBe(message);
      expect(out).toContain('usage:');
    });
  });

  describe('start', () => {
    it('creates a queued issue-pipeline run for the issue, triggered from the CLI', async () => {
      const { code, out } = await cli('start', '--repo', 'start/demo', '--issue', '3', '--by', 'alice');

      expect(code).toBe(0);
      const id = /^created: run (\S+) \(issue-pipeline\) is queued at intake$/.exec(out)?.[1];
      expect(id).toBeDefined();
      expect(await h.store.getRun(id!)).toMatchObject({
        workflow: 'issue-pipeline',
        status: 'queued',
        node: 'intake',
        subject: { repo: 'start/demo', issue: 3, key: 'start/demo#3' },
        trigger: { source: 'cli', actor: 'alice' },
      });
    });

    it('attaches a second start on the same issue to the active run', async () => {
      const first = await cli('start', '--repo', 'start/twice', '--issue', '1', '--json');
      const { run } = JSON.parse(first.out) as { run: { id: string } };

      const second = await cli('start', '--repo', 'start/twice', '--issue', '1', '--json');

      expect(JSON.parse(second.out)).toMatchObject({ outcome: 'attached', run: { id: run.id } });
    });

    it('names the operator as the actor when --by is not given', async () => {
      const { out } = await cli('start', '--repo', 'start/who', '--issue', '7', '--json');

      expect(JSON.parse(out)).toMatchObject({
        outcome: 'created',
        run: {
          subject: { repo: 'start/who', issue: 7, key: 'start/who#7' },
          trigger: { source: 'cli', actor: 'cli:operator1' },
        },
      });
    });

    it('refuses an issue-pipeline run without --issue, naming the missing field', async () => {
      const { code, out } = await cli('start', '--repo', 'start/none', '--json');

      expect(code).toBe(1);
      expect(JSON.parse(out)).toMatchObject({ error: 'InvalidSubjectError' });
      expect(JSON.parse(out).message).toContain('subject.issue');
      expect(await h.engine.listRuns({ repo: 'start/none' })).toEqual([]);
    });
  });

  describe('list', () => {
    let older: Run;
    let newer: Run;

    beforeAll(async () => {
      older = await parkedRun('list/demo');
      newer = await pipelineRun('list/demo', { failIntake: true });
    });

    it('prints a table of runs, newest first', async () => {
      const { code, out } = await cli('list', '--repo', 'list/demo');

      expect(code).toBe(0);
      const rows = out.split('\n').map((l) => l.split(/\s{2,}/));
      expect(rows).toEqual([
        ['ID', 'WORKFLOW', 'STATUS', 'NODE', 'SUBJECT', 'UPDATED'],
        [newer.id, 'issue-pipeline', 'failed', 'intake', newer.subject.key, newer.updatedAt],
        [older.id, 'issue-pipeline', 'waiting', 'approval', older.subject.key, older.updatedAt],
      ]);
    });

    it.each([
      [['--limit', 'ten'], /--limit must be/],
      [['--limit', '0'], /--limit must be/],
      [['--status', 'finished'], /--status must be one of/],
    ])('refuses list %j with a usage error instead of printing no runs', async (args, message) => {
      const { code, out } = await cli('list', ...args);

      expect(code).toBe(2);
      expect(out).toMatch(message);
    });

    it('prints the runs as JSON with --json', async () => {
      const { code, out } = await cli('list', '--repo', 'list/demo', '--json');

      expect(code).toBe(0);
      const { runs } = JSON.parse(out) as { runs: Array<Record<string, unknown>> };
      expect(runs.map((r) => [r.id, r.status])).toEqual([
        [newer.id, 'failed'],
        [older.id, 'waiting'],
      ]);
      expect(runs[1]).toMatchObject({
        workflow: 'issue-pipeline',
        node: 'approval',
        subject: { repo: 'list/demo', issue: older.subject.issue },
        trigger: { source: 'github', actor: 'alice' },
        gate: { kind: 'approval', binding: 'plan-v1' },
      });
    });

    it.each([
      [['--status', 'waiting'], 'older'],
      [['--limit', '1'], 'newer'],
    ] as const)('narrows the list with %s', async (flags, which) => {
      const { out } = await cli('list', '--repo', 'list/demo', '--json', ...flags);

      expect((JSON.parse(out) as { runs: Run[] }).runs.map((r) => r.id)).toEqual([
        which === 'older' ? older.id : newer.id,
      ]);
    });

    it('says so when no run matches', async () => {
      const { code, out } = await cli('list', '--repo', 'nobody/here');

      expect(code).toBe(0);
      expect(out).toBe('no runs');
    });
  });

  describe('show', () => {
    it('prints the run, its gate and its history', async () => {
      const run = await parkedRun();

      const { code, out } = await cli('show', run.id);

      expect(code).toBe(0);
      const lines = out.split('\n');
      expect(lines.slice(0, 5)).toEqual([
        `run       ${run.id}`,
        'workflow  issue-pipeline',
        'status    waiting',
        'node      approval',
        `subject   ${run.subject.key}`,
      ]);
      expect(lines).toContain('trigger   github by alice');
      expect(lines).toContain(`gate      approval at approval until ${run.gate?.expiresAt} (plan plan-v1)`);
      const history = lines.slice(lines.indexOf('history:') + 1).map((l) => l.trim().split(/\s+/)[1]);
      expect(history).toEqual([
        'run.created',
        'step.succeeded',
        'step.scheduled',
        'step.succeeded',
        'step.scheduled',
        'step.succeeded',
        'step.scheduled',
        'step.succeeded',
        'gate.opened',
      ]);
    });

    it('prints the run and its events as JSON with --json', async () => {
      const run = await parkedRun();

      const { out } = await cli('show', run.id, '--json');

      const body = JSON.parse(out) as {
        run: Record<string, unknown>;
        events: Array<Record<string, unknown>>;
      };
      expect(body.run).toMatchObject({ id: run.id, status: 'waiting', node: 'approval' });
      expect(body.events[0]).toMatchObject({ type: 'run.created', node: 'intake', by: 'alice' });
    });

    it.each([
      [[], 'run rnothere000 not found'],
      [['--json'], JSON.stringify({ error: 'run not found', id: 'rnothere000' }, null, 2)],
    ])('exits 1 for a run that does not exist (%s)', async (flags, expected) => {
      const { code, out } = await cli('show', 'rnothere000', ...flags);

      expect(code).toBe(1);
      expect(out).toBe(expected);
    });
  });

  describe('signals', () => {
    it('approves a run parked at the approval gate: it moves on to execute', async () => {
      const run = await parkedRun();

      const { code, out } = await cli('approve', run.id, '--plan', 'plan-v1', '--by', 'carol');

      expect(code).toBe(0);
      expect(out).toBe(`approve (plan plan-v1): run ${run.id} is now running at execute`);
      const after = await h.store.getRun(run.id);
      expect(after).toMatchObject({ status: 'running', node: 'execute' });
      expect(after?.data.approval).toMatchObject({ by: 'carol', binding: 'plan-v1', bound: true });
      const events = await h.store.listEvents(run.id);
      expect(events).toContainEqual(
        expect.objectContaining({ type: 'signal.approve', by: 'carol', detail: { binding: 'plan-v1' } }),
      );
    });

    it('rejects a parked run: it fails, saying who rejected it and why', async () => {
      const run = await parkedRun();

      const { code, out } = await cli('reject', run.id, '--reason', 'too risky', '--by', 'carol');

      expect(code).toBe(0);
      expect(out).toBe(`reject: run ${run.id} is now failed`);
      expect(await h.store.getRun(run.id)).toMatchObject({
        status: 'failed',
        reason: 'rejected by carol: too risky',
      });
    });

    it('cancels a run, recording who cancelled it and why', async () => {
      const run = await parkedRun();

      const { code, out } = await cli('cancel', run.id, '--reason', 'wrong repository');

      expect(code).toBe(0);
      expect(out).toBe(`cancel: run ${run.id} is now cancelled`);
      expect(await h.store.getRun(run.id)).toMatchObject({
        status: 'cancelled',
        reason: 'cancelled by cli:operator1: wrong repository',
      });
      expect(await h.store.listEvents(run.id)).toContainEqual(
        expect.objectContaining({
          type: 'signal.cancel',
          by: 'cli:operator1',
          detail: { reason: 'wrong repository' },
        }),
      );
    });

    it('retries a failed run from the node it failed at', async () => {
      const run = await failedRun();
      expect(run).toMatchObject({ status: 'failed', node: 'intake' });

      const { code, out } = await cli('retry', run.id, '--json');

      expect(code).toBe(0);
      expect(JSON.parse(out)).toMatchObject({
        run: { id: run.id, status: 'running', node: 'intake', step: { node: 'intake', attempt: 1 } },
      });
      const after = await h.store.getRun(run.id);
      expect(after?.reason).toBeUndefined();
      expect((await h.store.listEvents(run.id)).map((e) => e.type)).toContain('signal.retry');
    });

    it.each([
      [
        'approving a run that is not at a gate',
        async () => (await failedRun()).id,
        (id: string) => ['approve', id],
        (id: string) => `approve refused: run ${id} is not waiting for an approval (status failed)`,
      ],
      [
        'approving a plan other than the one the gate shows',
        async () => (await parkedRun()).id,
        (id: string) => ['approve', id, '--plan', 'plan-v0'],
        () => 'approve refused: approval for plan-v0 is stale: the gate now shows plan-v1',
      ],
      [
        'retrying a run that has not failed',
        async () => (await parkedRun()).id,
        (id: string) => ['retry', id],
        (id: string) => `retry refused: run ${id} is waiting; only failed or expired runs can be retried`,
      ],
      [
        'cancelling a run that already ended',
        async () => (await failedRun()).id,
        (id: string) => ['cancel', id],
        (id: string) => `cancel refused: run ${id} is already failed`,
      ],
      [
        'signalling a run that does not exist',
        async () => 'rnothere000',
        (id: string) => ['cancel', id],
        () => 'cancel refused: run rnothere000 not found',
      ],
    ])('exits 1 with a clear message when %s', async (_what, prepare, argv, message) => {
      const id = await prepare();

      const { code, out } = await cli(...argv(id));

      expect(code).toBe(1);
      expect(out).toBe(message(id));
    });

    it('leaves the run as it was when a signal is refused', async () => {
      const run = await parkedRun();

      await cli('retry', run.id);

      expect(await h.store.getRun(run.id)).toMatchObject({ status: 'waiting', version: run.version });
    });

    it('prints a refusal as JSON with --json', async () => {
      const run = await parkedRun();

      const { code, out } = await cli('retry', run.id, '--json');

      expect(code).toBe(1);
      expect(JSON.parse(out)).toEqual({
        error: 'InvalidSignalError',
        message: `run ${run.id} is waiting; only failed or expired runs can be retried`,
      });
    });
  });
});
