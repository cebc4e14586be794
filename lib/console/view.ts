import type { Workloads } from '../agents/work-queue.ts';
import { nodeProgress } from '../engine/progress.ts';
import { isTerminal, RUN_STATUSES, type Run, type RunEvent } from '../engine/types.ts';
import type { Workflow } from '../engine/workflow.ts';
import { renderGraphSvg } from './graph.ts';
import { esc, type Html, html, raw, safeHttpsUrl } from './html.ts';
import type { ConsoleAction, Rights } from './rights.ts';

/**
 * The console's pages as pure functions of the data: no I/O here. Every run-derived string goes
 * through `html` (escaped). The live parts (`#live`) are also served alone, so the page script
 * swaps them in without a reload and the server renders each view in one place.
 */

export const ASSET_PATHS = { js: '/console/static/console.js', css: '/console/static/console.css' } as const;
const REPO = /^[\w.-]+\/[\w.-]+$/;

export interface ListFilters {
  status?: string;
  repo?: string;
  workflow?: string;
}

export interface ListModel {
  runs: Run[];
  filters: ListFilters;
  workflows: string[];
  workloads?: Workloads;
  rights: Rights;
  now: Date;
}

export interface RunModel {
  run: Run;
  events: RunEvent[];
  workflow: Workflow<unknown> | undefined;
  rights: Rights;
  csrf: string;
  now: Date;
  /** Outcome of the last action (a fixed code, never echoed text). */
  result?: string;
}

