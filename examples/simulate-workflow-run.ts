/**
 * Resume a run waiting for a GitHub Actions agent, without GitHub: post the `workflow_run`
 * webhook GitHub would send when the agent's workflow finishes, signed like GitHub signs it.
 * Useful in dry-run (no GITHUB_TOKEN), where nothing was really dispatched.
 *
 *   GITHUB_WEBHOOK_SECRET=<printed by npm start> npx tsx examples/simulate-workflow-run.ts <run id> [success|failure] [--url http://127.0.0.1:3000]
 *
 * The run's repository is read from GET /runs/{id}. Send `requested` first with --action requested
 * to link a workflow run id (then cancelling the run would cancel that id).
 */
import { createHmac, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' },
    action: { type: 'string', default: 'completed' },
    id: { type: 'string' },
  },
});
const [runId, conclusion = 'success'] = positionals;
if (!runId) {
  console.error(
    'usage: simulate-workflow-run.ts <run id> [success|failure] [--url URL] [--action requested|completed]',
  );
  process.exit(2);
}
const secret = process.env.GITHUB_WEBHOOK_SECRET;
if (!secret) {
  console.error('set GITHUB_WEBHOOK_SECRET (npm start prints the one it generated)');
  process.exit(2);
}
const stateFile = '.switchyard/local.json';
const url =
  values.url ??
  (existsSync(stateFile)
    ? (JSON.parse(readFileSync(stateFile, 'utf8')) as { url: string }).url
    : 'http://127.0.0.1:3000');

const shown = (await (await fetch(`${url}/runs/${runId}`)).json()) as {
  run?: { subject?: { repo?: string } };
};
const repo = shown.run?.subject?.repo;
if (!repo) {
  console.error(`run ${runId} not found at ${url} (or it has no repository)`);
  process.exit(1);
}
const [owner, name] = repo.split('/');
const id = Number(values.id ?? Math.floor(Date.now() / 1000));
const now = new Date().toISOString();
const completed = values.action === 'completed';
const payload = {
  action: values.action,
  workflow_run: {
    id,
    name: 'Switchyard agent',
    display_title: `switchyard ${runId}`,
    head_branch: 'main',
    path: '.github/workflows/switchyard-agent.yml',
    event: 'workflow_dispatch',
    status: completed ? 'completed' : 'in_progress',
    conclusion: completed ? conclusion : null,
    workflow_id: 1,
    created_at: now,
    updated_at: now,
    html_url: `https://github.com/${repo}/actions/runs/${id}`,
  },
  repository: { full_name: repo, name, owner: { login: owner }, default_branch: 'main' },
  sender: { login: 'simulator', type: 'User' },
};
const body = JSON.stringify(payload);
const res = await fetch(`${url}/github/webhook`, {
  method: 'POST',
  headers: {
    'content-type': 'application/json',
    'x-github-event': 'workflow_run',
    'x-github-delivery': randomUUID(),
    'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
  },
  body,
});
console.log(res.status, await res.text());
