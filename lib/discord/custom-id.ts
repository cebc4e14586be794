import { createHash } from 'node:crypto';
import { Limits } from './protocol.ts';

/**
 * Button ids carry what the button stands for: `sy:<action>:<runId>[:<binding>]`. An approval
 * button binds to the plan version it was shown with, so a click after the plan changed is
 * refused. Bindings too long for Discord's 100-character limit travel as a hash.
 */
export type ButtonAction = 'approve' | 'reject' | 'cancel' | 'edit';

export interface ButtonId {
  action: ButtonAction;
  runId: string;
  /** The binding as shown, or `~<hash>` of it when it did not fit. */
  binding?: string;
}

const PREFIX = 'sy';
const ACTIONS: readonly string[] = ['approve', 'reject', 'cancel', 'edit'];

export function hashBinding(binding: string): string {
  return `~${createHash('sha256').update(binding).digest('base64url').slice(0, 22)}`;
}

export function encodeButtonId(id: ButtonId): string {
  const head = `${PREFIX}:${id.action}:${id.runId}`;
  if (head.length > Limits.customId) throw new RangeError(`run id too long for a button: ${id.runId}`);
  if (id.binding === undefined) return head;
  const raw = `${head}:${id.binding}`;
  return raw.length <= Limits.customId && !id.binding.startsWith('~')
    ? raw
    : `${head}:${hashBinding(id.binding)}`;
}

export function decodeButtonId(customId: string): ButtonId | undefined {
  const [prefix, action, runId, ...rest] = customId.split(':');
  if (prefix !== PREFIX || action === undefined || !ACTIONS.includes(action) || !runId) return undefined;
  const binding = rest.length > 0 ? rest.join(':') : undefined;
  return { action: action as ButtonAction, runId, ...(binding !== undefined ? { binding } : {}) };
}

/**
 * The binding to send with the approval: the shown one when it still matches the gate (hashes are
 * resolved against the gate's current binding), or the shown one unchanged so the engine refuses it.
 */
export function resolveShownBinding(
  shown: string | undefined,
  current: string | undefined,
): string | undefined {
  if (shown === undefined || !shown.startsWith('~')) return shown;
  return current !== undefined && hashBinding(current) === shown ? current : shown;
}
