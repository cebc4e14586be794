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

/**
 * An item's size as DynamoDB bills it (not an upper estimate): attribute names and values in
 * bytes, strings in UTF-8, binary as is, a number by its significant digits (two per byte, plus
 * one), and 3 bytes per list or map plus 1 per element. What the store compares when it decides
 * whether carrying a commit's events in the run item costs a write unit more (dynamodb.ts).
 */
export function dynamoItemBytes(item: Record<string, unknown>): number {
  let n = 0;
  for (const [k, v] of Object.entries(item))
    if (v !== undefined) n += Buffer.byteLength(k, 'utf8') + valueBytes(v);
  return n;
}

function valueBytes(v: unknown): number {
  if (typeof v === 'string') return Buffer.byteLength(v, 'utf8');
  if (typeof v === 'number') {
    const digits = String(Math.abs(v)).replace(/e.*$/, '').replace('.', '').replace(/^0+/, '').length;
    return Math.ceil(Math.max(digits, 1) / 2) + 1;
  }
  if (typeof v === 'boolean' || v === null) return 1;
  if (v instanceof Uint8Array) return v.byteLength;
  if (v instanceof Set) return [...v].reduce((n: number, x) => n + valueBytes(x), 0);
  if (Array.isArray(v)) return 3 + v.reduce((n: number, x) => n + 1 + valueBytes(x), 0);
  if (typeof v === 'object') {
    let n = 3;
    for (const [k, x] of Object.entries(v as Record<string, unknown>))
      if (x !== undefined) n += 1 + Buffer.byteLength(k, 'utf8') + valueBytes(x);
    return n;
  }
  return 0;
}
