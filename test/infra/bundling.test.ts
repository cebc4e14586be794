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
import { createTestStore, testEndpoint } from '../support/dynamo.ts';
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

  it('split the Discord function, the worker and the sweeper, and write the policy for Discord and the console', () => {
    const split = ['discord', 'worker', 'sweeper'];
    for (const spec of FUNCTIONS) {
      const commands = afterBundlingCommands(spec, '/in', '/out').join('\n');
      expect(commands.includes('scripts/bundle-function.ts')).toBe(split.includes(spec.name));
      // RE2's WebAssembly is read next to the chunk re2-wasm lands in.
      expect(commands.includes('"/out/chunks/re2.wasm"')).toBe(split.includes(spec.name));
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

describe('the worker asset, bundled as the stack bundles it', () => {
  const worker = FUNCTIONS.find((f) => f.name === 'worker')!;
  const out = mkdtempSync(join(tmpdir(), 'sy-worker-asset-'));
  const metafile = join(out, '..', `${out.split('/').at(-1)}.meta.json`);
  let meta: Metafile;

  beforeAll(async () => {
    await run('bash', ['-c', afterBundlingCommands(worker, REPO_ROOT, out).join(' && ')], {
      cwd: REPO_ROOT,
      env: { ...process.env, SWITCHYARD_BUNDLE_METAFILE: metafile },
    });
    meta = JSON.parse(readFileSync(metafile, 'utf8')) as Metafile;
  }, 60_000);

  afterAll(() => {
    rmSync(out, { recursive: true, force: true });
    rmSync(metafile, { force: true });
  });

  it('parses only the handler at cold start: no config parser, engine or store before the first message', () => {
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
    expect(inputs.some((p) => p.endsWith('functions/worker.ts'))).toBe(true);
    for (const heavy of [
      /node_modules\/(yaml|zod|re2-wasm)\//,
      /lib\/engine\/engine\.ts$/,
      /lib\/store\/dynamodb\.ts$/,
    ])
      expect(inputs.filter((p) => heavy.test(p))).toEqual([]);
  });

  it('handles a first message in a fresh Node process: the app, its config and RE2 load from the chunks', async () => {
    const store = await createTestStore();
    const event = {
      Records: [
        {
          messageId: 'm1',
          body: JSON.stringify({ kind: 'step', runId: 'rbundledworker1', seq: 1 }),
          attributes: { ApproximateReceiveCount: '1' },
          eventSource: 'aws:sqs',
        },
      ],
    };
    const { stdout } = await run(
      process.execPath,
      [
        '--enable-source-maps',
        '--input-type=module',
        '-e',
        [
          'const { handler } = await import(process.argv[1]);',
          'const out = await handler(JSON.parse(process.argv[2]), { functionName: "worker", awsRequestId: "r1" });',
          'process.stdout.write(JSON.stringify(out));',
        ].join('\n'),
        join(out, 'index.mjs'),
        JSON.stringify(event),
      ],
      {
        env: {
          PATH: process.env.PATH,
          POWERTOOLS_LOG_LEVEL: 'SILENT',
          // DynamoDB Local keeps a database per access key and region: the test store's.
          AWS_REGION: process.env.AWS_REGION ?? 'local',
          AWS_ACCESS_KEY_ID: 'local',
          AWS_SECRET_ACCESS_KEY: 'local',
          AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
          DYNAMODB_ENDPOINT: testEndpoint(),
          TABLE_NAME: store.tableName,
          QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/switchyard-test',
          SWITCHYARD_CONFIG: join(out, CONFIG_IN_BUNDLE),
        },
      },
    );
    // A step of a run that does not exist is a no-op: the message is consumed, not failed.
    expect(JSON.parse(stdout)).toEqual({ batchItemFailures: [] });
  }, 60_000);
});
