import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { expect, test } from '@playwright/test';
import { CONSOLE_ROUTES } from '../../lib/app/local-routes.ts';
import { createLinkToken } from '../../lib/console/access.ts';
import { type ConsoleDeps, makeConsole as consoleEndpoint } from '../../lib/console/handler.ts';
import { Engine } from '../../lib/engine/engine.ts';
import { apiGateway } from '../../lib/http/apigw.ts';
import { httpListener } from '../../lib/http/local-adapter.ts';
import { InMemoryQueue } from '../../lib/queue/memory.ts';
import { dynamoClient } from '../../lib/store/client.ts';
import { createTable, DynamoRunStore } from '../../lib/store/dynamodb.ts';
import { type DynamoDbLocal, startDynamoDbLocal } from '../../lib/store/dynamodb-local.ts';
import { buildRegistry } from '../../lib/workflows/index.ts';

/** The endpoint behind API Gateway, as deployed (lib/app/console.ts). */
const makeConsole = (deps: ConsoleDeps) => apiGateway(consoleEndpoint(deps));

/**
 * The AWS access path in a real browser: the signed link is opened from another site (as from
 * Discord), and the SameSite=Strict session cookie it sets must reach `/console` afterwards.
 * Chromium treats http://localhost as a secure context, so the Secure `__Host-` cookie is kept.
 */

const KEY = randomBytes(32).toString('hex');
const ADMIN = '200000000000000001';
let db: DynamoDbLocal | undefined;
let store: DynamoRunStore;
let consoleServer: Server;
let elsewhere: Server;
let consoleUrl = '';
let elsewhereUrl = '';
let runId = '';

const listen = async (server: Server, host: string) => {
  await new Promise<void>((r) => server.listen(0, host, r));
  const a = server.address();
  return typeof a === 'object' && a ? a.port : 0;
};

test.beforeAll(async () => {
  if (!process.env.DYNAMODB_ENDPOINT) db = await startDynamoDbLocal();
  const client = dynamoClient(process.env.DYNAMODB_ENDPOINT ?? db!.endpoint);
  const tableName = `browser-session-${randomBytes(4).toString('hex')}`;
  await createTable(client, tableName);
  store = new DynamoRunStore(client, { tableName });
  const engine = new Engine<unknown>({
    store,
    queue: new InMemoryQueue(),
    workflows: buildRegistry(),
    services: {},
  });
  runId = (
    await engine.startRun({
      workflow: 'issue-pipeline',
      subject: { repo: 'acme/app', issue: 9, key: 'acme/app#9' },
      trigger: { source: 'test' },
    })
  ).run.id;
  const handler = makeConsole({
    store,
    engine,
    policy: async () => ({ discord: { admins: { users: [ADMIN] } } }),
    access: { mode: 'session', linkKeys: async () => [KEY] },
  });
  consoleServer = createServer(
    httpListener(
      CONSOLE_ROUTES.map((path) => ({ method: path.endsWith('/actions') ? 'POST' : 'GET', path, handler })),
    ),
  );
  consoleUrl = `http://localhost:${await listen(consoleServer, '127.0.0.1')}`;
  // "Discord": another site holding the link.
  let link = '';
  elsewhere = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><title>Discord</title><a id="open" href="${link}">Open in browser</a>`);
  });
  elsewhereUrl = `http://127.0.0.1:${await listen(elsewhere, '127.0.0.1')}`;
  link = `${consoleUrl}/console/auth?token=${await createLinkToken(store, [KEY], { userId: ADMIN, roles: [] }, new Date())}`;
});

test.afterAll(async () => {
  await new Promise<void>((r) => consoleServer?.close(() => r()));
  await new Promise<void>((r) => elsewhere?.close(() => r()));
  await db?.stop();
});

test('a link opened from another site signs in, lands on /console without the token, and works once', async ({
  page,
  context,
}) => {
  await page.goto(`${consoleUrl}/console`);
  await expect(page.locator('h1')).toHaveText('Sign in from Discord');

  await page.goto(elsewhereUrl);
  const href = (await page.locator('#open').getAttribute('href')) ?? '';
  await page.locator('#open').click();
  await expect(page).toHaveURL(`${consoleUrl}/console`);
  await expect(page.locator(`tr[data-run="${runId}"]`)).toBeVisible();
  const [cookie] = await context.cookies(consoleUrl);
  expect(cookie).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict' });

  const again = await context.newPage();
  await context.clearCookies();
  await again.goto(href);
  await expect(again.locator('h1')).toHaveText('Link not valid');
});
