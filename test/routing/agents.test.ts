import { describe, expect, it } from 'vitest';
import { renderMermaid } from '../../lib/agents/mermaid.ts';
import { deterministicPlanner, planVersion, referencedFiles, taskList } from '../../lib/agents/planner.ts';
import { assessIssue, renderAsk } from '../../lib/agents/triage.ts';
import { nodeProgress } from '../../lib/engine/progress.ts';
import type { RunEvent } from '../../lib/engine/types.ts';
import { Workflow } from '../../lib/engine/workflow.ts';
import { normalizeEvent } from '../../lib/github/events.ts';
import { AgentRegistry, filterEnv } from '../../lib/routing/agents.ts';
import { loadConfig, parseConfig } from '../../lib/routing/config.ts';
import { issuePipeline } from '../../lib/workflows/issue-pipeline.ts';
import { example } from '../github/support.ts';

describe('agent registry', () => {
  it('resolves named executors, grants and identities', async () => {
    const reg = new AgentRegistry(await loadConfig('config/switchyard.yml'));
    expect(reg.require('coder')).toMatchObject({
      type: 'coder',
      executor: { type: 'github-actions', workflow: 'switchyard-agent.yml', ref: 'main' },
      concurrency: 2,
    });
    expect(reg.identity('triage').permissions).toContain('apply_labels');
    expect(reg.identity('reporter')).toEqual({ name: 'reporter', permissions: ['read', 'comment'] });
    expect(() => reg.identity('nobody')).toThrow('unknown agent nobody');
  });

  it('passes only allowlisted environment variables to an agent', () => {
    expect(filterEnv({ envAllowlist: ['A', 'MISSING'] }, { A: '1', SECRET: 'x' })).toEqual({ A: '1' });
  });
});

const agents = [
  { name: 'planner', type: 'planner' as const },
  { name: 'coder', type: 'coder' as const },
  { name: 'coverage', type: 'coverage' as const },
];

describe('deterministic planner', () => {
  const body = [
    'The save button crashes, see `src/save.ts` and https://github.com/acme/app/blob/main/src/io/file.ts#L10.',
    '',
    '- [ ] Fix the null check in `src/save.ts`',
    '- [x] Reproduce the crash',
    '* [ ] Add unit tests for saving',
    '```',
    '- [ ] not a task (in a code block)',
    '```',
  ].join('\n');

  it('reads task lists (not inside code blocks) and referenced files', () => {
    expect(taskList(body)).toEqual([
      { title: 'Fix the null check in `src/save.ts`', done: false },
      { title: 'Reproduce the crash', done: true },
      { title: 'Add unit tests for saving', done: false },
    ]);
    expect(referencedFiles(body)).toEqual(['src/save.ts', 'src/io/file.ts']);
  });

  it('assigns each task to an agent and versions the plan by content', async () => {
    const draft = await deterministicPlanner.plan({
      repo: 'acme/app',
      issue: 1,
      title: 'Save crashes',
      body,
      labels: [],
      agents,
    });
    expect(draft.tasks.map((t) => [t.id, t.agent, t.done, t.files])).toEqual([
      ['t1', 'coder', false, ['src/save.ts']],
      ['t2', 'coder', true, []],
      ['t3', 'coverage', false, []],
    ]);
    expect(draft.summary).toContain('The save button crashes');
    const again = await deterministicPlanner.plan({
      repo: 'acme/app',
      issue: 1,
      title: 'Save crashes',
      body,
      labels: [],
      agents,
    });
    expect(planVersion(again)).toBe(planVersion(draft));
    const changed = await deterministicPlanner.plan({
      repo: 'acme/app',
      issue: 1,
      title: 'Save crashes',
      body: `${body}\n- [ ] One more`,
      labels: [],
      agents,
    });
    expect(planVersion(changed)).not.toBe(planVersion(draft));
    expect(planVersion(draft)).toMatch(/^p[0-9a-f]{12}$/);
  });

  it('plans an issue without a task list as one task, and gives the tests to a selected coverage agent', async () => {
    const draft = await deterministicPlanner.plan({
      repo: 'a/b',
      issue: 2,
      title: 'Support dark mode',
      body: 'Touch `ui/theme.css`.',
      labels: [],
      agents,
    });
    expect(draft.tasks).toEqual([
      { id: 't1', title: 'Support dark mode', agent: 'coder', files: ['ui/theme.css'], done: false },
      {
        id: 't2',
        title: 'Cover `ui/theme.css` with tests',
        agent: 'coverage',
        files: ['ui/theme.css'],
        done: false,
      },
    ]);
  });

  it('leaves a task to a person when no executing agent was selected', async () => {
    const draft = await deterministicPlanner.plan({
      repo: 'a/b',
      issue: 3,
      title: 'Decide',
      body: '',
      labels: [],
      agents: [agents[0]!],
    });
    expect(draft.tasks[0]?.agent).toBe('human');
  });
});

describe('triage assessment', () => {
  const config = parseConfig(
    `
triage:
  labels:
    - { label: bug, keywords: [crash, stack trace] }
    - { label: docs, when: 'issue.title.lowerAscii().contains("readme")' }
  required:
    - { name: steps, when: '"bug" in labels', pattern: 'steps to reproduce', ask: 'List the steps.' }
  minBodyChars: 20
  askHeading: More please
`,
    't.yml',
  ).triage;

  const issue = (title: string, body: string, labels: string[] = []) => {
    const p = example('issues', 'opened');
    Object.assign(p.issue as object, { title, body, labels: labels.map((name) => ({ name })) });
    return normalizeEvent('issues', 'd', p);
  };

  it('labels by keywords and CEL, and asks for what a bug report lacks', () => {
    expect(assessIssue(config, issue('It crashes on start', 'short'))).toEqual({
      labels: ['bug'],
      missing: [
        { name: 'description', ask: 'The description is shorter than 20 characters.' },
        { name: 'steps', ask: 'List the steps.' },
      ],
    });
    expect(assessIssue(config, issue('Fix README typo', 'The readme has a typo in it, line 3.'))).toEqual({
      labels: ['docs'],
      missing: [],
    });
  });

  it('does not re-apply a label the issue has', () => {
    expect(
      assessIssue(config, issue('crash', 'Steps to reproduce: open the app and wait.', ['bug'])).labels,
    ).toEqual([]);
  });

  it('renders one marked comment', () => {
    expect(renderAsk(config, [{ name: 'steps', ask: 'List the steps.' }])).toBe(
      '<!-- switchyard:triage -->\n**More please**\n\n- **steps**: List the steps.',
    );
  });
});

/** A history in which `nodes` succeeded, in order. */
const passed = (...nodes: string[]): RunEvent[] =>
  nodes.map((node, seq) => ({
    seq,
    at: '2026-01-01T00:00:00.000Z',
    type: 'step.succeeded',
    node,
    detail: {},
  }));

describe('Mermaid graph', () => {
  const wf = new Workflow(issuePipeline);
  it('draws every node and edge and highlights the current node', () => {
    const m = renderMermaid(wf, nodeProgress({ node: 'plan', status: 'running' }, passed('intake', 'route')));
    expect(m.split('\n')).toEqual(
      expect.arrayContaining([
        'flowchart LR',
        '  n_intake["Intake"]',
        '  n_approval -->|approved| n_execute',
        '  class n_intake,n_route done',
        '  class n_plan current',
      ]),
    );
  });

  it('marks the node a failed run stopped at', () => {
    expect(
      renderMermaid(wf, nodeProgress({ node: 'execute', status: 'failed' }, passed('intake'))),
    ).toContain('class n_execute failed');
  });
});
