import { describe, expect, it } from 'vitest';
import { type NormalizedEvent, normalizeEvent } from '../../lib/github/events.ts';
import { parseConfig } from '../../lib/routing/config.ts';
import { applyCiGuard, decide } from '../../lib/routing/rules.ts';
import { example } from '../github/support.ts';

const config = parseConfig(
  `
agents:
  planner: { type: planner }
  coder: { type: coder }
  triage: { type: triage, permissions: [read, comment, apply_labels] }
  reviewer: { type: reviewer }
routing:
  unmatched: { agent: triage, events: [issues.opened] }
  rules:
    - name: ready-issue
      event: issues
      action: labeled
      label: ready
      agents: [planner, coder]
      priority: 10
    - name: urgent
      event: issues
      action: labeled
      label: ready
      labels: { all: [urgent] }
      agents: [coder]
      priority: 20
    - name: src-pr
      event: pull_request
      action: [labeled, synchronize]
      paths: ['src/**']
      agents: [reviewer]
    - name: big-issues-only
      event: issues
      action: edited
      when: 'issue.body.size() > 20 && sender != "ghost"'
      agents: [planner]
    - name: green-only
      event: issues
      action: closed
      ci: green
      agents: [planner]
policies:
  - name: hold
    forbid: { labels: [on-hold] }
  - name: prod-needs-approval
    repos: ['*/prod-*']
    require: { approval: true }
`,
  'rules.yml',
);

function issueEvent(
  action: string,
  opts: { label?: string; labels?: string[]; body?: string; sender?: string; repo?: string } = {},
): NormalizedEvent {
  const p = example('issues', action === 'labeled' ? 'labeled' : 'opened');
  p.action = action;
  const issue = p.issue as Record<string, unknown>;
  issue.labels = (opts.labels ?? []).map((name) => ({ name }));
  if (opts.body !== undefined) issue.body = opts.body;
  if (opts.label) p.label = { name: opts.label };
  else delete p.label;
  if (opts.sender) (p.sender as Record<string, unknown>).login = opts.sender;
  if (opts.repo) (p.repository as Record<string, unknown>).full_name = opts.repo;
  return normalizeEvent('issues', 'd-1', p);
}

function prEvent(action: string, labels: string[]): NormalizedEvent {
  const p = example('pull_request', 'labeled');
  p.action = action;
  (p.pull_request as Record<string, unknown>).labels = labels.map((name) => ({ name }));
  return normalizeEvent('pull_request', 'd-2', p);
}

