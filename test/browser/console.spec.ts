import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import AxeBuilder from '@axe-core/playwright';
import { expect, type Page, test } from '@playwright/test';
import { type LocalStack, startLocalStack } from '../../scripts/local-stack.ts';
import { FakeGitHubActions } from '../support/fake-github-actions.ts';

/**
 * The run console in a real browser (Debian's Chromium) against the local stack: a labelled issue
 * becomes a run that the list shows; its page draws the graph with the current node marked and
 * follows the run without a reload when it is approved from the CLI path (the engine, as
 * `npm run runs -- approve` does); approving from the page dispatches the agent; run text is text;
 * axe finds no serious violation. Screenshots of both pages go to docs/console/.
 */

const SECRET = 'browser-webhook-secret';
const REPO = 'acme/app';
const EVIL = 'Fix <script>window.__pwned = 1</script> the <img src=x onerror="window.__pwned=2"> parser';

function configFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'switchyard-browser-')), 'switchyard.yml');
  writeFileSync(
    file,
    `version: 1
routing:
  rules:
    - { name: ready, event: issues, action: labeled, label: ready, workflow: issue-pipeline, agents: [planner, coder], priority: 1 }
repoConfig: { enabled: false }
agents:
  planner: { type: planner, permissions: [read] }
  coder:
    type: coder
    executor: actions-agent
    permissions: [read, comment, dispatch_workflow, cancel_workflow]
    concurrency: 2
    envAllowlist: [GITHUB_TOKEN]
executors:
  actions-agent: { type: github-actions, workflow: switchyard-agent.yml, ref: main }
guards: { ci: { enabled: false } }
`,
  );
  return file;
}

let fake: FakeGitHubActions;
let stack: LocalStack;
const printed: string[] = [];

test.beforeAll(async () => {
  fake = await new FakeGitHubActions().start();
  stack = await startLocalStack({
    env: {
      ...process.env,
      TABLE_NAME: `browser-${randomBytes(5).toString('hex')}`,
      PORT: '0',
      GITHUB_API_URL: fake.url,
      GITHUB_TOKEN: 'browser-github-token',
      GITHUB_THROTTLE: 'off',
      GITHUB_WEBHOOK_SECRET: SECRET,
      SWITCHYARD_CONFIG: configFile(),
    },
    persist: false,
    sweepIntervalMs: 200,
    print: (line) => printed.push(line),
  });
});

test.afterAll(async () => {
  await stack?.stop();
  await fake?.stop();
});

/** Label an issue (signed webhook, as GitHub sends it) and wait for its run to park at the approval gate. */
async function labelledRun(number: number, title: string): Promise<string> {
  fake.github.addIssue(REPO, { number, title, body: 'It breaks on `src/parser.ts`.', labels: ['ready'] });
  const payload = {
    action: 'labeled',
    label: { name: 'ready' },
    issue: {
      number,
      title,
      body: 'It breaks on `src/parser.ts`.',
      state: 'open',
      labels: [{ name: 'ready' }],
      user: { login: 'alice' },
      author_association: 'OWNER',
      html_url: `https://github.com/${REPO}/issues/${number}`,
    },
    repository: {
      full_name: REPO,
      name: 'app',
      owner: { login: 'acme' },
      default_branch: 'main',
      private: false,
    },
    sender: { login: 'alice', type: 'User' },
  };
  const body = JSON.stringify(payload);
  const res = await fetch(`${stack.url}/github/webhook`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-github-event': 'issues',
      'x-github-delivery': randomUUID(),
      'x-hub-signature-256': `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`,
    },
    body,
  });
  expect(res.status).toBe(202);
  let id = '';
  await expect
    .poll(async () => {
      const [run] = await stack.store.listRuns({ subject: `${REPO}#${number}` });
      id = run?.id ?? '';
      return run?.status === 'waiting' && run.gate?.kind === 'approval';
    })
    .toBe(true);
  return id;
}

