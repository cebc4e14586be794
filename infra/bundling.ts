import type { FunctionSpec } from './functions.ts';

/**
 * How every function is bundled, shared by the CDK stack (NodejsFunction, local esbuild) and by
 * bench/functions.ts, so the benchmark measures exactly what is deployed. No CDK import here.
 */

/** Lambda runs Node.js 24 (infra/switchyard-stack.ts); node22 syntax keeps the bundle valid on 22 too. */
export const BUNDLE_TARGET = 'node22';

/**
 * ESM output. Some CommonJS dependencies call `require()` for Node built-ins, which an ESM bundle
 * does not define; this banner gives them one.
 */
export const ESM_REQUIRE_SHIM =
  "import { createRequire as __switchyardCreateRequire } from 'node:module'; import { dirname as __switchyardDirname } from 'node:path'; import { fileURLToPath as __switchyardPath } from 'node:url'; const require = __switchyardCreateRequire(import.meta.url); const __filename = __switchyardPath(import.meta.url); const __dirname = __switchyardDirname(__filename);";

/**
 * RE2 for config patterns (lib/common/re2.ts) is WebAssembly that re2-wasm reads from
 * `<__dirname>/re2.wasm` at load: every bundle gets the file next to its entry.
 */
export const RE2_WASM_SOURCE = 'node_modules/re2-wasm/build/wasm/re2.wasm';
export const RE2_WASM_IN_BUNDLE = 're2.wasm';

/** Prefer the ESM build of dual packages: better tree shaking, no CJS wrappers. */
export const MAIN_FIELDS = ['module', 'main'];

/**
 * The AWS SDK is bundled rather than taken from the Lambda runtime: the code runs against the SDK
 * version it was tested with, and tree-shaken, minified SDK code loads faster than the runtime's
 * copy resolved from disk. So the deployed bundle and the benchmarked one are the same.
 */
export const BUNDLE_AWS_SDK = true;

/** Where the YAML config lands inside each function asset (copied by an afterBundling hook). */
export const CONFIG_SOURCE = 'config/switchyard.yml';
export const CONFIG_IN_BUNDLE = 'switchyard.yml';
export const CONFIG_PATH_ON_LAMBDA = `/var/task/${CONFIG_IN_BUNDLE}`;

/**
 * The Discord function's policy, as JSON: the `routing.triggerLabel` and `discord` parts of the
 * validated config, written by scripts/config-to-json.ts, so the function needs no YAML parser.
 */
export const DISCORD_POLICY_IN_BUNDLE = 'discord-policy.json';
export const DISCORD_POLICY_PATH_ON_LAMBDA = `/var/task/${DISCORD_POLICY_IN_BUNDLE}`;

/**
 * Defined in every bundle, so code can drop what only unbundled runs need: esbuild removes the
 * dead branch and whatever it alone imports (the Discord function's YAML fallback, for one).
 */
export const BUNDLE_DEFINE = { 'process.env.SWITCHYARD_BUNDLED': 'true' } as const;

/** Options for esbuild's JS API equivalent to the NodejsFunction bundling of the stack. */
export const ESBUILD_OPTIONS = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: BUNDLE_TARGET,
  minify: true,
  sourcemap: true,
  sourcesContent: false,
  mainFields: MAIN_FIELDS,
  banner: { js: ESM_REQUIRE_SHIM },
  define: BUNDLE_DEFINE,
  external: BUNDLE_AWS_SDK ? [] : ['@aws-sdk/*'],
  logLevel: 'error',
} as const;

/**
 * Code splitting, for functions that import part of their code on demand (FunctionSpec.bundle):
 * the entry stays `index.mjs`, and what is only imported dynamically goes to `chunks/`, read from
 * disk when first needed instead of being parsed at every cold start. NodejsFunction can only
 * write one file, so for these functions the afterBundling hook bundles again with these options
 * (scripts/bundle-function.ts) and replaces its output.
 */
export const SPLIT_OPTIONS = {
  splitting: true,
  entryNames: 'index',
  chunkNames: 'chunks/[name]-[hash]',
  outExtension: { '.js': '.mjs' },
} as const;

const quote = (s: string) => `"${s.replace(/(["\\$`])/g, '\\$1')}"`;

/**
 * Shell commands run after esbuild, in the project root: the stack's afterBundling hook, and
 * bench/functions.ts on its own bundles. Every function gets the YAML config; a function may also
 * be re-bundled with code splitting and get the Discord policy as JSON (both checked at bundle
 * time: a config that does not validate fails the build, not the first command).
 */
export function afterBundlingCommands(
  spec: Pick<FunctionSpec, 'entry' | 'bundle'>,
  inputDir: string,
  outputDir: string,
): string[] {
  const tsx = quote(`${inputDir}/node_modules/.bin/tsx`);
  const config = quote(`${inputDir}/${CONFIG_SOURCE}`);
  const commands = [
    `cp ${config} ${quote(`${outputDir}/${CONFIG_IN_BUNDLE}`)}`,
    `cp ${quote(`${inputDir}/${RE2_WASM_SOURCE}`)} ${quote(`${outputDir}/${RE2_WASM_IN_BUNDLE}`)}`,
  ];
  if (spec.bundle?.splitting) {
    commands.push(
      `${tsx} ${quote(`${inputDir}/scripts/bundle-function.ts`)} ${quote(`${inputDir}/${spec.entry}`)} ${quote(outputDir)}`,
      // re2-wasm reads its WebAssembly next to the file it is bundled in, which may be a chunk.
      `mkdir -p ${quote(`${outputDir}/chunks`)}`,
      `cp ${quote(`${inputDir}/${RE2_WASM_SOURCE}`)} ${quote(`${outputDir}/chunks/${RE2_WASM_IN_BUNDLE}`)}`,
    );
  }
  if (spec.bundle?.discordPolicy) {
    commands.push(
      `${tsx} ${quote(`${inputDir}/scripts/config-to-json.ts`)} --discord-policy ${config} ${quote(`${outputDir}/${DISCORD_POLICY_IN_BUNDLE}`)}`,
    );
  }
  return commands;
}
