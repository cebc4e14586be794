/**
 * The run item's body, packed. DynamoDB bills a write per KB of the item (twice inside a
 * transaction) and rewrites the whole run item on every lease and commit, while a read is billed
 * per 4 KB: so the run's state and data, JSON that repeats its own keys and strings (a plan's task
 * titles appear in the plan, the work list and the results), are stored as one Brotli-compressed
 * binary attribute. A 3.7 KB run body packs to about 1 KB (bench/cost.ts: `cost.runItemBytes`).
 *
 * Only what a condition or DynamoDB itself reads stays a plain attribute (keys, index keys,
 * `version`, `eventSeq`, `lease`, `ttl`): see DynamoRunStore.toItem.
 */
import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib';

/** Quality 11 (the best) costs well under a millisecond for a few KB, once per write. */
const PARAMS = {
  [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
  [constants.BROTLI_PARAM_QUALITY]: 11,
};

export function pack(value: unknown): Uint8Array {
  const json = Buffer.from(JSON.stringify(value), 'utf8');
  return new Uint8Array(
    brotliCompressSync(json, { params: { ...PARAMS, [constants.BROTLI_PARAM_SIZE_HINT]: json.length } }),
  );
}

export function unpack<T>(bytes: Uint8Array): T {
  return JSON.parse(brotliDecompressSync(bytes).toString('utf8')) as T;
}
