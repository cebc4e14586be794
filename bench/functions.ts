/**
 * Bundle size and cold import time of every Lambda function, bundled exactly as the CDK stack
 * bundles it (infra/bundling.ts: esbuild, ESM, minified, source maps, AWS SDK included).
 *
 * Cold import: median over fresh `node --enable-source-maps` processes (as on Lambda, where
 * NODE_OPTIONS sets the flag) of the time to `await import()` the bundle, minus the median for an
 * empty module measured in the same rounds. Targets are interleaved round by round, so machine
 * noise hits all of them alike. The deployed bundle already contains the AWS SDK, so the import
 * measured is the whole cost, not a cost shifted to the runtime's SDK copy.
 *
 *   npx tsx bench/functions.ts     prints a Markdown table
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { CONFIG_IN_BUNDLE, CONFIG_SOURCE, ESBUILD_OPTIONS } from '../infra/bundling.ts';
import { FUNCTIONS } from '../infra/functions.ts';

type Results = Record<string, Record<string, number>>;

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NAIVE = 'discordNaive';

interface Target {
  name: string;
  file: string;
}

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

async function bundle(entry: string, outdir: string): Promise<string> {
  mkdirSync(outdir, { recursive: true });
  const outfile = join(outdir, 'index.mjs');
  await build({
    ...ESBUILD_OPTIONS,
    mainFields: [...ESBUILD_OPTIONS.mainFields],
    external: [...ESBUILD_OPTIONS.external],
    entryPoints: [entry],
    outfile,
    absWorkingDir: ROOT,
    // Failures are reported once, below, with the function's name.
    logLevel: 'silent',
  });
  // The stack's afterBundling hook does the same.
  const config = join(ROOT, CONFIG_SOURCE);
  if (existsSync(config)) copyFileSync(config, join(outdir, CONFIG_IN_BUNDLE));
  return outfile;
}

const IMPORT_TIMER = [
  'const url = process.argv[1];',
  'const t0 = performance.now();',
  'await import(url);',
  'process.stdout.write(String(performance.now() - t0));',
].join('\n');

function importOnce(target: Target, env: NodeJS.ProcessEnv): number {
  const child = spawnSync(
    process.execPath,
    ['--enable-source-maps', '--input-type=module', '-e', IMPORT_TIMER, pathToFileURL(target.file).href],
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

export async function benchFunctions(options: { rounds?: number } = {}): Promise<Results> {
  const rounds = options.rounds ?? 7;
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-bench-functions-'));
  try {
    const targets: Target[] = [];
    const figures: Record<string, number> = {};
    let failures = 0;
    for (const spec of FUNCTIONS) {
      const entry = join(ROOT, spec.entry);
      if (!existsSync(entry)) continue;
      try {
        const file = await bundle(entry, join(dir, spec.name));
        figures[`${spec.name}.bundleKB`] = round(statSync(file).size / 1024);
        targets.push({ name: spec.name, file });
      } catch (err) {
        // One broken function should not hide the figures of the others; the count shows it.
        failures++;
        console.error(`bench functions: ${spec.entry} does not bundle: ${(err as Error).message}`);
      }
    }
    figures.bundleFailures = failures;
    const hasDiscord = targets.some((t) => t.name === 'discord');
    if (hasDiscord) {
      const file = await bundle(join(ROOT, 'bench/naive-discord.ts'), join(dir, NAIVE));
      figures[`${NAIVE}.bundleKB`] = round(statSync(file).size / 1024);
      targets.push({ name: NAIVE, file });
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
  const rows = ['| function | bundle KB | cold import ms |', '|---|---:|---:|'];
  for (const n of names)
    rows.push(`| ${n} | ${figures[`${n}.bundleKB`]} | ${figures[`${n}.coldImportMs`]} |`);
  rows.push(
    '',
    `Empty-module import (subtracted): ${figures['baseline.importMs']} ms. Node ${process.version}.`,
  );
  if (figures.bundleFailures)
    rows.push(`Functions that failed to bundle: ${figures.bundleFailures} (see stderr).`);
  if (figures['discord.coldImportRatioToNaive'] !== undefined) {
    rows.push(
      `Discord cold import vs. naive full-SDK variant: ${figures['discord.coldImportRatioToNaive']} (target <= 0.5)`,
    );
  }
  return rows.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(table(await benchFunctions()));
}
