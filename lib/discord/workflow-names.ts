/** Workflow names the Discord commands start. Kept apart so the ack path imports no workflow code. */
export { ISSUE_PIPELINE } from '../workflows/issue-pipeline.ts';
export const PLAN_ALL_WORKFLOW = 'discord-plan-all';
export const ROUTE_PR_WORKFLOW = 'discord-route-pr';

/** Workflows that post their own Discord messages; the reporter shows only their failures. */
export const SELF_REPORTING_WORKFLOWS: ReadonlySet<string> = new Set([PLAN_ALL_WORKFLOW, ROUTE_PR_WORKFLOW]);
