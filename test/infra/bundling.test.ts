import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Metafile } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  afterBundlingCommands,
  CONFIG_IN_BUNDLE,
  DISCORD_POLICY_IN_BUNDLE,
  DISCORD_POLICY_PATH_ON_LAMBDA,
} from '../../infra/bundling.ts';
import { FUNCTIONS } from '../../infra/functions.ts';
import { REPO_ROOT } from '../../infra/switchyard-stack.ts';
import { policyFromConfig } from '../../lib/discord/policy.ts';
import { synth } from './support.ts';

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;

const run = promisify(execFile);
const discord = FUNCTIONS.find((f) => f.name === 'discord')!;

describe('the Discord function reads its policy as JSON', () => {
  let variables: Map<string, Record<string, unknown>>;
  beforeAll(() => {
    const { stack, template } = synth();
    const resources = template.toJSON().Resources as Resources;
    variables = new Map(
      FUNCTIONS.map((spec) => {
        const id = stack.getLogicalId(stack.functions[spec.name].node.defaultChild as never);
        const env = resources[id]!.Properties.Environment as { Variables: Record<string, unknown> };
        return [spec.name, env.Variables];
      }),
    );
  });

  it('from the file its bundle carries (DISCORD_POLICY_FILE)', () => {
    expect(DISCORD_POLICY_PATH_ON_LAMBDA).toBe(`/var/task/${DISCORD_POLICY_IN_BUNDLE}`);
    expect(variables.get('discord')?.DISCORD_POLICY_FILE).toBe(DISCORD_POLICY_PATH_ON_LAMBDA);
  });

  it('and so does the console (same rights); no other function gets the variable', () => {
    expect(variables.get('console')?.DISCORD_POLICY_FILE).toBe(DISCORD_POLICY_PATH_ON_LAMBDA);
    for (const [name, env] of variables)
      if (name !== 'discord' && name !== 'console') expect(env).not.toHaveProperty('DISCORD_POLICY_FILE');
  });
});

describe('afterBundling commands', () => {
  it('copy the YAML config into every asset', () => {
    for (const spec of FUNCTIONS) {
      expect(afterBundlingCommands(spec, '/in', '/out')[0]).toBe(
        `cp "/in/config/switchyard.yml" "/out/${CONFIG_IN_BUNDLE}"`,
      );
    }
  });

  it('copy RE2’s WebAssembly next to every entry (config patterns run on it)', () => {
    for (const spec of FUNCTIONS) {
      expect(afterBundlingCommands(spec, '/in', '/out')[1]).toBe(
        'cp "/in/node_modules/re2-wasm/build/wasm/re2.wasm" "/out/re2.wasm"',
      );
    }
  });

  it('split the Discord function only, and write the policy for it and the console', () => {
    for (const spec of FUNCTIONS) {
      const commands = afterBundlingCommands(spec, '/in', '/out').join('\n');
      expect(commands.includes('scripts/bundle-function.ts')).toBe(spec.name === 'discord');
      expect(
        commands.includes(`--discord-policy "/in/config/switchyard.yml" "/out/${DISCORD_POLICY_IN_BUNDLE}"`),
      ).toBe(spec.name === 'discord' || spec.name === 'console');
    }
  });

  it('quote paths for the shell', () => {
    const [cp] = afterBundlingCommands(discord, '/in dir/$HOME', '/out"x');
    expect(cp).toBe(`cp "/in dir/\\$HOME/config/switchyard.yml" "/out\\"x/${CONFIG_IN_BUNDLE}"`);
  });
});

describe('the Discord asset, bundled as the stack bundles it', () => {
  const out = mkdtempSync(join(tmpdir(), 'sy-discord-asset-'));
  const metafile = join(out, '..', `${out.split('/').at(-1)}.meta.json`);
  let meta: Metafile;

  beforeAll(async () => {
    // The NodejsFunction's own single-file output is replaced by the split build, so it is not needed here.
    await run('bash', ['-c', afterBundlingCommands(discord, REPO_ROOT, out).join(' && ')], {
      cwd: REPO_ROOT,
      env: { ...process.env, SWITCHYARD_BUNDLE_METAFILE: metafile },
    });
    meta = JSON.parse(readFileSync(metafile, 'utf8')) as Metafile;
  }, 60_000);

  afterAll(() => {
    rmSync(out, { recursive: true, force: true });
    rmSync(metafile, { force: true });
  });

  it('has the policy as JSON, valid, next to the YAML', () => {
    expect(existsSync(join(out, CONFIG_IN_BUNDLE))).toBe(true);
    const document = JSON.parse(readFileSync(join(out, DISCORD_POLICY_IN_BUNDLE), 'utf8')) as unknown;
    expect(policyFromConfig(document).problems).toEqual([]);
  });

  it('carries no YAML parser, and loads no AWS SDK at import', () => {
    expect(Object.keys(meta.inputs).filter((p) => p.includes('node_modules/yaml/'))).toEqual([]);
    const outputs = meta.outputs;
    const entry = Object.keys(outputs).find((p) => p.endsWith('/index.mjs'))!;
    const loaded = new Set<string>();
    const todo = [entry];
    while (todo.length > 0) {
      const p = todo.pop()!;
      if (loaded.has(p)) continue;
      loaded.add(p);
      for (const i of outputs[p]!.imports)
        if (i.kind === 'import-statement' && !i.external) todo.push(i.path);
    }
    const inputs = [...loaded].flatMap((p) => Object.keys(outputs[p]!.inputs));
    expect(inputs.filter((p) => /node_modules\/@(aws-sdk|smithy)\//.test(p))).toEqual([]);
    expect(inputs.some((p) => p.endsWith('lib/discord/verify.ts'))).toBe(true);
    // ...while the store and the engine are in the asset, for the first command.
    expect(Object.keys(meta.inputs).some((p) => p.endsWith('lib/store/dynamodb.ts'))).toBe(true);
  });

  it('loads in a fresh Node process and exports the handler', async () => {
    const { stdout } = await run(
      process.execPath,
      [
        '--enable-source-maps',
        '--input-type=module',
        '-e',
        'process.stdout.write(typeof (await import(process.argv[1])).handler)',
        join(out, 'index.mjs'),
      ],
      { env: { PATH: process.env.PATH, POWERTOOLS_LOG_LEVEL: 'SILENT' } },
    );
    expect(stdout).toBe('function');
  });
});
