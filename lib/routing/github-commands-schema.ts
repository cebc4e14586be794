import { z } from 'zod';

/**
 * Config `github.commands.allow`: who may use `/approve /reject /cancel /retry /hold /unhold` as the first line
 * of an issue or PR comment. Checked against the comment's `author_association` at ingress, then
 * confirmed in the worker with the collaborator-permission API (write or higher).
 */
export const AUTHOR_ASSOCIATIONS = [
  'OWNER',
  'MEMBER',
  'COLLABORATOR',
  'CONTRIBUTOR',
  'FIRST_TIME_CONTRIBUTOR',
  'FIRST_TIMER',
  'MANNEQUIN',
  'NONE',
] as const;

const AllowSchema = z.strictObject({
  associations: z.array(z.enum(AUTHOR_ASSOCIATIONS)).default(['OWNER', 'MEMBER', 'COLLABORATOR']),
  /** GitHub logins allowed whatever their association (still confirmed: write or higher). */
  users: z.array(z.string().regex(/^[A-Za-z0-9-]{1,39}$/, 'not a GitHub login')).default([]),
});

export const GitHubSchema = z.strictObject({
  commands: z
    .strictObject({ allow: AllowSchema.default(AllowSchema.parse({})) })
    .default({ allow: AllowSchema.parse({}) }),
});
