import { rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, type Metafile } from 'esbuild';
import { ESBUILD_OPTIONS, SPLIT_OPTIONS } from '../infra/bundling.ts';

/**
 * Bundle a function with code splitting, replacing the single file NodejsFunction wrote:
 * `index.mjs` holds what the entry imports statically, `chunks/` what it imports on demand.
 * Run by the stack's afterBundling hook for functions with `bundle.splitting` (infra/functions.ts).
 *
 *   tsx scripts/bundle-function.ts <entry> <outdir>
 *
 * With SWITCHYARD_BUNDLE_METAFILE=<file>, esbuild's metafile is written there too (the bench
 * reads which modules load at cold start from it); never into the asset.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));

export async function bundleSplit(entry: string, outdir: string): Promise<Metafile> {
  for (const old of ['index.mjs', 'index.mjs.map', 'chunks']) {
    rmSync(join(outdir, old), { recursive: true, force: true });
  }
  const result = await build({
    ...ESBUILD_OPTIONS,
    ...SPLIT_OPTIONS,
    mainFields: [...ESBUILD_OPTIONS.mainFields],
    external: [...ESBUILD_OPTIONS.external],
    entryPoints: { index: entry },
    outdir,
    absWorkingDir: ROOT,
    metafile: true,
  });
  return result.metafile;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [entry, outdir] = process.argv.slice(2);
  if (!entry || !outdir) {
    console.error('usage: tsx scripts/bundle-function.ts <entry> <outdir>');
    process.exit(2);
  }
  const metafile = await bundleSplit(resolve(entry), resolve(outdir));
  const metafileOut = process.env.SWITCHYARD_BUNDLE_METAFILE;
  if (metafileOut) writeFileSync(metafileOut, JSON.stringify(metafile));
}
