/**
 * Bundle size and cold import time of every Lambda function, bundled exactly as the CDK stack
 * bundles it (infra/bundling.ts: esbuild, ESM, minified, source maps, AWS SDK included, then the
 * same afterBundling commands: config copy, code splitting and the Discord policy as JSON).
 *
 * Cold import: median over fresh `node --enable-source-maps` processes (as on Lambda, where
 * NODE_OPTIONS sets the flag) of the time to `await import()` the bundle, minus the median for an
 * empty module measured in the same rounds. Targets are interleaved round by round, so machine
 * noise hits all of them alike. The deployed bundle already contains the AWS SDK, so the import
 * measured is the whole cost, not a cost shifted to the runtime's SDK copy.
 *
 * Sizes: `bundleKB` is all the JavaScript in the asset (every chunk); `importKB` is what a cold
 * start loads: the entry and the chunks it imports statically. They differ only for functions
 * bundled with code splitting, whose other chunks load on first use (bench/discord.ts measures
 * that first use: cold first PING and cold first /status).
 *
 * Worker and sweeper (issue 13): `<fn>.coldImportRatioToSingleBundle` is the cold import of the
 * deployed, split asset over that of the "single bundle": the same entry bundled exactly as the
 * deployed one but without code splitting, so that esbuild inlines every dynamic `import()` into
 * the one file (what NodejsFunction writes before the splitting hook, and what these functions
 * were before issue 13): everything parsed at cold start. The split asset defers the app to the
 * first message, so `<fn>.coldImportWithAppMs` also times the entry plus the app's chunk and its
 * static imports (the first message's load, less the modules of nodes that have not run yet),
 * with `<fn>.coldImportWithAppRatioToSingleBundle`: the load moved, not removed, is shown. The
 * workflows' nodes load when one of them first runs (lib/workflows/nodes.ts): the worker's
 * `coldImportFirstNodeMs` adds their chunk (lib/workflows/worker-nodes.ts), what the first
 * message of a run's first node (intake) loads, with `worker.coldImportFirstNodeRatioToSingleBundle`.
 *
 *   npx tsx bench/functions.ts             prints a Markdown table
 *   npx tsx bench/functions.ts --modules   also lists the packages each function loads at import
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, type Metafile } from 'esbuild';
import { afterBundlingCommands, CONFIG_SOURCE, ESBUILD_OPTIONS } from '../infra/bundling.ts';
import { FUNCTIONS, type FunctionSpec } from '../infra/functions.ts';

type Results = Record<string, Record<string, number>>;

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NAIVE = 'discordNaive';

interface Target {
  name: string;
  file: string;
  /** Imported right after `file`, in order, in the same timing (chunks the first message loads). */
  andThen?: string[];
}

/** Functions whose split asset is compared with the same entry as a single bundle. */
const SINGLE_BUNDLE_BASELINE = ['worker', 'sweeper'];
const SINGLE = 'Single';

/** What the functions read at load on Lambda; values are inert, nothing is called. */
function lambdaLikeEnv(configPath: string | undefined): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'bench',
    AWS_SECRET_ACCESS_KEY: 'bench',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    STAGE: 'bench',
    TABLE_NAME: 'switchyard-bench',
    QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/switchyard-bench',
    API_BASE_URL: 'https://bench.execute-api.us-east-1.amazonaws.com',
    DISCORD_PUBLIC_KEY: 'a'.repeat(64),
    DISCORD_APPLICATION_ID: '123456789012345678',
    POWERTOOLS_SERVICE_NAME: 'switchyard-bench',
    POWERTOOLS_METRICS_NAMESPACE: 'Switchyard',
    POWERTOOLS_LOG_LEVEL: 'SILENT',
    ...(configPath ? { SWITCHYARD_CONFIG: configPath } : {}),
  };
}

