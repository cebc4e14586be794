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
  "import { createRequire as __switchyardCreateRequire } from 'node:module'; const require = __switchyardCreateRequire(import.meta.url);";

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
  external: BUNDLE_AWS_SDK ? [] : ['@aws-sdk/*'],
  logLevel: 'error',
} as const;
