import type { StartRunInput, StartRunResult } from '../engine/engine.ts';
import type { NewEvent } from '../engine/types.ts';
import type { KvPort } from './binding.ts';
import type { DiscordRest } from './rest.ts';

/** An open issue as the plan lists it. */
export interface ReadyIssue {
  number: number;
  title: string;
  url: string;
}

/** Where a service records what it did (a step's `emit`, so it lands in the run history). */
export interface ServiceCallContext {
  runId: string;
  node: string;
  sink: (event: NewEvent) => void;
}

export interface PrRoutingInput {
  repo: string;
  pr: number;
  enabled: boolean;
  by: string;
}

export interface PrRoutingResult {
  /** False when the PR already was in the requested state. */
  changed: boolean;
  /** One line for people, e.g. "label switchyard:route added". */
  summary?: string;
}

/**
 * What the Discord workflows (`discord-plan-all`, `discord-route-pr`) need from the worker, under
 * `services.discord`. Only the worker provides it; the ack path never runs these nodes.
 */
export interface DiscordWorkflowServices {
  discord: {
    rest: DiscordRest;
    store: KvPort;
    applicationId?: string;
    /** The engine's startRun (the engine is built after its services, hence a function). */
    startRun(input: StartRunInput): Promise<StartRunResult>;
    /** Open issues (not PRs) carrying `label`; undefined when GitHub is in dry-run. */
    listReadyIssues(repo: string, label: string, ctx: ServiceCallContext): Promise<ReadyIssue[] | undefined>;
    /** The PR routing toggle (lib/routing/pr-toggle.ts). */
    setPrRouting(input: PrRoutingInput, ctx: ServiceCallContext): Promise<PrRoutingResult>;
  };
}