export interface Bundle {
  file: string;
  /** All JavaScript in the asset, bytes. */
  totalBytes: number;
  /** The entry and the chunks it imports statically: what a cold start parses. */
  importBytes: number;
  /** Source files and packages in the asset, and those loaded at import. */
  inputs: string[];
  importInputs: string[];
  /** The chunk whose entry point is lib/app/worker.ts (split bundles that import the app lazily). */
  appChunk?: string;
  /** The chunk of the workflows' nodes (lib/workflows/worker-nodes.ts), imported when a node first runs. */
  nodesChunk?: string;
}

function jsBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && /\.m?js$/.test(entry.name))
      total += statSync(join(entry.parentPath, entry.name)).size;
  }
  return total;
}

/** The outputs loaded at import: the entry and, transitively, its static imports of other outputs. */
function importClosure(metafile: Metafile): { bytes: number; inputs: string[] } {
  const outputs = metafile.outputs;
  // Chunks imported dynamically are entry points too: the function's own entry is index.mjs.
  const entry = Object.keys(outputs).find((p) => /(^|\/)index\.mjs$/.test(p));
  const seen = new Set<string>();
  const stack = entry ? [entry] : [];
  while (stack.length > 0) {
    const p = stack.pop()!;
    if (seen.has(p) || !outputs[p]) continue;
    seen.add(p);
    for (const i of outputs[p].imports) if (i.kind === 'import-statement' && !i.external) stack.push(i.path);
  }
  const inputs = new Set<string>();
  let bytes = 0;
  for (const p of seen) {
    bytes += outputs[p]!.bytes;
    for (const input of Object.keys(outputs[p]!.inputs)) inputs.add(input);
  }
  return { bytes, inputs: [...inputs] };
}

/** As the stack does: esbuild to one file (NodejsFunction), then the afterBundling commands. */
export async function bundle(
  spec: Pick<FunctionSpec, 'entry' | 'bundle'>,
  outdir: string,
  work: string,
): Promise<Bundle> {
  mkdirSync(outdir, { recursive: true });
  const outfile = join(outdir, 'index.mjs');
  const single = await build({
    ...ESBUILD_OPTIONS,
    mainFields: [...ESBUILD_OPTIONS.mainFields],
    external: [...ESBUILD_OPTIONS.external],
    entryPoints: [join(ROOT, spec.entry)],
    outfile,
    absWorkingDir: ROOT,
    metafile: true,
    // Failures are reported once, below, with the function's name.
    logLevel: 'silent',
  });
  let metafile = single.metafile;
  if (existsSync(join(ROOT, CONFIG_SOURCE))) {
    const metafileOut = join(work, `${spec.entry.replace(/\W/g, '_')}.meta.json`);
    // Only a split build writes one: a single bundle of the same entry must not read the last one's.
    rmSync(metafileOut, { force: true });
    const hook = spawnSync('bash', ['-c', afterBundlingCommands(spec, ROOT, outdir).join(' && ')], {
      cwd: ROOT,
      env: { ...process.env, SWITCHYARD_BUNDLE_METAFILE: metafileOut },
      encoding: 'utf8',
    });
    if (hook.status !== 0) throw new Error(`afterBundling commands failed: ${hook.stderr || hook.stdout}`);
    if (existsSync(metafileOut)) metafile = JSON.parse(readFileSync(metafileOut, 'utf8')) as Metafile;
  }
  const loaded = importClosure(metafile);
  const chunkOf = (entry: string) =>
    Object.entries(metafile.outputs).find(([p, o]) => p.endsWith('.mjs') && o.entryPoint?.endsWith(entry));
  const app = chunkOf('lib/app/worker.ts');
  const nodes = chunkOf('lib/workflows/worker-nodes.ts');
  return {
    file: outfile,
    totalBytes: jsBytes(outdir),
    importBytes: loaded.bytes,
    inputs: Object.keys(metafile.inputs),
    importInputs: loaded.inputs,
    ...(app ? { appChunk: join(ROOT, app[0]) } : {}),
    ...(nodes ? { nodesChunk: join(ROOT, nodes[0]) } : {}),
  };
}

