import {
  BedrockRuntimeClient,
  ConverseCommand,
  type ConverseCommandOutput,
} from '@aws-sdk/client-bedrock-runtime';
import { z } from 'zod';
import { type ErrorContext, SwitchyardError } from '../common/errors.ts';
import { logger } from '../common/observability.ts';
import { callSignal, stepSignal, throwIfStepAborted } from '../engine/abort.ts';
import { StepTimeoutError } from '../engine/errors.ts';
import { estimateCostUsd, type PlannerConfig } from '../routing/planner-config.ts';
import {
  assign,
  deterministicPlanner,
  type PlanAdjustment,
  type PlanInput,
  type Planner,
  type PlanOutcome,
  type PlanTask,
  type PlanUsage,
} from './planner.ts';
import { buildPrompt, SYSTEM_PROMPT } from './planner-prompt.ts';

/**
 * A planner on Amazon Bedrock, through the Converse API. The model must call one tool,
 * `submit_plan`; its input is validated with zod and then corrected, never trusted:
 *
 * - a task for an agent outside the allowed set goes to the default agent for its title (the
 *   deterministic planner's choice), or is dropped when there is none; both are recorded;
 * - tasks beyond `maxTasks` are dropped and recorded;
 * - file paths must be plain repository paths (relative, no `..`, no scheme), others are refused.
 *
 * Throttles and 5xx are retried with backoff by the SDK's standard retry strategy. A model error,
 * a refusal or invalid output (after one more try) falls back to the deterministic plan, with the
 * reason in `fallback` and the tokens spent in `usage`, so the run goes on and the spend is counted.
 *
 * The client is the SDK's own: the endpoint comes from the SDK's standard
 * `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` (how tests reach a stand-in), credentials from the default
 * chain (the worker's IAM role on AWS; no API key).
 */

export const SUBMIT_PLAN = 'submit_plan';

/** What the model answers through the tool. Extra keys are dropped, limits keep a runaway answer small. */
export const PlanAnswerSchema = z.object({
  summary: z.string().max(4_000),
  tasks: z
    .array(
      z.object({
        title: z.string().trim().min(1).max(1_000),
        agent: z.string().trim().min(1).max(200),
        files: z.array(z.string().max(1_000)).max(100).optional(),
        rationale: z.string().max(4_000).optional(),
      }),
    )
    .min(1)
    .max(200),
});
export type PlanAnswer = z.output<typeof PlanAnswerSchema>;

/** The tool's input schema as the model sees it (JSON Schema). */
export function submitPlanSchema(agents: readonly string[], maxTasks: number): Record<string, unknown> {
  return {
    type: 'object',
    properties: {
      summary: { type: 'string', description: 'Two or three sentences: what the plan achieves.' },
      tasks: {
        type: 'array',
        maxItems: maxTasks,
        items: {
          type: 'object',
          properties: {
            title: { type: 'string', description: 'What to do, as one imperative sentence.' },
            agent: { type: 'string', enum: [...agents], description: 'The allowed agent that does it.' },
            files: {
              type: 'array',
              items: { type: 'string' },
              description: 'Repository paths the task changes, relative to the root.',
            },
            rationale: { type: 'string', description: 'Why this task, in one sentence.' },
          },
          required: ['title', 'agent'],
        },
      },
    },
    required: ['summary', 'tasks'],
  };
}

