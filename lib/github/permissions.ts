/**
 * What an agent may do on GitHub. Granted per agent in the registry (config `agents.<name>.permissions`)
 * and enforced by the client built for that agent (client.ts), before any request is sent.
 */
export const PERMISSIONS = [
  'read',
  'comment',
  'apply_labels',
  'edit_issue',
  'open_pr',
  'push',
  'dispatch_workflow',
  'cancel_workflow',
] as const;

export type Permission = (typeof PERMISSIONS)[number];

/** The identity a client acts as: an agent name and what it was granted. */
export interface AgentIdentity {
  name: string;
  permissions: readonly Permission[];
}