describe('routing rules', () => {
  it('an issue labelled ready starts the issue pipeline with the rule’s agents', () => {
    const d = decide(config, issueEvent('labeled', { label: 'ready', labels: ['ready'] }), {
      phase: 'ingress',
    });
    expect(d).toMatchObject({
      outcome: 'run',
      rule: 'ready-issue',
      workflow: 'issue-pipeline',
      agents: ['planner', 'coder'],
      priority: 10,
    });
  });

  it('the higher-priority rule wins when several match', () => {
    const d = decide(config, issueEvent('labeled', { label: 'ready', labels: ['ready', 'urgent'] }), {
      phase: 'ingress',
    });
    expect(d).toMatchObject({ rule: 'urgent', agents: ['coder'], priority: 20 });
  });

  it('matches on the label just added, not on a label already present', () => {
    const d = decide(config, issueEvent('labeled', { label: 'bug', labels: ['ready', 'bug'] }), {
      phase: 'ingress',
    });
    expect(d.outcome).toBe('ignore');
    expect(d.rules.find((r) => r.rule === 'ready-issue')?.why).toContain('label bug is not ready');
  });

  it('sends an unmatched issues.opened to the triage agent (the safe default handler)', () => {
    const d = decide(config, issueEvent('opened'), { phase: 'ingress' });
    expect(d).toMatchObject({ outcome: 'triage', agents: ['triage'], workflow: 'issue-pipeline' });
  });

  it('ignores other unmatched events', () => {
    expect(decide(config, issueEvent('assigned'), { phase: 'ingress' })).toMatchObject({
      outcome: 'ignore',
      reason: 'no rule matched issues.assigned',
    });
  });

  it('evaluates CEL conditions over the event', () => {
    const long = decide(config, issueEvent('edited', { body: 'a body that is long enough to count' }), {
      phase: 'ingress',
    });
    const short = decide(config, issueEvent('edited', { body: 'short' }), { phase: 'ingress' });
    expect(long).toMatchObject({ outcome: 'run', rule: 'big-issues-only' });
    expect(short.outcome).toBe('ignore');
  });

  it('a policy forbids automation on a held issue', () => {
    const d = decide(config, issueEvent('labeled', { label: 'ready', labels: ['ready', 'on-hold'] }), {
      phase: 'ingress',
    });
    expect(d).toMatchObject({
      outcome: 'forbidden',
      reason: 'policy hold: label on-hold forbids automation',
    });
  });

  it('a policy can require the approval gate on some repositories', () => {
    const d = decide(
      config,
      issueEvent('labeled', { label: 'ready', labels: ['ready'], repo: 'acme/prod-api' }),
      { phase: 'ingress' },
    );
    expect(d).toMatchObject({ outcome: 'run', requireApproval: true });
  });

  describe('the per-PR routing toggle', () => {
    it('ignores a PR without the routing label', () => {
      const d = decide(config, prEvent('synchronize', []), { phase: 'worker', paths: ['src/a.ts'] });
      expect(d).toMatchObject({ outcome: 'ignore', prRouting: 'off' });
      expect(d.reason).toContain('switchyard:route');
    });

    it('routes a PR carrying the label, deferring the path check to the worker', () => {
      const d = decide(config, prEvent('synchronize', ['switchyard:route']), { phase: 'ingress' });
      expect(d).toMatchObject({ outcome: 'run', rule: 'src-pr', prRouting: 'on' });
      expect(d.deferred.join()).toContain('paths');
    });

    it('in the worker, matches the files the PR touches against the globs', () => {
      const yes = decide(config, prEvent('synchronize', ['switchyard:route']), {
        phase: 'worker',
        paths: ['src/lib/x.ts'],
      });
      const no = decide(config, prEvent('synchronize', ['switchyard:route']), {
        phase: 'worker',
        paths: ['docs/readme.md'],
      });
      expect(yes).toMatchObject({ outcome: 'run', rule: 'src-pr', deferred: [] });
      expect(no.outcome).toBe('ignore');
    });
  });

  describe('CI state', () => {
    it('defers a ci criterion at ingress and decides it in the worker', () => {
      const ev = issueEvent('closed');
      expect(decide(config, ev, { phase: 'ingress' })).toMatchObject({ outcome: 'run', rule: 'green-only' });
      expect(decide(config, ev, { phase: 'worker', ci: { state: 'green', failing: [] } })).toMatchObject({
        outcome: 'run',
      });
      expect(decide(config, ev, { phase: 'worker', ci: { state: 'red', failing: [] } }).outcome).toBe(
        'ignore',
      );
    });

    it('the CI guard blocks a run while the default branch is red, and says why', () => {
      const d = decide(config, issueEvent('labeled', { label: 'ready', labels: ['ready'] }), {
        phase: 'worker',
      });
      const red = applyCiGuard(
        config,
        d,
        {
          state: 'red',
          branch: 'main',
          failing: [{ source: 'workflow:1', name: 'CI', conclusion: 'failure', at: '2024-01-01T00:00:00Z' }],
        },
        true,
      );
      expect(red).toMatchObject({
        outcome: 'blocked',
        guards: [{ guard: 'ci', verdict: 'block', state: 'red', confirmed: true }],
      });
      expect(red.reason).toBe('CI guard: main is red (CI (failure))');
      expect(applyCiGuard(config, d, { state: 'green', failing: [] }, true).outcome).toBe('run');
    });
  });
});