async function seriousViolations(page: Page) {
  const { violations } = await new AxeBuilder({ page }).analyze();
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.help}`);
}

test('npm start prints the console URL', () => {
  expect(printed.some((line) => line.includes(`${stack.url}/console`))).toBe(true);
});

test('the list shows a labelled issue’s run, and renders run text as text', async ({ page }) => {
  const id = await labelledRun(201, EVIL);
  await page.goto(`${stack.url}/console`);
  const row = page.locator(`tr[data-run="${id}"]`);
  await expect(row).toBeVisible();
  await expect(row).toContainText(`${REPO}#201`);
  await expect(row).toContainText('waiting');
  await expect(row).toContainText('approval of plan');
  // The title is shown as the characters it is; nothing in it ran or became an element.
  await expect(row.locator('.title')).toHaveText(EVIL);
  expect(await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
  expect(await page.locator('main script, main img').count()).toBe(0);
  expect(await seriousViolations(page)).toEqual([]);
  await page.screenshot({ path: 'docs/console/list.png', fullPage: true });
});

test('the run page marks the current node, then follows the run by itself when it is approved', async ({
  page,
}) => {
  const id = await labelledRun(202, 'Fix the parser');
  await page.goto(`${stack.url}/console/runs/${id}`);
  const node = (name: string) => page.locator(`svg.graph g[data-node="${name}"]`);
  await expect(node('approval')).toHaveAttribute('data-state', 'current');
  await expect(node('plan')).toHaveAttribute('data-state', 'done');
  await expect(page.locator('[data-plan-version]')).not.toHaveText('');
  await expect(page.locator('.timeline li[data-type="plan.created"]')).toHaveCount(1);
  expect(await seriousViolations(page)).toEqual([]);
  await page.screenshot({ path: 'docs/console/run.png', fullPage: true });

  // A marker that a reload would wipe.
  await page.evaluate(() => {
    (globalThis as unknown as { __still?: boolean }).__still = true;
  });
  const run = await stack.store.getRun(id);
  await stack.app.engine.signal(id, { type: 'approve', by: 'cli:operator', binding: run!.gate!.binding! });

  await expect(node('approval')).toHaveAttribute('data-state', 'done');
  await expect(node('execute')).toHaveAttribute('data-state', 'current');
  await expect(page.locator('.timeline li[data-type="signal.approve"]')).toHaveCount(1);
  expect(await page.evaluate(() => (globalThis as unknown as { __still?: boolean }).__still)).toBe(true);
});

test('approving from the page dispatches the agent', async ({ page }) => {
  const id = await labelledRun(203, 'Add a lexer test');
  await page.goto(`${stack.url}/console/runs/${id}`);
  const version = (await page.locator('[data-plan-version]').textContent()) ?? '';
  await page.getByRole('button', { name: `Approve plan ${version}` }).click();
  await expect(page.locator('.notice')).toHaveText('Approved.');
  await expect.poll(() => fake.dispatches.some((d) => d.inputs.switchyard_run === id)).toBe(true);
  const events = await stack.store.listEvents(id);
  expect(events.find((e) => e.type === 'signal.approve')).toMatchObject({
    by: 'console:local',
    detail: { binding: version },
  });
  expect(events.some((e) => e.type === 'console.action')).toBe(true);
});

test('the history filters by node and event type, and details expand', async ({ page }) => {
  const id = await labelledRun(204, 'Tidy the tokenizer');
  await page.goto(`${stack.url}/console/runs/${id}`);
  const items = page.locator('.timeline > li');
  const total = await items.count();
  await page.locator('select[data-filter="type"]').selectOption('plan.created');
  await expect(page.locator('.timeline > li:visible')).toHaveCount(1);
  await page.locator('select[data-filter="type"]').selectOption('');
  await page.locator('select[data-filter="node"]').selectOption('intake');
  const intake = await page.locator('.timeline > li:visible').count();
  expect(intake).toBeGreaterThan(0);
  expect(intake).toBeLessThan(total);
  await page.locator('select[data-filter="node"]').selectOption('');
  const first = page.locator('.timeline li[data-type="plan.created"] details');
  await first.locator('summary').click();
  await expect(first.locator('pre')).toContainText('"version"');
});

test('serves strict security headers and no inline code', async ({ request }) => {
  const res = await request.get(`${stack.url}/console`);
  const csp = res.headers()['content-security-policy'] ?? '';
  expect(csp).toContain("script-src 'self'");
  expect(csp).not.toContain('unsafe-inline');
  const html = await res.text();
  expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
  expect(html).not.toMatch(/\sstyle=/);
  const cross = await request.post(`${stack.url}/console/runs/whatever/actions`, {
    headers: { origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
    data: 'action=cancel&csrf=x',
  });
  expect(cross.status()).toBe(403);
});
