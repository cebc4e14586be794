import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NewEvent } from '../../lib/engine/types.ts';
import { EventCollector, GitHubClientFactory } from '../../lib/github/client.ts';
import { type GitHubApiError, PermissionDeniedError } from '../../lib/github/errors.ts';
import type { AgentIdentity } from '../../lib/github/permissions.ts';
import { FakeGitHub } from '../support/fake-github.ts';

const REPO = 'acme/app';
const TOKEN = 'ghp-test-token';
const commenter: AgentIdentity = { name: 'commenter', permissions: ['read', 'comment'] };
const labeller: AgentIdentity = { name: 'labeller', permissions: ['read', 'comment', 'apply_labels'] };

describe('GitHub client', () => {
  let gh: FakeGitHub;
  beforeAll(async () => {
    gh = await new FakeGitHub(TOKEN).start();
  });
  afterAll(async () => {
    await gh.stop();
  });
  beforeEach(() => {
    gh.requests.length = 0;
    gh.issues.clear();
    gh.comments.clear();
    gh.addIssue(REPO, { number: 1, title: 'Crash on save', labels: ['ready'] });
  });

  const tokenFactory = () =>
    new GitHubClientFactory({
      credentials: { kind: 'token', token: TOKEN },
      baseUrl: gh.url,
      throttle: false,
      retryAfterBaseValue: 1,
    });

  describe('permissions', () => {
    it('refuses an agent without apply_labels, records the refusal, and sends nothing', async () => {
      const events = new EventCollector();
      const client = tokenFactory().forAgent(commenter, { runId: 'r1', node: 'triage', sink: events.sink });
      await expect(client.addLabels(REPO, 1, ['bug'])).rejects.toBeInstanceOf(PermissionDeniedError);
      expect(gh.requests).toHaveLength(0);
      expect(gh.issues.get(`${REPO}#1`)?.labels).toEqual(['ready']);
      expect(events.drain()).toEqual([
        {
          type: 'github.refused',
          node: 'triage',
          by: 'commenter',
          detail: {
            agent: 'commenter',
            permission: 'apply_labels',
            method: 'POST',
            path: '/repos/acme/app/issues/1/labels',
          },
        },
      ]);
    });

    it('the refusal is not retryable (the engine fails the step instead of retrying it)', async () => {
      const err = await tokenFactory()
        .forAgent(commenter)
        .removeLabel(REPO, 1, 'ready')
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PermissionDeniedError);
      expect((err as PermissionDeniedError).retryable).toBe(false);
    });

    it('lets an agent with apply_labels label, and records the write', async () => {
      const events = new EventCollector();
      await tokenFactory().forAgent(labeller, { sink: events.sink }).addLabels(REPO, 1, ['bug']);
      expect(gh.issues.get(`${REPO}#1`)?.labels).toEqual(['ready', 'bug']);
      expect(events.drain()).toMatchObject([
        {
          type: 'github.request',
          detail: { method: 'POST', path: '/repos/acme/app/issues/1/labels', status: 200 },
        },
      ]);
    });
  });

  describe('dry-run (no credentials)', () => {
    it('sends nothing and records method, path and body as a run event', async () => {
      const events: NewEvent[] = [];
      const factory = new GitHubClientFactory({ baseUrl: gh.url });
      expect(factory.mode).toBe('dry-run');
      const client = factory.forAgent(labeller, {
        runId: 'r2',
        node: 'report',
        sink: (e) => void events.push(e),
      });
      const created = await client.createComment(REPO, 1, 'hello');
      expect(created).toBeUndefined();
      expect(gh.requests).toHaveLength(0);
      expect(events).toEqual([
        {
          type: 'github.dry-run',
          node: 'report',
          by: 'labeller',
          detail: {
            agent: 'labeller',
            method: 'POST',
            path: '/repos/acme/app/issues/1/comments',
            body: { body: 'hello' },
          },
        },
      ]);
    });

    it('checks permissions before the dry run', async () => {
      const events = new EventCollector();
      const client = new GitHubClientFactory({ baseUrl: gh.url }).forAgent(commenter, { sink: events.sink });
      await expect(client.addLabels(REPO, 1, ['x'])).rejects.toBeInstanceOf(PermissionDeniedError);
      expect(events.drain().map((e) => e.type)).toEqual(['github.refused']);
    });

    it('never records a credential', async () => {
      const events = new EventCollector();
      const client = new GitHubClientFactory({ baseUrl: gh.url }).forAgent(labeller, { sink: events.sink });
      await client.request('comment', 'POST /repos/{owner}/{repo}/issues/{issue_number}/comments', {
        owner: 'acme',
        repo: 'app',
        issue_number: 1,
        body: 'x',
        headers: { authorization: 'token leaked' },
      });
      expect(JSON.stringify(events.drain())).not.toContain('leaked');
    });
  });

  describe('token mode', () => {
    it('authenticates with the token against GITHUB_API_URL', async () => {
      const issue = await tokenFactory().forAgent(commenter).getIssue(REPO, 1);
      expect(issue?.title).toBe('Crash on save');
      expect(gh.requests[0]?.headers.authorization).toBe(`token ${TOKEN}`);
      expect(gh.requests[0]?.headers['user-agent']).toContain('switchyard');
    });

    it('retries a 5xx (retry plugin) and then succeeds', async () => {
      gh.script('GET', /\/issues\/1$/, { status: 502, body: { message: 'bad gateway' }, times: 2 });
      const issue = await tokenFactory().forAgent(commenter).getIssue(REPO, 1);
      expect(issue?.number).toBe(1);
      expect(gh.calls('GET', /\/issues\/1$/)).toHaveLength(3);
    });

    it('turns a 4xx into a non-retryable GitHubApiError and a 5xx into a retryable one', async () => {
      gh.script('GET', /\/issues\/2$/, { status: 422, body: { message: 'nope' } });
      gh.script('GET', /\/issues\/3$/, { status: 503, body: { message: 'down' } });
      const f = new GitHubClientFactory({
        credentials: { kind: 'token', token: TOKEN },
        baseUrl: gh.url,
        throttle: false,
        retries: 0,
      });
      const e422 = (await f
        .forAgent(commenter)
        .getIssue(REPO, 2)
        .catch((e: unknown) => e)) as GitHubApiError;
      const e503 = (await f
        .forAgent(commenter)
        .getIssue(REPO, 3)
        .catch((e: unknown) => e)) as GitHubApiError;
      expect([e422.status, e422.retryable]).toEqual([422, false]);
      expect([e503.status, e503.retryable]).toEqual([503, true]);
    });

    it('reads a missing file as null and removes a missing label quietly', async () => {
      const client = tokenFactory().forAgent(labeller);
      gh.files.set(`${REPO}:.github/switchyard.yml`, 'routing: {}\n');
      expect(await client.getFileText(REPO, '.github/switchyard.yml')).toBe('routing: {}\n');
      expect(await client.getFileText(REPO, 'nope.yml')).toBeNull();
      await expect(client.removeLabel(REPO, 1, 'never-there')).resolves.toBeUndefined();
    });

    it('pages through comments', async () => {
      for (let i = 0; i < 130; i++) gh.addComment(REPO, 1, `c${i}`);
      const comments = await tokenFactory().forAgent(commenter).listIssueComments(REPO, 1);
      expect(comments).toHaveLength(130);
      expect(gh.calls('GET', /\/comments\?/)).toHaveLength(2);
    });
  });

  describe('GitHub App mode', () => {
    let app: FakeGitHub;
    beforeAll(async () => {
      app = await new FakeGitHub().start();
    });
    afterAll(async () => {
      await app.stop();
    });

    it('looks up the installation per repository and calls with an installation token', async () => {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      app.installations.set(REPO, 4242);
      app.addIssue(REPO, { number: 9, title: 'From the app' });
      const factory = new GitHubClientFactory({
        credentials: {
          kind: 'app',
          appId: '123',
          privateKey: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
        },
        baseUrl: app.url,
        throttle: false,
      });
      expect(factory.mode).toBe('app');
      const issue = await factory.forAgent(commenter).getIssue(REPO, 9);
      expect(issue?.title).toBe('From the app');
      expect(app.calls('GET', /^\/repos\/acme\/app\/installation$/)[0]?.headers.authorization).toMatch(
        /^bearer /i,
      );
      expect(app.calls('POST', /^\/app\/installations\/4242\/access_tokens$/)).toHaveLength(1);
      expect(app.calls('GET', /\/issues\/9$/)[0]?.headers.authorization).toBe('token inst-4242');
    });
  });
});
