/**
 * The run item's body, packed. DynamoDB bills a write per KB of the item (twice inside a
 * transaction) and rewrites the whole run item on every lease and commit, while a read is billed
 * per 4 KB: so the run's state and data, JSON that repeats its own keys and strings (a plan's task
 * titles appear in the plan, the work list and the results), are stored as one compressed binary
 * attribute (deflate with a preset dictionary, below). A 2.2 KB run body packs to about 620 bytes
 * (bench/cost.ts: `cost.runItemBytes`).
 *
 * Only what a condition or DynamoDB itself reads stays a plain attribute (keys, index keys,
 * `version`, `eventSeq`, `lease`, `ttl`): see DynamoRunStore.toItem.
 */
import { createHash } from 'node:crypto';
import { brotliDecompressSync, deflateSync, inflateSync } from 'node:zlib';
import { StoreError } from '../engine/store-errors.ts';
import { PACK_DICTIONARY } from './dictionary.ts';

/**
 * Packed values are zlib streams (RFC 1950) deflated with a preset dictionary of the store's own
 * vocabulary (dictionary.ts): their second byte flags the dictionary and the next four name it
 * (its Adler-32), so a value is unpacked with the dictionary it was packed with. Level 9 costs
 * about 0.1 ms on a 2 KB run body, as Brotli at quality 5 did, and packs it a quarter smaller.
 *
 * Values packed before (issue 13's first cost sessions) are Brotli streams, read as they are: the
 * encoder's 4 MB window always made their first byte end in the bits 1011 (WBITS 22, RFC 7932
 * 9.1), where a zlib stream's first byte is 0x78 (deflate, 32 KB window).
 */
const CURRENT = Buffer.from(PACK_DICTIONARY, 'utf8');
/** A dictionary's id as zlib writes it in a stream's header (its Adler-32). */
export const dictionaryId = (dictionary: Buffer): number =>
  deflateSync(Buffer.alloc(0), { dictionary }).readUInt32BE(2);
const DICTIONARIES = new Map<number, Buffer>([[dictionaryId(CURRENT), CURRENT]]);
/** zlib's CMF byte for deflate with a 32 KB window: the first byte of every zlib stream `pack` writes. */
const ZLIB_CMF = 0x78;

export function pack(value: unknown): Uint8Array {
  const json = Buffer.from(JSON.stringify(value), 'utf8');
  return new Uint8Array(deflateSync(json, { level: 9, memLevel: 9, dictionary: CURRENT }));
}

export function unpack<T>(bytes: Uint8Array): T {
  const raw =
    bytes[0] === ZLIB_CMF
      ? inflateSync(bytes, { dictionary: dictionaryOf(bytes) })
      : brotliDecompressSync(bytes);
  return JSON.parse(raw.toString('utf8')) as T;
}

/** The dictionary a zlib stream names (FDICT set: DICTID, big-endian, after the two header bytes). */
function dictionaryOf(bytes: Uint8Array): Buffer | undefined {
  if (bytes.length < 6 || (bytes[1]! & 0x20) === 0) return undefined;
  const id = ((bytes[2]! << 24) | (bytes[3]! << 16) | (bytes[4]! << 8) | bytes[5]!) >>> 0;
  const dictionary = DICTIONARIES.get(id);
  if (!dictionary)
    throw new StoreError(`a packed value names a dictionary this version does not have (${id})`);
  return dictionary;
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
