/**
 * The run item's body, packed. DynamoDB bills a write per KB of the item (twice inside a
 * transaction) and rewrites the whole run item on every lease and commit, while a read is billed
 * per 4 KB: so the run's state and data, JSON that repeats its own keys and strings (a plan's task
 * titles appear in the plan, the work list and the results), are stored as one Brotli-compressed
 * binary attribute. A 3.7 KB run body packs to about 1.2 KB (bench/cost.ts: `cost.runItemBytes`).
 *
 * Only what a condition or DynamoDB itself reads stays a plain attribute (keys, index keys,
 * `version`, `eventSeq`, `lease`, `ttl`): see DynamoRunStore.toItem.
 */
import { createHash } from 'node:crypto';
import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib';

/**
 * Quality 5: measured on a 3.7 KB run body, 0.2 ms and 1,242 bytes, where quality 11 (the
 * default) takes 7 ms for 1,132 bytes and 9 takes 4.7 ms: every lease and commit packs the run,
 * so the last tenth of the size is not worth thirty times the time on a step's path.
 */
const PARAMS = {
  [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
  [constants.BROTLI_PARAM_QUALITY]: 5,
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

/**
 * Large values of the run's data, stored in items of their own (`RUN#<id> / DATA#<hash>`) instead
 * of in the run item. An issue's body, its plan and the routing decision are written once and read
 * at every step; inside the run item they would be billed again on every lease and commit (a KB
 * each). A value is written when it first appears, and a write of the run keeps the refs of the
 * values the version it replaces had stored: only new values are written.
 *
 * A chunk is one such item, content-addressed: a lone new value is packed alone (its ref is its
 * hash), and the new values of one write are packed together, up to about a KB an item, since a
 * write is billed per KB however little the item holds (a task changes its work list, its budget
 * and its result at once: one write, not three). A value in a shared chunk has the ref
 * `<chunk hash>:<value hash>` (a base64url hash never holds a `:`).
 */
export interface Chunk {
  hash: string;
  bytes: Uint8Array;
}

/** A value whose JSON is at least this long is a chunk; smaller ones stay in the run item. */
export const CHUNK_MIN_JSON_BYTES = 200;

/**
 * New values are packed together while their packed sizes add up to at most this (a chunk item's
 * keys and attributes take the rest of its first KB).
 */
export const CHUNK_SHARED_BYTES = 900;

/** The run item's side of split data: what stays inline, and the chunk of each other key. */
export interface SplitData {
  inline: Record<string, unknown>;
  /** key -> the value's ref: `<hash>` (a chunk of its own) or `<chunk hash>:<value hash>` */
  refs: Record<string, string>;
  /** Every key in its order, when some are chunks (so the data reads back in the same order). */
  order?: string[];
  /** The chunks to write: those of values not stored before. */
  chunks: Chunk[];
}

/** The chunk a ref names, and whether the value is one of several in it. */
export function chunkOf(ref: string): { chunk: string; value?: string } {
  const i = ref.indexOf(':');
  return i < 0 ? { chunk: ref } : { chunk: ref.slice(0, i), value: ref.slice(i + 1) };
}

function hashOf(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 22);
}

/**
 * Split the run's data into what stays in the run item and chunks. `stored`: the refs of the
 * version this write replaces; a value stored there keeps its ref and is not written again.
 */
export function splitData(data: Record<string, unknown>, stored: Record<string, string> = {}): SplitData {
  const inline: Record<string, unknown> = {};
  const refs: Record<string, string> = {};
  const have = new Map<string, string>();
  for (const ref of Object.values(stored)) {
    const { chunk, value } = chunkOf(ref);
    have.set(value ?? chunk, ref);
  }
  const fresh = new Map<string, { value: unknown; bytes: Uint8Array; keys: string[] }>();
  for (const [key, value] of Object.entries(data)) {
    const json = value === undefined ? undefined : JSON.stringify(value);
    if (json === undefined || Buffer.byteLength(json, 'utf8') < CHUNK_MIN_JSON_BYTES) {
      inline[key] = value;
      continue;
    }
    const hash = hashOf(json);
    const known = have.get(hash);
    if (known !== undefined) {
      refs[key] = known;
      continue;
    }
    refs[key] = hash;
    const f = fresh.get(hash);
    if (f) f.keys.push(key);
    else fresh.set(hash, { value, bytes: pack(value), keys: [key] });
  }
  // Shared chunks, first fit in the data's order; a value too large to share is alone.
  const groups: Array<Array<[string, { value: unknown; bytes: Uint8Array; keys: string[] }]>> = [];
  const sizes: number[] = [];
  for (const entry of fresh) {
    const size = entry[1].bytes.byteLength;
    const i = sizes.findIndex((n) => n + size <= CHUNK_SHARED_BYTES);
    if (i < 0) {
      groups.push([entry]);
      sizes.push(size);
    } else {
      groups[i]!.push(entry);
      sizes[i]! += size;
    }
  }
  const chunks: Chunk[] = [];
  for (const group of groups) {
    if (group.length === 1) {
      const [hash, { bytes }] = group[0]!;
      chunks.push({ hash, bytes });
      continue;
    }
    const hash = hashOf(group.map(([h]) => h).join(':'));
    chunks.push({ hash, bytes: pack(Object.fromEntries(group.map(([h, f]) => [h, f.value]))) });
    for (const [h, f] of group) for (const key of f.keys) refs[key] = `${hash}:${h}`;
  }
  return Object.keys(refs).length === 0
    ? { inline, refs, chunks }
    : { inline, refs, order: Object.keys(data), chunks };
}

/** The data again, from its inline part and its chunks' values (`chunkValue(ref)`). */
export function joinData(
  inline: Record<string, unknown>,
  refs: Record<string, string>,
  order: string[] | undefined,
  chunkValue: (ref: string) => unknown,
): Record<string, unknown> {
  const data: Record<string, unknown> = {};
  for (const key of order ?? [...Object.keys(inline), ...Object.keys(refs)])
    data[key] = key in refs ? chunkValue(refs[key]!) : inline[key];
  return data;
}

/**
 * Chunks held in memory, packed (a caller may change the data it is given; unpacking a KB is a few
 * microseconds). Least recently used first out, past `maxBytes`.
 */
export class ChunkCache {
  private readonly entries = new Map<string, Uint8Array>();
  private bytes = 0;

  constructor(private readonly maxBytes = 8 * 1024 * 1024) {}

  get(runId: string, hash: string): Uint8Array | undefined {
    const key = `${runId}/${hash}`;
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
    }
    return hit;
  }

  set(runId: string, hash: string, bytes: Uint8Array): void {
    const key = `${runId}/${hash}`;
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.bytes -= old.byteLength;
    }
    this.entries.set(key, bytes);
    this.bytes += bytes.byteLength;
    for (const [k, v] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= v.byteLength;
    }
  }
}
