import type { WorkflowDefinition } from '../engine/workflow.ts';
import { planAllWorkflow } from './plan-all-workflow.ts';
import { routePrWorkflow } from './route-pr-workflow.ts';
import type { DiscordWorkflowServices } from './workflow-services.ts';

/**
 * The workflows Discord commands start (part of WORKFLOW_DEFINITIONS, lib/workflows). Their nodes need
 * `services.discord` (DiscordWorkflowServices), which only the worker provides.
 */
export function discordWorkflowDefinitions(): WorkflowDefinition<never>[] {
  return [
    planAllWorkflow<DiscordWorkflowServices>(),
    routePrWorkflow<DiscordWorkflowServices>(),
  ] as unknown as WorkflowDefinition<never>[];
}
