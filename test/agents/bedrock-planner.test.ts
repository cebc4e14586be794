import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BedrockPlanner, bedrockClient, plannerFromConfig } from '../../lib/agents/bedrock-planner.ts';
import { plan } from '../../lib/agents/plan.ts';
import { deterministicPlanner, type PlanInput, planVersion } from '../../lib/agents/planner.ts';
import { MAX_PROMPT_CHARS } from '../../lib/agents/planner-prompt.ts';
import { withStepSignal } from '../../lib/engine/abort.ts';
import { StepTimeoutError } from '../../lib/engine/errors.ts';
import type { NewEvent, Run } from '../../lib/engine/types.ts';
import { GitHubClientFactory } from '../../lib/github/client.ts';
import { parseConfigSource } from '../../lib/routing/config.ts';
import { estimateCostUsd } from '../../lib/routing/planner-config.ts';
import { ConfigProvider } from '../../lib/routing/repo-config.ts';
import type { GitHubServices } from '../../lib/routing/services.ts';
import type { DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { createTestStore } from '../support/dynamo.ts';
import { awsError, converseResponse, FakeBedrock, ISSUE_FIXTURES } from '../support/fake-bedrock.ts';
import { FakeGitHub } from '../support/fake-github.ts';

/**
 * The Bedrock planner against a Converse stand-in reached through the SDK's own
 * AWS_ENDPOINT_URL_BEDROCK_RUNTIME, with GitHub played by its loopback fake: the request the model
 * gets, the plan that comes back (corrected where the model strayed), usage and cost, and the
 * fallback to the deterministic plan on errors, refusals and bad answers.
 */

const TOKEN = 'ghp_plannerTestToken0123456789abcdefXYZ';
const REPO = 'acme/app';
const MODEL = 'us.anthropic.claude-3-5-haiku-20241022-v1:0';

const YAML = `
version: 1
repoConfig: { enabled: false }
guards: { ci: { enabled: false } }
agents:
  planner: { type: planner, permissions: [read] }
  coder: { type: coder, description: Writes the code and opens a pull request., permissions: [read, comment] }
  coverage: { type: coverage, description: Writes and fixes tests., permissions: [read] }
  reviewer: { type: reviewer, permissions: [read] }
planner:
  provider: bedrock
  model: ${MODEL}
  region: us-east-1
  maxTasks: 12
  maxOutputTokens: 2048
`;

describe('the Bedrock planner', () => {
  let bedrock: FakeBedrock;
  let gh: FakeGitHub;
  let store: DynamoRunStore;
  let services: GitHubServices;
  let central: ReturnType<typeof parseConfigSource>;
  let issueNo = 0;

  beforeAll(async () => {
    bedrock = await new FakeBedrock().start();
    gh = await new FakeGitHub(TOKEN).start();
    // The SDK's standard settings, read by the SDK itself from the environment.
    process.env.AWS_ENDPOINT_URL_BEDROCK_RUNTIME = bedrock.url;
    process.env.AWS_ACCESS_KEY_ID = 'AKIDPLANNERTEST';
    process.env.AWS_SECRET_ACCESS_KEY = 'planner-test-secret-key';
    process.env.GITHUB_TOKEN = TOKEN;
    store = await createTestStore();
    central = parseConfigSource(YAML, 'planner.yml');
    services = {
      github: new GitHubClientFactory({
        credentials: { kind: 'token', token: TOKEN },
        baseUrl: gh.url,
        throttle: false,
      }),
      store,
      config: new ConfigProvider({ central, store }),
      planner: plannerFromConfig(central.config.planner),
    };
  });
  afterAll(async () => {
    await bedrock.stop();
    await gh.stop();
  });
  beforeEach(() => {
    bedrock.reset();
    gh.requests.length = 0;
  });

  function runFor(issue: number, agents = ['planner', 'coder', 'coverage']): Run {
    const at = new Date().toISOString();
    return {
      id: `r-plan-${issue}`,
      workflow: 'issue-pipeline',
      status: 'running',
      node: 'plan',
      subject: { repo: REPO, issue, key: `${REPO}#${issue}` },
      trigger: { source: 'github', event: 'issues.labeled' },
      createdAt: at,
      updatedAt: at,
      version: 3,
      data: { routing: { outcome: 'run', agents, reason: 'rule ready' } },
      eventSeq: 0,
    };
  }

  async function planIssue(
    issue: {
      title: string;
      body: string;
      labels: string[];
      comments?: Array<{ user: string; body: string }>;
    },
    agents?: string[],
  ) {
    const number = ++issueNo;
    gh.addIssue(REPO, { number, title: issue.title, body: issue.body, labels: issue.labels });
    for (const c of issue.comments ?? []) gh.addComment(REPO, number, c.body, c.user);
    const events: NewEvent[] = [];
    const res = await plan(services, {
      run: runFor(number, agents),
      node: 'plan',
      emit: (e) => events.push(e),
    });
    return { ...res, events, number };
  }

  const eventOf = (events: NewEvent[], type: string) => events.find((e) => e.type === type);

  it.each(ISSUE_FIXTURES.map((f) => [f.name, f] as const))(
    'plans the %s issue from the model’s recorded answer, corrected and priced',
    async (_name, fixture) => {
      const { plan: p, events } = await planIssue(fixture.issue);

      // The request: the configured model, the one forced tool, a bounded prompt without secrets.
      expect(bedrock.requests).toHaveLength(1);
      const req = bedrock.requests[0]!;
      expect(req.modelId).toBe(MODEL);
      expect(req.body.toolConfig?.toolChoice).toEqual({ tool: { name: 'submit_plan' } });
      expect(req.body.toolConfig?.tools.map((t) => t.toolSpec.name)).toEqual(['submit_plan']);
      expect(req.body.inferenceConfig?.maxTokens).toBe(2048);
      expect(req.headers.authorization).toMatch(
        /^AWS4-HMAC-SHA256 Credential=AKIDPLANNERTEST\/\d+\/us-east-1\/bedrock\//,
      );
      expect(req.prompt.length).toBeLessThanOrEqual(MAX_PROMPT_CHARS);
      expect(JSON.stringify(req.body)).not.toContain(TOKEN);
      expect(JSON.stringify(req.body)).not.toContain('planner-test-secret-key');
      expect(req.prompt).toMatch(/<<<UNTRUSTED issue-body [0-9a-f]{12}>>>/);

      // The plan: what the model said, minus what it may not say.
      expect(p.planner).toBe(`bedrock:${MODEL}`);
      expect(p.tasks).toHaveLength(fixture.expect.tasks);
      expect(p.tasks.map((t) => t.agent)).toEqual(
        fixture.expect.agents.length === p.tasks.length
          ? fixture.expect.agents
          : p.tasks.map(() => fixture.expect.agents[0]),
      );
      expect((p.adjustments ?? []).map((a) => a.kind)).toEqual(fixture.expect.adjustments ?? []);
      if (fixture.expect.files) expect(p.files).toEqual(fixture.expect.files);
      expect(p.version).toBe(planVersion(p));

      // Usage and cost on plan.created.
      const created = eventOf(events, 'plan.created')!;
      expect(created.detail).toMatchObject({
        planner: `bedrock:${MODEL}`,
        version: p.version,
        usage: fixture.answer.usage,
        costUsd: estimateCostUsd(MODEL, fixture.answer.usage),
      });
      expect(created.detail.costUsd).toBeGreaterThan(0);
      expect(eventOf(events, 'plan.fallback')).toBeUndefined();
    },
  );

  it('never lets the injected "admin" agent through, and keeps the injection fenced as data', async () => {
    const f = ISSUE_FIXTURES.find((x) => x.name === 'prompt injection')!;
    const { plan: p } = await planIssue(f.issue);
    expect(p.tasks.every((t) => t.agent === 'coder' || t.agent === 'coverage')).toBe(true);
    expect(p.adjustments?.[0]?.detail).toMatch(/agent "admin" is not allowed; assigned to coder/);
    const prompt = bedrock.requests[0]!.prompt;
    const body = prompt.slice(prompt.indexOf('<<<UNTRUSTED issue-body'));
    expect(body.indexOf('ignore previous instructions')).toBeLessThan(
      body.indexOf('<<<END UNTRUSTED issue-body'),
    );
    // The tool schema offers only the selected agents.
    const schema = bedrock.requests[0]!.body.toolConfig!.tools[0]!.toolSpec.inputSchema.json as {
      properties: { tasks: { items: { properties: { agent: { enum: string[] } } } } };
    };
    expect(schema.properties.tasks.items.properties.agent.enum).toEqual(['coder', 'coverage']);
  });

  it('redacts credentials quoted in the issue and keeps every part of a huge issue bounded', async () => {
    const f = ISSUE_FIXTURES[0]!;
    const { events } = await planIssue({
      ...f.issue,
      body: `${f.issue.body}\n\nMy token is ${TOKEN} and the key AKIAIOSFODNN7EXAMPLE.\n${'x'.repeat(100_000)}`,
      comments: Array.from({ length: 30 }, (_, i) => ({
        user: `u${i}`,
        body: `comment ${i} ${'y'.repeat(5_000)}`,
      })),
    });
    const prompt = bedrock.requests[0]!.prompt;
    expect(prompt).not.toContain(TOKEN);
    expect(prompt).not.toContain('AKIAIOSFODNN7EXAMPLE');
    expect(prompt).toContain('[redacted]');
    expect(prompt).toMatch(/truncated: \d+ more characters not shown/);
    expect(prompt).toContain('Last 5 comments, oldest first (15 earlier not shown)');
    expect(prompt).not.toContain('comment 24 ');
    expect(prompt).toContain('comment 29 ');
    expect(prompt.length).toBeLessThanOrEqual(MAX_PROMPT_CHARS);
    expect(eventOf(events, 'plan.created')?.detail.planner).toBe(`bedrock:${MODEL}`);
  });

  it("shows the model the repository's agent instructions and top-level tree, not Switchyard's own comments", async () => {
    gh.files.set(`${REPO}:AGENTS.md`, 'Run npm test before every commit.');
    gh.files.set(`${REPO}:.github/copilot-instructions.md`, 'Prefer small pull requests.');
    gh.files.set(`${REPO}:lib/index.ts`, 'export {};');
    const f = ISSUE_FIXTURES.find((x) => x.name === 'with comments')!;
    const number = issueNo + 1;
    gh.addComment(REPO, number, '<!-- switchyard:run:r1 --> status', 'switchyard[bot]');
    await planIssue(f.issue);
    const prompt = bedrock.requests[0]!.prompt;
    expect(prompt).toContain('Run npm test before every commit.');
    expect(prompt).toContain('Prefer small pull requests.');
    expect(prompt).toMatch(
      /Top-level entries of the repository:\n<<<UNTRUSTED tree [0-9a-f]+>>>\n[\s\S]*lib\//,
    );
    expect(prompt).toContain('Please include the backoff numbers.');
    expect(prompt).not.toContain('switchyard:run');
    expect(prompt).toContain('coder: coder — Writes the code and opens a pull request.');
    gh.files.clear();
  });

  it('retries throttling with backoff and then plans from the model', async () => {
    bedrock.script({ ...awsError(429, 'ThrottlingException', 'Too many requests'), times: 2 });
    const { plan: p, events } = await planIssue(ISSUE_FIXTURES[0]!.issue);
    expect(bedrock.requests).toHaveLength(3);
    expect(p.planner).toBe(`bedrock:${MODEL}`);
    expect(eventOf(events, 'plan.fallback')).toBeUndefined();
  });

  it('falls back to the deterministic plan when the model keeps answering 500, and says why', async () => {
    bedrock.script({ ...awsError(500, 'InternalServerException', 'boom'), times: 100 });
    const issue = ISSUE_FIXTURES.find((x) => x.name === 'feature with a checklist')!.issue;
    const { plan: p, events } = await planIssue(issue);
    expect(bedrock.requests.length).toBe(4);
    expect(p.planner).toBe('deterministic');
    const expected = await deterministicPlanner.plan({
      repo: REPO,
      issue: 0,
      title: issue.title,
      body: issue.body,
      labels: issue.labels,
      agents: [
        { name: 'coder', type: 'coder' },
        { name: 'coverage', type: 'coverage' },
      ],
    });
    expect(p.tasks).toEqual(expected.tasks);
    expect(eventOf(events, 'plan.fallback')?.detail).toMatchObject({
      from: `bedrock:${MODEL}`,
      reason: 'model-error',
      error: expect.stringContaining('InternalServerException'),
    });
    expect(eventOf(events, 'plan.created')?.detail).toMatchObject({
      planner: 'deterministic',
      fallbackFrom: `bedrock:${MODEL}`,
      usage: { inputTokens: 0, outputTokens: 0 },
    });
  });

  it('falls back on invalid tool input after one more try, counting the tokens both answers cost', async () => {
    const usage = { inputTokens: 1000, outputTokens: 50 };
    bedrock.script({
      status: 200,
      body: converseResponse({ toolInput: { summary: 42, tasks: 'all of them' }, usage }),
      times: 2,
    });
    const { plan: p, events } = await planIssue(ISSUE_FIXTURES[0]!.issue);
    expect(bedrock.requests).toHaveLength(2);
    expect(p.planner).toBe('deterministic');
    expect(eventOf(events, 'plan.fallback')?.detail).toMatchObject({ reason: 'invalid-output' });
    const spent = { inputTokens: 2000, outputTokens: 100 };
    expect(eventOf(events, 'plan.created')?.detail).toMatchObject({
      usage: spent,
      costUsd: estimateCostUsd(MODEL, spent),
    });
  });

  it('falls back on a text answer without the tool call', async () => {
    bedrock.script({
      status: 200,
      body: converseResponse({
        text: 'Sure! Here is my plan: first, fix the bug.',
        usage: { inputTokens: 900, outputTokens: 20 },
      }),
      times: 2,
    });
    const { plan: p, events } = await planIssue(ISSUE_FIXTURES[0]!.issue);
    expect(p.planner).toBe('deterministic');
    expect(eventOf(events, 'plan.fallback')?.detail).toMatchObject({
      reason: 'no-tool-call',
      error: expect.stringContaining('Here is my plan'),
    });
  });

  it('falls back at once on a refusal (content filtered)', async () => {
    bedrock.script({
      status: 200,
      body: converseResponse({
        stopReason: 'content_filtered',
        usage: { inputTokens: 700, outputTokens: 0 },
      }),
    });
    const { plan: p, events } = await planIssue(ISSUE_FIXTURES[0]!.issue);
    expect(bedrock.requests).toHaveLength(1);
    expect(p.planner).toBe('deterministic');
    expect(eventOf(events, 'plan.fallback')?.detail).toMatchObject({ reason: 'refusal' });
  });

  it('drops a task whose agent is not allowed when no default agent was selected', async () => {
    const planner = new BedrockPlanner({
      config: { ...central.config.planner, model: MODEL },
      client: bedrockClient({ region: 'us-east-1' }),
    });
    bedrock.script({
      status: 200,
      body: converseResponse({
        toolInput: {
          summary: 'Write it up.',
          tasks: [
            { title: 'Write the release notes', agent: 'scribe' },
            { title: 'Change the code', agent: 'coder' },
          ],
        },
        usage: { inputTokens: 500, outputTokens: 40 },
      }),
    });
    const out = await planner.plan({
      repo: REPO,
      issue: 1,
      title: 'Release notes for 1.0',
      body: '',
      labels: [],
      agents: [{ name: 'scribe', type: 'reporter' }],
    });
    expect(out.tasks.map((t) => [t.title, t.agent])).toEqual([['Write the release notes', 'scribe']]);
    expect(out.adjustments).toEqual([
      {
        kind: 'dropped',
        task: 2,
        detail: 'task 2 dropped: agent "coder" is not allowed and no default agent was selected',
      },
    ]);
  });

  describe("honours the step's AbortSignal (issue #9, defect 8)", () => {
    const input = (): PlanInput => ({
      repo: REPO,
      issue: 1,
      title: ISSUE_FIXTURES[0]!.issue.title,
      body: ISSUE_FIXTURES[0]!.issue.body,
      labels: [],
      agents: [{ name: 'coder', type: 'coder' }],
    });

    it('cancels a model call in flight when the step times out, and neither retries nor falls back', async () => {
      const step = new AbortController();
      bedrock.hang();

      const planning = withStepSignal(step.signal, () => services.planner!.plan(input())).catch(
        (err: unknown) => err,
      );
      await bedrock.received(1);
      step.abort();

      expect(await planning).toBeInstanceOf(StepTimeoutError);
      await bedrock.cancelledAtLeast(1);
      expect(bedrock.requests).toHaveLength(1);
    });

    it('starts no model call once the step has timed out', async () => {
      const step = new AbortController();
      step.abort();

      const outcome = await withStepSignal(step.signal, () => services.planner!.plan(input())).catch(
        (err: unknown) => err,
      );

      expect(outcome).toBeInstanceOf(StepTimeoutError);
      expect(bedrock.requests).toHaveLength(0);
    });
  });

  it('stays deterministic unless the config says bedrock', () => {
    expect(plannerFromConfig(undefined)).toBe(deterministicPlanner);
    expect(plannerFromConfig({ ...central.config.planner, provider: 'deterministic' })).toBe(
      deterministicPlanner,
    );
  });
});
