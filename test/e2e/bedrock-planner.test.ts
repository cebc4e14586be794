import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  configFile,
  E2E_TEST_TIMEOUT_MS,
  E2EStack,
  E2E_REPO as REPO,
  REPOSITORY,
  until,
} from '../support/e2e.ts';
import { FakeBedrock, ISSUE_FIXTURES } from '../support/fake-bedrock.ts';
import { FakeGitHub } from '../support/fake-github.ts';

/**
 * The local stack with `planner.provider: bedrock` and AWS_ENDPOINT_URL_BEDROCK_RUNTIME pointing
 * at the Converse stand-in: a labelled issue is planned by the model end to end (webhook → run →
 * plan from Converse → approval gate), with the planner, usage and cost in the run's history and
 * on the status comment; an edit while it waits re-plans it.
 */

const MODEL = 'us.amazon.nova-pro-v1:0';
const FIXTURE = ISSUE_FIXTURES.find((f) => f.name === 'feature with a checklist')!;
const EDITED = ISSUE_FIXTURES.find((f) => f.name === 'empty body')!;

describe('the local stack plans with a model on Bedrock', { timeout: E2E_TEST_TIMEOUT_MS }, () => {
  let gh: FakeGitHub;
  let bedrock: FakeBedrock;
  const e2e = new E2EStack('e2e-bedrock-secret');

  beforeAll(async () => {
    gh = await new FakeGitHub().start();
    bedrock = await new FakeBedrock().start();
    const config = configFile(`
version: 1
routing:
  rules:
    - { name: ready, event: issues, action: labeled, label: ready, workflow: issue-pipeline, agents: [planner, coder, coverage] }
repoConfig: { enabled: false }
guards: { ci: { enabled: false } }
agents:
  planner: { type: planner, permissions: [read] }
  coder: { type: coder, description: Implements the change., permissions: [read, comment] }
  coverage: { type: coverage, description: Writes tests., permissions: [read] }
planner:
  provider: bedrock
  model: ${MODEL}
  maxTasks: 12
`);
    await e2e.start({
      config,
      githubUrl: gh.url,
      env: {
        GITHUB_TOKEN: 'e2e-bedrock-github-token',
        AWS_REGION: 'us-west-2',
        AWS_ACCESS_KEY_ID: 'AKIDE2EBEDROCK',
        AWS_SECRET_ACCESS_KEY: 'e2e-bedrock-secret-key',
        AWS_ENDPOINT_URL_BEDROCK_RUNTIME: bedrock.url,
      },
    });
  });
  afterAll(async () => {
    await e2e.stop();
    await gh.stop();
    await bedrock.stop();
  });

  const webhook = (event: string, payload: unknown) => e2e.webhook(event, payload);

  const repository = REPOSITORY;
  const issueJson = (n: number, title: string, body: string) => ({
    number: n,
    title,
    body,
    state: 'open',
    labels: [{ name: 'ready' }],
    user: { login: 'alice' },
    author_association: 'OWNER',
  });

  /** GitHub's `issues.labeled` delivery of `ready` on issue `n`, by alice. */
  const labelReady = (n: number, title: string, body: string) =>
    webhook('issues', {
      action: 'labeled',
      label: { name: 'ready' },
      issue: issueJson(n, title, body),
      repository,
      sender: { login: 'alice', type: 'User' },
    });

  const getRun = (id: string) => e2e.getRun(id);

  it('a labelled issue is planned by the model and parked for approval with usage and cost recorded', async () => {
    const { title, body } = FIXTURE.issue;
    gh.addIssue(REPO, { number: 7, title, body, labels: ['ready'] });
    gh.files.set(`${REPO}:AGENTS.md`, 'Keep the CLI output stable.');
    const res = await labelReady(7, title, body);
    expect(res.status).toBe(202);
    const id = res.body.run as string;
    const parked = await until('the approval gate', async () => {
      const r = await getRun(id);
      return r.run.status === 'waiting' && r.run.gate?.kind === 'approval' ? r : undefined;
    });

    const req = bedrock.requests[0]!;
    expect(req.modelId).toBe(MODEL);
    expect(req.headers.authorization).toMatch(/Credential=AKIDE2EBEDROCK\/\d+\/us-west-2\/bedrock\//);
    expect(req.prompt).toContain('Keep the CLI output stable.');
    expect(JSON.stringify(req.body)).not.toContain('e2e-bedrock-github-token');

    const created = parked.events.find((e) => e.type === 'plan.created')!;
    expect(created.detail).toMatchObject({
      planner: `bedrock:${MODEL}`,
      usage: FIXTURE.answer.usage,
      costUsd: expect.any(Number),
      tasks: [
        { id: 't1', agent: 'coder' },
        { id: 't2', agent: 'coder' },
        { id: 't3', agent: 'coverage' },
      ],
    });
    const comment = await until('the status comment with the plan', async () =>
      gh.commentsOn(REPO, 7).find((c) => c.body.includes(`#### Plan \`${parked.run.gate?.binding}\``)),
    );
    expect(comment.body).toContain(`Planned by bedrock:${MODEL} · 1477 in / 230 out tokens`);

    // The maintainer rewrites the issue while it waits: the plan is made again.
    gh.issues.get(`${REPO}#7`)!.title = EDITED.issue.title;
    gh.issues.get(`${REPO}#7`)!.body = EDITED.issue.body;
    const edit = await webhook('issues', {
      action: 'edited',
      changes: { title: { from: title } },
      issue: issueJson(7, EDITED.issue.title, EDITED.issue.body),
      repository,
      sender: { login: 'alice', type: 'User' },
    });
    expect(edit.body).toMatchObject({ status: 'issue-edited', runs: [{ run: id, outcome: 'replanned' }] });
    const replanned = await until('the new plan at the gate', async () => {
      const r = await getRun(id);
      return r.run.status === 'waiting' && r.run.gate?.binding !== parked.run.gate?.binding ? r : undefined;
    });
    expect(replanned.events.filter((e) => e.type === 'plan.created')).toHaveLength(2);
    expect(bedrock.requests.at(-1)!.prompt).toContain(EDITED.issue.title);
  });
  it('an edit made while the model plans waits for the plan, and the run is re-planned at its gate', async () => {
    const { title, body } = FIXTURE.issue;
    gh.addIssue(REPO, { number: 8, title, body, labels: ['ready'] });
    const before = bedrock.requests.length;
    const release = bedrock.holdNext();
    const res = await labelReady(8, title, body);
    const id = res.body.run as string;
    // The plan step has read the issue and waits for the model.
    await bedrock.received(before + 1);
    gh.issues.get(`${REPO}#8`)!.title = EDITED.issue.title;
    gh.issues.get(`${REPO}#8`)!.body = EDITED.issue.body;
    const edit = await webhook('issues', {
      action: 'edited',
      changes: { title: { from: title }, body: { from: body } },
      issue: issueJson(8, EDITED.issue.title, EDITED.issue.body),
      repository,
      sender: { login: 'alice', type: 'User' },
    });
    expect(edit.body).toMatchObject({ status: 'issue-edited', runs: [{ run: id, outcome: 'parked' }] });
    release();
    const replanned = await until('the plan of the edited issue at the gate', async () => {
      const r = await getRun(id);
      return r.run.status === 'waiting' &&
        r.run.gate?.kind === 'approval' &&
        r.events.filter((e) => e.type === 'plan.created').length === 2
        ? r
        : undefined;
    });
    expect(bedrock.requests).toHaveLength(before + 2);
    expect(bedrock.requests.at(-1)!.prompt).toContain(EDITED.issue.title);
    expect(replanned.events.some((e) => e.type === 'signal.replan')).toBe(true);
    await until('the status comment with the new plan', async () =>
      gh.commentsOn(REPO, 8).find((c) => c.body.includes(`#### Plan \`${replanned.run.gate?.binding}\``)),
    );
  });
});
