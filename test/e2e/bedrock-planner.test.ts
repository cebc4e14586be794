import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type LocalStack, startLocalStack } from '../../scripts/local-stack.ts';
import { FakeBedrock, ISSUE_FIXTURES } from '../support/fake-bedrock.ts';
import { FakeGitHub } from '../support/fake-github.ts';

/**
 * The local stack with `planner.provider: bedrock` and AWS_ENDPOINT_URL_BEDROCK_RUNTIME pointing
 * at the Converse stand-in: a labelled issue is planned by the model end to end (webhook → run →
 * plan from Converse → approval gate), with the planner, usage and cost in the run's history and
 * on the status comment; an edit while it waits re-plans it.
 */

const SECRET = 'e2e-bedrock-secret';
const REPO = 'acme/app';
const MODEL = 'us.amazon.nova-pro-v1:0';
const FIXTURE = ISSUE_FIXTURES.find((f) => f.name === 'feature with a checklist')!;
const EDITED = ISSUE_FIXTURES.find((f) => f.name === 'empty body')!;

const sign = (body: string) => `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the local stack plans with a model on Bedrock', () => {
  let gh: FakeGitHub;
  let bedrock: FakeBedrock;
  let stack: LocalStack;

  beforeAll(async () => {
    gh = await new FakeGitHub().start();
    bedrock = await new FakeBedrock().start();
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-bedrock-'));
    const config = join(dir, 'switchyard.yml');
    writeFileSync(
      config,
      `
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
`,
    );
    stack = await startLocalStack({
      env: {
        ...process.env,
        DYNAMODB_ENDPOINT: inject('dynamoEndpoint'),
        TABLE_NAME: `e2e-bedrock-${randomBytes(6).toString('hex')}`,
        PORT: '0',
        GITHUB_API_URL: gh.url,
        GITHUB_TOKEN: 'e2e-bedrock-github-token',
        GITHUB_THROTTLE: 'off',
        GITHUB_WEBHOOK_SECRET: SECRET,
        SWITCHYARD_CONFIG: config,
        AWS_REGION: 'us-west-2',
        AWS_ACCESS_KEY_ID: 'AKIDE2EBEDROCK',
        AWS_SECRET_ACCESS_KEY: 'e2e-bedrock-secret-key',
        AWS_ENDPOINT_URL_BEDROCK_RUNTIME: bedrock.url,
      },
      persist: false,
      sweepIntervalMs: 100,
      print: () => {},
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await gh.stop();
    await bedrock.stop();
  });

  async function webhook(event: string, payload: unknown) {
    const body = JSON.stringify(payload);
    const res = await fetch(`${stack.url}/github/webhook`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': event,
        'x-github-delivery': randomUUID(),
        'x-hub-signature-256': sign(body),
      },
      body,
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  const repository = { full_name: REPO, name: 'app', owner: { login: 'acme' }, default_branch: 'main' };
  const issueJson = (n: number, title: string, body: string) => ({
    number: n,
    title,
    body,
    state: 'open',
    labels: [{ name: 'ready' }],
    user: { login: 'alice' },
    author_association: 'OWNER',
  });

  async function getRun(id: string) {
    const res = await fetch(`${stack.url}/runs/${id}`);
    return (await res.json()) as {
      run: { status: string; gate?: { kind: string; binding?: string } };
      events: Array<{ type: string; detail: Record<string, unknown> }>;
    };
  }

  it('a labelled issue is planned by the model and parked for approval with usage and cost recorded', async () => {
    const { title, body } = FIXTURE.issue;
    gh.addIssue(REPO, { number: 7, title, body, labels: ['ready'] });
    gh.files.set(`${REPO}:AGENTS.md`, 'Keep the CLI output stable.');
    const res = await webhook('issues', {
      action: 'labeled',
      label: { name: 'ready' },
      issue: issueJson(7, title, body),
      repository,
      sender: { login: 'alice', type: 'User' },
    });
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
});
