import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LocalStack, type LocalStackOptions, startLocalStack } from '../../scripts/local-stack.ts';

/**
 * The local stack as the end-to-end tests (test/support/e2e.ts) and the benches that drive it
 * (bench/cost.ts, bench/faults.ts) start it: a fresh table, GitHub played by a stand-in, signed
 * webhooks, the config in a file of its own. No vitest import here (e2e.ts adds vitest's `inject`
 * for the suite's DynamoDB Local), so the benches can use it under plain `tsx`.
 */

/** Polls `fn` (a read of the store, the run API or a stand-in's record) until it yields; the bound only turns a hang into an error naming what never happened. */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  pollMs = 50,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

let configDir: string | undefined;

/** Writes a central config to a fresh file and returns its path (for `SWITCHYARD_CONFIG`). */
export function configFile(yaml: string): string {
  configDir ??= mkdtempSync(join(tmpdir(), 'switchyard-stack-'));
  const file = join(configDir, `config-${randomBytes(4).toString('hex')}.yml`);
  writeFileSync(file, yaml);
  return file;
}

/**
 * The rule and agents most runs on the stack use: a `ready` label starts the issue pipeline with a
 * planner and a coder that works through a GitHub Actions workflow. `extra` is appended (more
 * top-level keys); `coder` adds keys to the coder agent (its `concurrency`, say).
 */
export function readyToCoder(opts: { coder?: string; extra?: string } = {}): string {
  return `
version: 1
routing:
  rules:
    - name: ready
      event: issues
      action: labeled
      label: ready
      workflow: issue-pipeline
      agents: [planner, coder]
repoConfig: { enabled: false }
agents:
  planner: { type: planner, permissions: [read] }
  coder:
    type: coder
    executor: actions-agent
    permissions: [read, comment, dispatch_workflow, cancel_workflow]
${opts.coder ? `    ${opts.coder.trim()}\n` : ''}executors:
  actions-agent: { type: github-actions, workflow: switchyard-agent.yml, ref: main }
${opts.extra?.trim() ?? ''}
`;
}

export interface IssueText {
  title: string;
  body: string;
}

/** A repository as GitHub's webhooks carry it. */
export function repository(repo: string) {
  const [owner = '', name = ''] = repo.split('/');
  return { full_name: repo, name, owner: { login: owner }, default_branch: 'main', private: false };
}

/** An `issues` payload in GitHub's shape (default: `labeled` with `ready`, opened by its owner alice). */
export function issuePayload(
  repo: string,
  number: number,
  text: IssueText,
  opts: { action?: string; label?: string } = {},
) {
  const label = opts.label ?? 'ready';
  const action = opts.action ?? 'labeled';
  return {
    action,
    ...(action === 'labeled' ? { label: { name: label } } : {}),
    issue: {
      number,
      title: text.title,
      body: text.body,
      state: 'open',
      labels: [{ name: label }],
      user: { login: 'alice' },
      author_association: 'OWNER',
      html_url: `https://github.com/${repo}/issues/${number}`,
    },
    repository: repository(repo),
    sender: { login: 'alice', type: 'User' },
  };
}

/** `X-Hub-Signature-256` of a body, as GitHub signs it with the webhook secret. */
export function webhookSignature(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** The headers of a signed webhook delivery. */
export function webhookHeaders(
  secret: string,
  event: string,
  body: string,
  delivery: string,
): Record<string, string> {
  return {
    'content-type': 'application/json',
    'x-github-event': event,
    'x-github-delivery': delivery,
    'x-hub-signature-256': webhookSignature(secret, body),
  };
}

export interface StackOptions extends Omit<LocalStackOptions, 'env'> {
  /** DynamoDB Local (or a proxy in front of it). */
  dynamoEndpoint: string;
  /** The central config's path (`configFile`). */
  config: string;
  /** The GitHub stand-in (or a proxy in front of it). */
  githubUrl: string;
  /** The webhook secret deliveries are signed with. */
  secret: string;
  /** Default: a fresh table. */
  table?: string;
  /** Added to (or overriding) the stack's environment. */
  env?: Record<string, string>;
}

/**
 * The stack on a table of its own, GitHub at `githubUrl` with a token and no write spacing, in
 * memory, quiet, on an ephemeral port; `opts` overrides the sweep interval, queue and engine.
 */
export function startStack(opts: StackOptions): Promise<LocalStack> {
  const { dynamoEndpoint, config, githubUrl, secret, table, env, ...rest } = opts;
  return startLocalStack({
    persist: false,
    print: () => {},
    ...rest,
    env: {
      ...process.env,
      DYNAMODB_ENDPOINT: dynamoEndpoint,
      TABLE_NAME: table ?? `stack-${randomBytes(6).toString('hex')}`,
      PORT: '0',
      GITHUB_API_URL: githubUrl,
      GITHUB_TOKEN: 'stack-github-token',
      GITHUB_THROTTLE: 'off',
      GITHUB_WEBHOOK_SECRET: secret,
      SWITCHYARD_CONFIG: config,
      ...env,
    },
  });
}