/** A plain repository path: relative, forward slashes, no `.`/`..` segments, no scheme or control characters. */
export function isPlainRepoPath(p: string): boolean {
  if (p.length === 0 || p.length > 300) return false;
  if (p.startsWith('/') || p.includes('\\') || p.includes('//')) return false;
  if (/^[a-z][a-z0-9+.-]*:/i.test(p)) return false;
  if (/[<>"|?*`$]/.test(p) || /\p{Cc}/u.test(p)) return false;
  return p
    .replace(/\/$/, '')
    .split('/')
    .every((seg) => seg !== '' && seg !== '.' && seg !== '..' && seg.trim() === seg);
}

type Fallback = NonNullable<PlanOutcome['fallback']>;

/** The model's answer could not be used; another attempt may do better, except after a refusal. */
class PlanRejected extends SwitchyardError {
  override name = 'PlanRejected';
  readonly reason: 'refusal' | 'no-tool-call' | 'invalid-output' | 'no-usable-tasks';
  constructor(message: string, options: ErrorContext & { reason: PlanRejected['reason'] }) {
    super(message, options);
    this.reason = options.reason;
  }
}

export interface BedrockPlannerOptions {
  config: PlannerConfig & { model: string };
  /** The SDK client (or anything with its `send`); built from the config's region when absent. */
  client?: Pick<BedrockRuntimeClient, 'send'>;
  /** Secret values the worker holds (tokens), scrubbed from every prompt. */
  secrets?: () => readonly string[];
  /** Wall-clock budget for all model calls of one plan (the plan step has to finish after a fallback). */
  budgetMs?: number;
  /** Model calls for invalid output or a missing tool call before falling back (default 2). */
  attempts?: number;
}

/** A Bedrock runtime client: the config's region (else the function's), the SDK's standard retries and endpoint override. */
export function bedrockClient(
  config: Pick<PlannerConfig, 'region'>,
  env: NodeJS.ProcessEnv = process.env,
): BedrockRuntimeClient {
  const region = config.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  // The SDK reads AWS_ENDPOINT_URL_BEDROCK_RUNTIME from process.env by itself; an environment
  // handed in explicitly (the local stack, tests) is honoured the same way.
  const endpoint = env === process.env ? undefined : env.AWS_ENDPOINT_URL_BEDROCK_RUNTIME;
  const credentials =
    env !== process.env && env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
      ? {
          accessKeyId: env.AWS_ACCESS_KEY_ID,
          secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
          ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
        }
      : undefined;
  return new BedrockRuntimeClient({
    ...(region ? { region } : {}),
    ...(endpoint ? { endpoint } : {}),
    ...(credentials ? { credentials } : {}),
    // Throttles and 5xx: the standard strategy's exponential backoff with jitter.
    maxAttempts: 4,
  });
}

export class BedrockPlanner implements Planner {
  readonly name: string;
  readonly wantsContext = true;
  private readonly client: Pick<BedrockRuntimeClient, 'send'>;

  constructor(private readonly opts: BedrockPlannerOptions) {
    this.name = `bedrock:${opts.config.model}`;
    this.client = opts.client ?? bedrockClient(opts.config);
  }

  async plan(input: PlanInput): Promise<PlanOutcome> {
    const usage: PlanUsage = { inputTokens: 0, outputTokens: 0 };
    const allowed = input.agents.map((a) => a.name);
    const attempts = this.opts.attempts ?? 2;
    // The planning budget combined with the step's own signal (lib/engine/abort.ts), as the GitHub
    // and Discord clients do: no model call starts, or goes on, once the plan step timed out.
    const deadline = callSignal(this.opts.budgetMs ?? 60_000)!;
    let failure: Fallback;
    for (let attempt = 1; ; attempt++) {
      try {
        throwIfStepAborted('Bedrock Converse call');
        const res = await this.converse(input, allowed, deadline);
        usage.inputTokens += res.usage?.inputTokens ?? 0;
        usage.outputTokens += res.usage?.outputTokens ?? 0;
        const answer = this.answerOf(res);
        const { tasks, adjustments } = this.correct(answer, input);
        if (tasks.length === 0)
          throw new PlanRejected('no task was left after checking agents and limits', {
            reason: 'no-usable-tasks',
          });
        return {
          title: input.title,
          summary: answer.summary.trim().replace(/\s+/g, ' ').slice(0, 1_000),
          tasks,
          files: [...new Set(tasks.flatMap((t) => t.files))],
          planner: this.name,
          ...this.spend(usage),
          ...(adjustments.length > 0 ? { adjustments } : {}),
        };
      } catch (err) {
        // The step is over: its outcome is already decided, so neither a retry nor a fallback.
        if (stepSignal()?.aborted) {
          throw err instanceof StepTimeoutError
            ? err
            : new StepTimeoutError('Bedrock planning stopped: the step timed out', { cause: err });
        }
        const retryable =
          err instanceof PlanRejected && err.reason !== 'refusal' && !deadline.aborted && attempt < attempts;
        if (retryable) continue;
        failure = {
          from: this.name,
          reason: err instanceof PlanRejected ? err.reason : 'model-error',
          error: `${(err as Error).name}: ${(err as Error).message}`.slice(0, 500),
        };
        break;
      }
    }
    logger.warn('planner fell back to the deterministic plan', { repo: input.repo, ...failure });
    const draft = await deterministicPlanner.plan(input);
    return { ...draft, planner: deterministicPlanner.name, ...this.spend(usage), fallback: failure };
  }

  private spend(usage: PlanUsage): Pick<PlanOutcome, 'usage' | 'costUsd'> {
    const cost = estimateCostUsd(this.opts.config.model, usage, this.opts.config.prices);
    return { usage: { ...usage }, ...(cost !== undefined ? { costUsd: cost } : {}) };
  }

  private converse(input: PlanInput, allowed: string[], signal: AbortSignal): Promise<ConverseCommandOutput> {
    const { config } = this.opts;
    const prompt = buildPrompt(input, {
      maxTasks: config.maxTasks,
      secrets: this.opts.secrets?.() ?? [],
    });
    return this.client.send(
      new ConverseCommand({
        modelId: config.model,
        system: [{ text: SYSTEM_PROMPT }],
        messages: [{ role: 'user', content: [{ text: prompt }] }],
        inferenceConfig: { maxTokens: config.maxOutputTokens, temperature: 0 },
        toolConfig: {
          tools: [
            {
              toolSpec: {
                name: SUBMIT_PLAN,
                description: 'Submit the plan for this issue.',
                inputSchema: { json: submitPlanSchema(allowed, config.maxTasks) as never },
              },
            },
          ],
          toolChoice: { tool: { name: SUBMIT_PLAN } },
        },
      }),
      { abortSignal: signal },
    );
  }

  private answerOf(res: ConverseCommandOutput): PlanAnswer {
    if (res.stopReason === 'content_filtered' || res.stopReason === 'guardrail_intervened')
      throw new PlanRejected(`the model refused (${res.stopReason})`, { reason: 'refusal' });
    const content = res.output?.message?.content ?? [];
    const call = content.find((c) => c.toolUse?.name === SUBMIT_PLAN)?.toolUse;
    if (!call) {
      const text = content.flatMap((c) => (c.text ? [c.text] : [])).join(' ');
      throw new PlanRejected(
        `no ${SUBMIT_PLAN} call (stop reason ${res.stopReason ?? 'none'})${text ? `; answered ${JSON.stringify(text.slice(0, 120))}` : ''}`,
        { reason: 'no-tool-call' },
      );
    }
    const parsed = PlanAnswerSchema.safeParse(call.input);
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      throw new PlanRejected(
        `invalid ${SUBMIT_PLAN} input: ${first ? `${first.path.join('.') || '(root)'}: ${first.message}` : 'unknown'}`,
        { reason: 'invalid-output' },
      );
    }
    return parsed.data;
  }

  /** Agents, limits and paths, checked; every change recorded. */
  private correct(
    answer: PlanAnswer,
    input: PlanInput,
  ): { tasks: PlanTask[]; adjustments: PlanAdjustment[] } {
    const max = this.opts.config.maxTasks;
    const allowed = new Set(input.agents.map((a) => a.name));
    const adjustments: PlanAdjustment[] = [];
    const tasks: PlanTask[] = [];
    answer.tasks.forEach((t, i) => {
      const n = i + 1;
      if (i >= max) {
        adjustments.push({
          kind: 'over-limit',
          task: n,
          detail: `task ${n} dropped: more than ${max} tasks`,
        });
        return;
      }
      const shown = (s: string) => JSON.stringify(s.slice(0, 60));
      let agent = t.agent;
      if (!allowed.has(agent)) {
        const fallback = assign(t.title, input.agents);
        if (!allowed.has(fallback)) {
          adjustments.push({
            kind: 'dropped',
            task: n,
            detail: `task ${n} dropped: agent ${shown(agent)} is not allowed and no default agent was selected`,
          });
          return;
        }
        adjustments.push({
          kind: 'reassigned',
          task: n,
          detail: `task ${n}: agent ${shown(agent)} is not allowed; assigned to ${fallback}`,
        });
        agent = fallback;
      }
      const files: string[] = [];
      for (const f of t.files ?? []) {
        const p = f.trim().replace(/^\.\//, '');
        if (isPlainRepoPath(p)) {
          if (!files.includes(p)) files.push(p);
        } else
          adjustments.push({ kind: 'file-refused', task: n, detail: `task ${n}: path ${shown(f)} refused` });
      }
      const rationale = t.rationale?.trim().replace(/\s+/g, ' ').slice(0, 500);
      tasks.push({
        id: `t${tasks.length + 1}`,
        title: t.title.replace(/\s+/g, ' ').slice(0, 300),
        agent,
        files: files.slice(0, 20),
        done: false,
        ...(rationale ? { rationale } : {}),
      });
    });
    return { tasks, adjustments };
  }
}

/** The planner the config asks for: the deterministic one unless `planner.provider` is `bedrock`. */
export function plannerFromConfig(
  config: PlannerConfig | undefined,
  opts: { env?: NodeJS.ProcessEnv; client?: Pick<BedrockRuntimeClient, 'send'> } = {},
): Planner {
  if (config?.provider !== 'bedrock' || !config.model) return deterministicPlanner;
  const env = opts.env ?? process.env;
  return new BedrockPlanner({
    config: { ...config, model: config.model },
    client: opts.client ?? bedrockClient(config, env),
    secrets: () => secretValues(env),
  });
}

/** The secret values a worker may hold, scrubbed from prompts even if an issue quotes one. */
export function secretValues(env: NodeJS.ProcessEnv): string[] {
  return [
    'GITHUB_TOKEN',
    'GITHUB_WEBHOOK_SECRET',
    'GITHUB_APP_PRIVATE_KEY',
    'DISCORD_BOT_TOKEN',
    'AWS_SECRET_ACCESS_KEY',
    'AWS_SESSION_TOKEN',
  ].flatMap((k) => (env[k] ? [env[k] as string] : []));
}