/** `lib/discord/handler.ts` stays itself; `node_modules/@aws-sdk/client-sqs/dist-es/...` becomes its package. */
function packages(inputs: string[]): string[] {
  const names = inputs.map((p) => {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(p);
    return m ? m[1]! : p;
  });
  return [...new Set(names)].sort();
}

const IMPORT_TIMER = [
  'const urls = process.argv.slice(1);',
  'const t0 = performance.now();',
  'for (const url of urls) await import(url);',
  'process.stdout.write(String(performance.now() - t0));',
].join('\n');

function importOnce(target: Target, env: NodeJS.ProcessEnv): number {
  const child = spawnSync(
    process.execPath,
    [
      '--enable-source-maps',
      '--input-type=module',
      '-e',
      IMPORT_TIMER,
      pathToFileURL(target.file).href,
      ...(target.andThen ?? []).map((f) => pathToFileURL(f).href),
    ],
    { env, encoding: 'utf8', timeout: 60_000 },
  );
  const ms = Number(child.stdout);
  if (child.status !== 0 || !Number.isFinite(ms)) {
    throw new Error(`importing the ${target.name} bundle failed: ${child.stderr || child.stdout}`);
  }
  return ms;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const round = (n: number, digits = 1) => Number(n.toFixed(digits));

export async function benchFunctions(
  options: { rounds?: number; printModules?: boolean } = {},
): Promise<Results> {
  const rounds = options.rounds ?? 7;
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-bench-functions-'));
  try {
    const targets: Target[] = [];
    const figures: Record<string, number> = {};
    let failures = 0;
    const modules: Record<string, string[]> = {};
    for (const spec of FUNCTIONS) {
      const entry = join(ROOT, spec.entry);
      if (!existsSync(entry)) continue;
      try {
        const b = await bundle(spec, join(dir, spec.name), dir);
        figures[`${spec.name}.bundleKB`] = round(b.totalBytes / 1024);
        figures[`${spec.name}.importKB`] = round(b.importBytes / 1024);
        modules[spec.name] = packages(b.importInputs);
        if (spec.name === 'discord') {
          // Issue 4: the Discord bundle carries no YAML parser, and its cold start loads no AWS SDK.
          figures['discord.bundleHasYaml'] = b.inputs.some((p) => /node_modules\/yaml\//.test(p)) ? 1 : 0;
          figures['discord.importHasAwsSdk'] = b.importInputs.some((p) =>
            /node_modules\/@(aws-sdk|smithy)\//.test(p),
          )
            ? 1
            : 0;
        }
        targets.push({ name: spec.name, file: b.file });
        if (SINGLE_BUNDLE_BASELINE.includes(spec.name)) {
          if (b.appChunk) targets.push({ name: `${spec.name}WithApp`, file: b.file, andThen: [b.appChunk] });
          if (b.appChunk && b.nodesChunk && spec.name === 'worker')
            targets.push({
              name: `${spec.name}FirstNode`,
              file: b.file,
              andThen: [b.appChunk, b.nodesChunk],
            });
          // The same entry, one file: no `bundle` steps, so esbuild inlines every dynamic import.
          const single = await bundle({ entry: spec.entry }, join(dir, `${spec.name}${SINGLE}`), dir);
          figures[`${spec.name}${SINGLE}.importKB`] = round(single.importBytes / 1024);
          targets.push({ name: `${spec.name}${SINGLE}`, file: single.file });
        }
      } catch (err) {
        // One broken function should not hide the figures of the others; the count shows it.
        failures++;
        console.error(`bench functions: ${spec.entry} does not bundle: ${(err as Error).message}`);
      }
    }
    figures.bundleFailures = failures;
    const hasDiscord = targets.some((t) => t.name === 'discord');
    if (hasDiscord) {
      // The careless variant is one file, as NodejsFunction writes it: no splitting, no policy JSON.
      const b = await bundle({ entry: 'bench/naive-discord.ts' }, join(dir, NAIVE), dir);
      figures[`${NAIVE}.bundleKB`] = round(b.totalBytes / 1024);
      figures[`${NAIVE}.importKB`] = round(b.importBytes / 1024);
      modules[NAIVE] = packages(b.importInputs);
      targets.push({ name: NAIVE, file: b.file });
    }
    if (options.printModules) {
      for (const [name, list] of Object.entries(modules))
        console.error(`${name} loads at import: ${list.join(', ')}`);
    }
    const empty = join(dir, 'empty', 'index.mjs');
    mkdirSync(join(dir, 'empty'));
    writeFileSync(empty, 'export {};\n');
    targets.push({ name: 'baseline', file: empty });

    const config = join(ROOT, CONFIG_SOURCE);
    const env = lambdaLikeEnv(existsSync(config) ? config : undefined);
    const samples = new Map<string, number[]>(targets.map((t) => [t.name, []]));
    importOnce(targets[targets.length - 1]!, env); // warm the OS file cache for node itself
    for (let r = 0; r < rounds; r++) {
      for (const target of targets) samples.get(target.name)!.push(importOnce(target, env));
    }
    const baseline = median(samples.get('baseline')!);
    figures['baseline.importMs'] = round(baseline, 2);
    const cold = (name: string) => Math.max(0, median(samples.get(name)!) - baseline);
    for (const target of targets) {
      if (target.name !== 'baseline') figures[`${target.name}.coldImportMs`] = round(cold(target.name));
    }
    if (hasDiscord) {
      figures['discord.coldImportRatioToNaive'] = round(cold('discord') / cold(NAIVE), 3);
    }
    for (const name of SINGLE_BUNDLE_BASELINE) {
      if (!samples.has(`${name}${SINGLE}`)) continue;
      figures[`${name}.coldImportRatioToSingleBundle`] = round(cold(name) / cold(`${name}${SINGLE}`), 3);
      if (samples.has(`${name}WithApp`)) {
        figures[`${name}.coldImportWithAppMs`] = round(cold(`${name}WithApp`));
        figures[`${name}.coldImportWithAppRatioToSingleBundle`] = round(
          cold(`${name}WithApp`) / cold(`${name}${SINGLE}`),
          3,
        );
      }
      if (samples.has(`${name}FirstNode`)) {
        figures[`${name}.coldImportFirstNodeMs`] = round(cold(`${name}FirstNode`));
        figures[`${name}.coldImportFirstNodeRatioToSingleBundle`] = round(
          cold(`${name}FirstNode`) / cold(`${name}${SINGLE}`),
          3,
        );
      }
    }
    return { functions: figures };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function table(results: Results): string {
  const figures = results.functions ?? {};
  const names = [
    ...new Set(
      Object.keys(figures)
        .filter((k) => k.includes('.'))
        .map((k) => k.slice(0, k.indexOf('.'))),
    ),
  ].filter((n) => n !== 'baseline');
  const rows = ['| function | bundle KB | loaded at import KB | cold import ms |', '|---|---:|---:|---:|'];
  for (const n of names)
    rows.push(
      `| ${n} | ${figures[`${n}.bundleKB`]} | ${figures[`${n}.importKB`]} | ${figures[`${n}.coldImportMs`]} |`,
    );
  rows.push(
    '',
    `Empty-module import (subtracted): ${figures['baseline.importMs']} ms. Node ${process.version}.`,
  );
  if (figures.bundleFailures)
    rows.push(`Functions that failed to bundle: ${figures.bundleFailures} (see stderr).`);
  if (figures['discord.coldImportRatioToNaive'] !== undefined) {
    rows.push(
      `Discord cold import vs. naive full-SDK variant: ${figures['discord.coldImportRatioToNaive']} (target <= 0.5)`,
      `Discord bundle has yaml: ${figures['discord.bundleHasYaml']}; loads the AWS SDK at import: ${figures['discord.importHasAwsSdk']}`,
    );
  }
  return rows.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(table(await benchFunctions({ printModules: process.argv.includes('--modules') })));
}
