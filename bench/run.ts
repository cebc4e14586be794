import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { startDynamoDbLocal } from '../lib/store/dynamodb-local.ts';

/**
 * `npm run bench`: every benchmark, one DynamoDB Local for all, a Markdown table on stdout and
 * `bench/results.json` (an object keyed by benchmark name, each value an object of numbers).
 * The suites that ran replace their own keys in the file; the others' figures are kept, so
 * `npm run bench -- faults` does not erase the engine's or Discord's last figures.
 * Figures that depend on this noisy machine are also given as ratios to a baseline measured in
 * the same run; compare those across runs, not the milliseconds.
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';

type Results = Record<string, Record<string, number>>;

const SUITES: Array<[string, () => Promise<Results>]> = [
  ['engine', async () => (await import('./engine.ts')).benchEngine()],
  ['github', async () => (await import('./github.ts')).benchGitHub()],
  ['discord', async () => (await import('./discord.ts')).benchDiscord()],
  ['functions', async () => (await import('./functions.ts')).benchFunctions()],
  ['faults', async () => (await import('./faults.ts')).benchFaults()],
  ['console', async () => (await import('./console.ts')).benchConsole()],
  ['cost', async () => (await import('./cost.ts')).benchCost()],
];

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const db = process.env.DYNAMODB_ENDPOINT ? undefined : await startDynamoDbLocal();
  if (db) process.env.DYNAMODB_ENDPOINT = db.endpoint;
  const results: Results = {};
  const failures: string[] = [];
  try {
    for (const [name, run] of SUITES) {
      if (only.length > 0 && !only.includes(name)) continue;
      const started = Date.now();
      try {
        // Per benchmark, key by key: the cost suite adds `engine.billedWriteUnitsPerTransition`.
        for (const [bench, figures] of Object.entries(await run()))
          results[bench] = { ...results[bench], ...figures };
        console.error(`bench ${name}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
      } catch (err) {
        failures.push(`${name}: ${(err as Error).stack ?? err}`);
      }
    }
  } finally {
    await db?.stop();
  }
  const rows = ['| benchmark | figure | value |', '|---|---|---|'];
  for (const [bench, figures] of Object.entries(results)) {
    for (const [k, v] of Object.entries(figures)) {
      rows.push(`| ${bench} | ${k} | ${Number.isInteger(v) ? v : v.toFixed(3)} |`);
    }
  }
  console.log(rows.join('\n'));
  const file = new URL('./results.json', import.meta.url);
  // A full run writes what it measured, and nothing else: a figure no suite reports any more (a
  // KV group the code no longer writes) does not linger. Per benchmark, key by key, a run of some
  // suites keeps every other figure (and the `engine` keys the cost suite adds keep the engine
  // suite's).
  const previous: Results =
    only.length > 0 && existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Results) : {};
  const merged: Results = { ...previous };
  for (const [bench, figures] of Object.entries(results)) merged[bench] = { ...merged[bench], ...figures };
  writeFileSync(file, `${JSON.stringify(merged, null, 2)}\n`);
  if (failures.length > 0) {
    console.error(`\n${failures.length} benchmark(s) failed:\n${failures.join('\n')}`);
    process.exitCode = 1;
  }
}

await main();