function page(title: string, rights: Rights, body: Html): string {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="same-origin"><title>${title}</title>
<link rel="stylesheet" href="${ASSET_PATHS.css}"><script type="module" src="${ASSET_PATHS.js}"></script></head>
<body><header class="top"><a class="brand" href="/console">Switchyard</a><span class="who">${rights.label}</span></header>
<main>${body}</main></body></html>`.value;
}

export function age(fromIso: string, now: Date): string {
  const s = Math.max(0, Math.round((now.getTime() - Date.parse(fromIso)) / 1000));
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

const when = (iso: string, now: Date) =>
  html`<time datetime="${iso}" title="${iso}">${age(iso, now)} ago</time>`;

/** The issue (or PR) a run is about, linked on github.com when it is one. */
export function subjectLink(run: Run): Html {
  const { repo, issue, key } = run.subject;
  if (repo && REPO.test(repo) && issue !== undefined && Number.isInteger(issue))
    return html`<a href="https://github.com/${repo}/issues/${issue}">${repo}#${issue}</a>`;
  if (repo && REPO.test(repo)) return html`<a href="https://github.com/${repo}">${repo}</a>`;
  return html`${key}`;
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** The issue's title, from the plan or the event that started the run. */
export function runTitle(run: Run): string | undefined {
  const plan = run.data.plan;
  if (isObj(plan) && typeof plan.title === 'string' && plan.title) return plan.title;
  const ev = run.data.event;
  if (isObj(ev) && isObj(ev.subject) && typeof ev.subject.title === 'string' && ev.subject.title)
    return ev.subject.title;
  return undefined;
}

/**
 * Spend against cap, when the run carries a budget (`data.budget`, written by the budget gate):
 * `{ spent: { usd, dispatches }, cap | limits: { usd, dispatches } }` or flat `{ usd, capUsd }`.
 * Runs without one show nothing.
 */
export function budgetOf(run: Run): string | undefined {
  const b = run.data.budget;
  if (!isObj(b)) return undefined;
  const spent = isObj(b.spent) ? b.spent : isObj(b.spend) ? b.spend : b;
  const cap = isObj(b.cap) ? b.cap : isObj(b.limits) ? b.limits : isObj(b.perRun) ? b.perRun : {};
  const parts: string[] = [];
  const usd = num(spent.usd);
  const capUsd = num(cap.usd) ?? num(b.capUsd);
  if (usd !== undefined)
    parts.push(`$${usd.toFixed(2)}${capUsd !== undefined ? ` / $${capUsd.toFixed(2)}` : ''}`);
  const d = num(spent.dispatches);
  const capD = num(cap.dispatches) ?? num(b.capDispatches);
  if (d !== undefined) parts.push(`${d}${capD !== undefined ? ` / ${capD}` : ''} dispatches`);
  return parts.length > 0 ? parts.join(', ') : undefined;
}

function gateText(run: Run): string {
  const g = run.gate;
  if (!g || run.status !== 'waiting') return '';
  if (g.kind === 'approval') return `approval${g.binding ? ` of plan ${g.binding}` : ''}`;
  return g.kind === 'agent' ? 'agent result' : 'a person';
}

const badge = (status: string) => html`<span class="badge s-${status}">${status}</span>`;

// ------------------------------------------------------------------------------------ list

export function listLiveUrl(f: ListFilters): string {
  const q = new URLSearchParams();
  if (f.status) q.set('status', f.status);
  if (f.repo) q.set('repo', f.repo);
  if (f.workflow) q.set('workflow', f.workflow);
  const s = q.toString();
  return `/console/live${s ? `?${s}` : ''}`;
}

export function renderListLive(m: ListModel): string {
  const rows = m.runs.map((r) => {
    const title = runTitle(r);
    return html`<tr data-run="${r.id}"><td><a href="/console/runs/${r.id}">${r.id}</a></td>
<td>${subjectLink(r)}${title ? html`<div class="title">${title}</div>` : ''}</td><td>${r.workflow}</td><td>${badge(r.status)}</td>
<td>${r.node ?? '–'}</td><td>${gateText(r) || '–'}</td><td>${when(r.createdAt, m.now)}</td><td>${budgetOf(r) ?? '–'}</td></tr>`;
  });
  const w = m.workloads;
  const agents = w
    ? html`<section class="agents" aria-labelledby="agents-h"><h2 id="agents-h">Agents</h2>
<p>Queue depth: <strong data-queue-depth="${w.queue.depth}">${w.queue.depth}</strong> waiting</p>
${
  w.agents.length === 0
    ? html`<p>No agent work.</p>`
    : html`<table><thead><tr><th scope="col">Agent</th><th scope="col">Type</th><th scope="col">Running</th><th scope="col">Queued</th><th scope="col">Working on</th></tr></thead><tbody>${w.agents.map(
        (a) =>
          html`<tr><td>${a.name}</td><td>${a.type}</td><td>${a.running} / ${a.limit}</td><td>${a.queued}</td><td>${a.items.map(
            (i) => html`<a href="/console/runs/${i.runId}">${i.runId}</a>${i.task ? `/${i.task}` : ''} `,
          )}</td></tr>`,
      )}</tbody></table>`
}</section>`
    : '';
  return html`<p class="count">${m.runs.length} run${m.runs.length === 1 ? '' : 's'}${m.rights.all ? '' : ' in the repositories you may see'}</p>
<table class="runs"><thead><tr><th scope="col">Run</th><th scope="col">Subject</th><th scope="col">Workflow</th><th scope="col">Status</th><th scope="col">Node</th><th scope="col">Gate</th><th scope="col">Age</th><th scope="col">Spend / cap</th></tr></thead>
<tbody>${rows.length > 0 ? rows : html`<tr><td colspan="8">No runs.</td></tr>`}</tbody></table>${agents}`
    .value;
}

export function renderListPage(m: ListModel): string {
  const f = m.filters;
  const option = (value: string, selected: string | undefined, text = value) =>
    html`<option value="${value}"${value === (selected ?? '') ? raw(' selected') : ''}>${text}</option>`;
  return page(
    'Switchyard runs',
    m.rights,
    html`<h1>Runs</h1>
<form class="filters" method="get" action="/console">
<label>Status <select name="status">${option('', f.status, 'any')}${RUN_STATUSES.map((s) => option(s, f.status))}</select></label>
<label>Repository <input name="repo" value="${f.repo ?? ''}" placeholder="owner/name" maxlength="140"></label>
<label>Workflow <select name="workflow">${option('', f.workflow, 'any')}${m.workflows.map((w) => option(w, f.workflow))}</select></label>
<button type="submit">Filter</button></form>
<section id="live" data-live="${listLiveUrl(f)}" data-every="5000">${raw(renderListLive(m))}</section>`,
  );
}

// ------------------------------------------------------------------------------------- run

const RESULTS: Record<string, string> = {
  approved: 'Approved.',
  rejected: 'Rejected.',
  cancelled: 'Cancelled.',
  retried: 'Retry scheduled.',
  stale:
    'The plan changed after the version you approved, so the approval was refused. Review the current plan and approve again.',
  invalid: 'That action does not fit the run’s state any more.',
  refused: 'You may not do that on this run.',
};

interface TaskView {
  id: string;
  title: string;
  agent: string;
  status?: string;
  url?: string;
  pr?: unknown;
  checks?: unknown;
}

function tasksOf(run: Run): TaskView[] {
  const work = run.data.work;
  const plan = run.data.plan;
  const fromWork = isObj(work) && Array.isArray(work.tasks) ? work.tasks : undefined;
  const list = fromWork ?? (isObj(plan) && Array.isArray(plan.tasks) ? plan.tasks : []);
  return list.filter(isObj).map((t) => {
    const result = isObj(t.result) ? t.result : {};
    return {
      id: String(t.id ?? ''),
      title: String(t.title ?? ''),
      agent: String(t.agent ?? ''),
      ...(typeof t.status === 'string' ? { status: t.status } : t.done === true ? { status: 'done' } : {}),
      ...(typeof result.url === 'string' ? { url: result.url } : {}),
      ...(t.pr !== undefined ? { pr: t.pr } : {}),
      ...(t.checks !== undefined ? { checks: t.checks } : {}),
    };
  });
}

/** A task's PR as a link (number or `{ number, url, state }`), and its check state, when recorded. */
function prCell(t: TaskView, repo: string | undefined): Html {
  const pr = t.pr;
  if (typeof pr === 'number' && repo && REPO.test(repo))
    return html`<a href="https://github.com/${repo}/pull/${pr}">#${pr}</a>`;
  if (isObj(pr)) {
    const n = num(pr.number);
    const url = safeHttpsUrl(pr.url ?? pr.html_url);
    const state = typeof pr.state === 'string' ? ` (${pr.state})` : '';
    if (url) return html`<a href="${url}">${n !== undefined ? `#${n}` : 'PR'}</a>${state}`;
    if (n !== undefined) return html`#${n}${state}`;
  }
  return html`–`;
}

function checksCell(t: TaskView): string {
  const c = t.checks;
  if (typeof c === 'string') return c;
  if (isObj(c)) return String(c.conclusion ?? c.state ?? c.status ?? '–');
  return '–';
}

/** Links to GitHub Actions runs recorded in the history (dispatched agents, CI) and task results. */
export function actionsLinks(run: Run, events: readonly RunEvent[]): string[] {
  const urls = new Set<string>();
  const visit = (v: unknown, depth: number) => {
    if (depth > 3) return;
    if (typeof v === 'string') {
      const u = safeHttpsUrl(v);
      if (u && /^https:\/\/github\.com\/[\w.-]+\/[\w.-]+\/actions\/runs\/\d+/.test(u)) urls.add(u);
    } else if (Array.isArray(v)) for (const x of v.slice(0, 50)) visit(x, depth + 1);
    else if (isObj(v)) for (const x of Object.values(v)) visit(x, depth + 1);
  };
  for (const e of events) visit(e.detail, 0);
  for (const t of tasksOf(run)) visit(t.url, 0);
  return [...urls].slice(0, 50);
}

function actionForm(m: RunModel, action: ConsoleAction, label: string, extra: Html | string = ''): Html {
  return html`<form method="post" action="/console/runs/${m.run.id}/actions" class="action">
<input type="hidden" name="csrf" value="${m.csrf}"><input type="hidden" name="action" value="${action}">${extra}
<button type="submit" class="btn-${action}">${label}</button></form>`;
}

function actions(m: RunModel): Html {
  const { run, rights } = m;
  const repo = run.subject.repo;
  const out: Html[] = [];
  const gate = run.status === 'waiting' ? run.gate : undefined;
  if (gate && gate.kind !== 'agent') {
    if (rights.may('approve', repo))
      out.push(
        actionForm(
          m,
          'approve',
          gate.binding ? `Approve plan ${gate.binding}` : 'Approve',
          gate.binding ? html`<input type="hidden" name="binding" value="${gate.binding}">` : '',
        ),
      );
    if (rights.may('reject', repo))
      out.push(
        actionForm(
          m,
          'reject',
          'Reject',
          html`<label>Reason <input name="reason" maxlength="500" autocomplete="off"></label>`,
        ),
      );
  }
  if (!isTerminal(run.status) && rights.may('cancel', repo)) out.push(actionForm(m, 'cancel', 'Cancel run'));
  if ((run.status === 'failed' || run.status === 'expired') && rights.may('retry', repo))
    out.push(actionForm(m, 'retry', 'Retry'));
  return out.length > 0 ? html`<div class="actions">${out}</div>` : html``;
}

export function renderRunLive(m: RunModel): string {
  const { run, events, workflow } = m;
  const gate = run.gate;
  const tasks = tasksOf(run);
  const plan = isObj(run.data.plan) ? run.data.plan : undefined;
  const links = actionsLinks(run, events);
  const types = [...new Set(events.map((e) => e.type))].sort();
  const nodes = [...new Set(events.flatMap((e) => (e.node ? [e.node] : [])))];
  const budget = budgetOf(run);
  return html`<dl class="facts">
<dt>Status</dt><dd>${badge(run.status)}${run.reason ? html` <span class="reason">${run.reason}</span>` : ''}</dd>
<dt>Node</dt><dd data-current-node="${run.node ?? ''}">${run.node ?? '–'}</dd>
<dt>Workflow</dt><dd>${run.workflow}</dd>
<dt>Subject</dt><dd>${subjectLink(run)}</dd>
<dt>Trigger</dt><dd>${run.trigger.source}${run.trigger.actor ? ` by ${run.trigger.actor}` : ''}${typeof run.trigger.event === 'string' ? ` (${run.trigger.event})` : ''}</dd>
<dt>Created</dt><dd>${when(run.createdAt, m.now)}</dd><dt>Updated</dt><dd>${when(run.updatedAt, m.now)}</dd>
${budget ? html`<dt>Spend / cap</dt><dd>${budget}</dd>` : ''}</dl>
${m.result && RESULTS[m.result] ? html`<p class="notice" role="status">${RESULTS[m.result]}</p>` : ''}
<section aria-labelledby="graph-h"><h2 id="graph-h">Graph</h2>${
    workflow
      ? renderGraphSvg(
          workflow,
          nodeProgress(run, events),
          `Workflow ${run.workflow}: at ${run.node ?? 'start'}, ${run.status}`,
        )
      : html`<p>Workflow ${run.workflow} is not known to this console.</p>`
  }</section>
<section aria-labelledby="gate-h"><h2 id="gate-h">Gate</h2>${
    gate && run.status === 'waiting'
      ? html`<p>Waiting at <strong>${gate.node}</strong> for ${gateText(run)} until ${gate.expiresAt}.${gate.prompt ? ` ${gate.prompt}` : ''}</p>`
      : html`<p>Not waiting at a gate.</p>`
  }${
    plan
      ? html`<h3>Plan <code data-plan-version="${String(plan.version ?? '')}">${String(plan.version ?? '')}</code></h3>${
          typeof plan.summary === 'string' && plan.summary ? html`<p>${plan.summary}</p>` : ''
        }`
      : ''
  }${
    tasks.length > 0
      ? html`<table class="tasks"><thead><tr><th scope="col">Task</th><th scope="col">Agent</th><th scope="col">Status</th><th scope="col">PR</th><th scope="col">Checks</th></tr></thead><tbody>${tasks.map(
          (t) =>
            html`<tr><td>${t.id} ${t.title}</td><td>${t.agent}</td><td>${t.status ?? 'pending'}</td><td>${prCell(t, run.subject.repo)}</td><td>${checksCell(t)}</td></tr>`,
        )}</tbody></table>`
      : ''
  }${actions(m)}</section>
<section aria-labelledby="actions-h"><h2 id="actions-h">Actions runs</h2>${
    links.length > 0
      ? html`<ul>${links.map((u) => html`<li><a href="${u}">${u.replace('https://github.com/', '')}</a></li>`)}</ul>`
      : html`<p>None yet.</p>`
  }</section>
<section aria-labelledby="history-h"><h2 id="history-h">History</h2>
<div class="filters" data-history-filters><label>Node <select data-filter="node"><option value="">any</option>${nodes.map(
    (n) => html`<option>${n}</option>`,
  )}</select></label><label>Event <select data-filter="type"><option value="">any</option>${types.map(
    (t) => html`<option>${t}</option>`,
  )}</select></label></div>
<ol class="timeline">${events.map(
    (e) =>
      html`<li data-seq="${e.seq}" data-node="${e.node ?? ''}" data-type="${e.type}"><details><summary><time datetime="${e.at}">${e.at.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</time> <strong>${e.type}</strong>${e.node ? html` · ${e.node}` : ''}${e.by ? html` · ${e.by}` : ''}</summary><pre>${JSON.stringify(e.detail, null, 2)}</pre></details></li>`,
  )}</ol></section>`.value;
}

export function renderRunPage(m: RunModel): string {
  const title = runTitle(m.run);
  return page(
    `Run ${m.run.id}`,
    m.rights,
    html`<p class="crumbs"><a href="/console">All runs</a></p>
<h1>Run <code>${m.run.id}</code></h1>${title ? html`<p class="title">${title}</p>` : ''}
<section id="live" data-live="/console/runs/${m.run.id}/live" data-every="2000">${raw(renderRunLive(m))}</section>`,
  );
}

export function renderMessagePage(title: string, text: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><link rel="stylesheet" href="${ASSET_PATHS.css}"></head><body><main><h1>${esc(title)}</h1><p>${esc(text)}</p></main></body></html>`;
}

/** After the link exchange: a same-origin navigation to `to` (no script: the CSP allows none inline). */
export function renderContinuePage(to: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${esc(to)}"><title>Signed in</title><link rel="stylesheet" href="${ASSET_PATHS.css}"></head><body><main><h1>Signed in</h1><p><a href="${esc(to)}">Continue to the console</a></p></main></body></html>`;
}
