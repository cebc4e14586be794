/**
 * The size budget of a run. DynamoDB refuses an item over 400 KB and a transaction over 4 MB; a
 * run item is rewritten on every transition, so it is kept well below the item limit, and a
 * write that would cross the budget is refused by the store before it is sent (issue #9, defect
 * 3) instead of failing as a DynamoDB ValidationError that looks like a lost race.
 */

/** The run item (state plus data) after a commit. */
export const RUN_ITEM_BUDGET_BYTES = 300_000;
/** One commit's history events (they go in one item). */
export const EVENTS_ITEM_BUDGET_BYTES = 300_000;
/** DynamoDB's own limit on a map or list nesting (32 levels); payloads are capped far below it. */
export const DYNAMODB_MAX_DEPTH = 32;

/**
 * An upper estimate of an item's DynamoDB size: its JSON in UTF-8. DynamoDB counts attribute
 * names and values (numbers as up to 21 bytes), so JSON's quotes and braces make this a slight
 * over-estimate, which is the safe side for a budget.
 */
export function itemBytes(item: unknown): number {
  return Buffer.byteLength(JSON.stringify(item, (_k, v) => (v instanceof Set ? [...v] : v)) ?? '', 'utf8');
}
