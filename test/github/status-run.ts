import type { Run } from '../../lib/engine/types.ts';
import { Workflow } from '../../lib/engine/workflow.ts';
import { issuePipeline } from '../../lib/workflows/issue-pipeline.ts';

/** The repository, token and workflow the status-comment reporter tests share. */
export const REPO = 'acme/app';
export const TOKEN = 't0ken';
export const workflow = new Workflow(issuePipeline) as Workflow<unknown>;

let seq = 0;

/** An issue-pipeline run at its plan step, routed to the coder: what a status comment shows. */
export function statusRun(prefix: string, over: Partial<Run> = {}): Run {
  const at = '2024-05-01T10:00:00.000Z';
  return {
    id: `${prefix}${++seq}`,
    workflow: 'issue-pipeline',
    status: 'running',
    node: 'plan',
    subject: { repo: REPO, issue: 7, key: `${REPO}#7` },
    trigger: { source: 'github', actor: 'octocat', event: 'issues.labeled' },
    createdAt: at,
    updatedAt: at,
    version: 3,
    data: { routing: { outcome: 'run', rule: 'ready', agents: ['coder'], reason: 'matched' } },
    eventSeq: 3,
    ...over,
  };
}
