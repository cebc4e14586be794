import { describe, expect, it } from 'vitest';
import { renderGraphSvg } from '../../lib/console/graph.ts';
import { type ConsoleDeps, makeConsole as consoleEndpoint } from '../../lib/console/handler.ts';
import { html } from '../../lib/console/html.ts';
import { rightsFor } from '../../lib/console/rights.ts';
import { budgetOf, renderListLive, renderRunLive } from '../../lib/console/view.ts';
import { nodeProgress } from '../../lib/engine/progress.ts';
import type { Run, RunEvent } from '../../lib/engine/types.ts';
import { apiGateway, type HttpEvent } from '../../lib/http/apigw.ts';
import { buildRegistry } from '../../lib/workflows/index.ts';

/** The endpoint behind API Gateway, as deployed (lib/app/console.ts). */
const makeConsole = (deps: ConsoleDeps) => apiGateway(consoleEndpoint(deps));

/** The console's rendering as pure functions: escaping, graph marking, budgets; and loopback access. */

const EVIL = '<script>alert(1)</script><img src=x onerror=alert(2)>"\'&';
const pipeline = buildRegistry().get('issue-pipeline')!;
const local = rightsFor({ kind: 'local' }, undefined);

function run(over: Partial<Run> = {}): Run {
  return {
    id: 'r1',
    workflow: 'issue-pipeline',
    status: 'waiting',
    node: 'approval',
    subject: { repo: 'acme/app', issue: 7, key: 'acme/app#7' },
    trigger: { source: 'github', actor: EVIL },
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    version: 3,
    data: {
      plan: { version: 'v1', title: EVIL, summary: EVIL, tasks: [{ id: 't1', title: EVIL, agent: 'coder' }] },
    },
    gate: {
      node: 'approval',
      kind: 'approval',
      binding: 'v1',
      expiresAt: '2026-01-02T00:00:00.000Z',
      prompt: EVIL,
    },
    eventSeq: 1,
    reason: EVIL,
    ...over,
  };
}

describe('escaping', () => {
  it('escapes every interpolated value', () => {
    expect(html`<p title="${EVIL}">${EVIL}</p>`.value).toBe(
      '<p title="&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;&quot;&#39;&amp;">&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;&quot;&#39;&amp;</p>',
    );
  });

  it('renders run text, event details and trigger actors as text on the run page and the list', () => {
    const r = run();
    const events = [
      {
        seq: 0,
        at: r.createdAt,
        type: 'plan.edited' as const,
        node: 'plan',
        by: EVIL,
        detail: { note: EVIL },
      },
    ];
    const page = renderRunLive({
      run: r,
      events,
      workflow: pipeline,
      rights: local,
      csrf: 't',
      now: new Date(),
    });
    const list = renderListLive({ runs: [r], filters: {}, workflows: [], rights: local, now: new Date() });
    for (const out of [page, list]) {
      expect(out).not.toContain('<script>');
      expect(out).not.toContain('<img');
    }
  });

  it('links only https://github.com URLs found in the history', () => {
    const r = run();
    const events = [
      {
        seq: 0,
        at: r.createdAt,
        type: 'agent.workflow-run.linked' as const,
        detail: { url: 'https://github.com/acme/app/actions/runs/42' },
      },
      {
        seq: 1,
        at: r.createdAt,
        type: 'agent.workflow-run.linked' as const,
        detail: { url: 'javascript:alert(1)//github.com/x/y/actions/runs/1' },
      },
      {
        seq: 2,
        at: r.createdAt,
        type: 'agent.workflow-run.linked' as const,
        detail: { url: 'https://evil.example/acme/app/actions/runs/43' },
      },
    ];
    const page = renderRunLive({
      run: r,
      events,
      workflow: pipeline,
      rights: local,
      csrf: 't',
      now: new Date(),
    });
    expect(page).toContain('href="https://github.com/acme/app/actions/runs/42"');
    expect(page).not.toContain('href="javascript:');
    expect(page).not.toContain('href="https://evil.example');
  });
});

/** A history in which `nodes` succeeded, in order. */
const passed = (...nodes: string[]): RunEvent[] =>
  nodes.map((node, seq) => ({
    seq,
    at: '2026-01-01T00:00:00.000Z',
    type: 'step.succeeded',
    node,
    detail: {},
  }));

describe('graph', () => {
  const state = (svg: string, node: string) =>
    new RegExp(`data-node="${node}" data-state="(\\w+)"`).exec(svg)?.[1];

  it('marks done nodes, the current node and the rest', () => {
    const svg = renderGraphSvg(
      pipeline,
      nodeProgress({ node: 'approval', status: 'waiting' }, passed('intake', 'route', 'plan')),
    ).value;
    expect([state(svg, 'plan'), state(svg, 'approval'), state(svg, 'execute')]).toEqual([
      'done',
      'current',
      'todo',
    ]);
  });

  it('marks the node a failed run stopped at as failed', () => {
    const svg = renderGraphSvg(
      pipeline,
      nodeProgress({ node: 'execute', status: 'failed' }, passed('intake')),
    ).value;
    expect(state(svg, 'execute')).toBe('failed');
  });
});

describe('budgets', () => {
  it('shows spend against cap when the run has a budget, and nothing otherwise', () => {
    expect(
      budgetOf(
        run({ data: { budget: { spent: { usd: 1.5, dispatches: 2 }, cap: { usd: 5, dispatches: 10 } } } }),
      ),
    ).toBe('$1.50 / $5.00, 2 / 10 dispatches');
    expect(budgetOf(run({ data: {} }))).toBeUndefined();
  });
});

describe('loopback access', () => {
  const handle = makeConsole({
    store: {} as never,
    engine: { workflows: { get: () => undefined, names: () => [] } } as never,
    policy: async () => ({}),
    access: { mode: 'loopback' },
  });
  const event = (sourceIp: string, host: string) =>
    ({
      rawPath: '/console',
      headers: { host },
      requestContext: { http: { method: 'GET', path: '/console', sourceIp } },
    }) as unknown as HttpEvent;

  it.each([
    ['203.0.113.9', '127.0.0.1:3000'],
    ['127.0.0.1', 'rebound.example:3000'],
  ])('refuses a request from %s for host %s', async (ip, host) => {
    const res = await handle(event(ip, host));
    expect(res.statusCode).toBe(403);
  });
});
