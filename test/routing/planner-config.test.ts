import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { overlayConfig, parseConfig, parseConfigSource, readSource } from '../../lib/routing/config.ts';
import { ConfigError } from '../../lib/routing/errors.ts';
import { estimateCostUsd, priceOf } from '../../lib/routing/planner-config.ts';

const run = promisify(execFile);

function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.file}:${i.line}: ${i.message}`);
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('config planner', () => {
  it('defaults to the deterministic planner, 12 tasks and 4096 output tokens', () => {
    expect(parseConfig('{}').planner).toEqual({
      provider: 'deterministic',
      maxTasks: 12,
      maxOutputTokens: 4096,
      prices: {},
    });
  });

  it('accepts a Bedrock model or inference profile with its region', () => {
    const p = parseConfig(
      'planner:\n  provider: bedrock\n  model: us.anthropic.claude-3-5-haiku-20241022-v1:0\n  maxTasks: 50\n  region: eu-central-1\n',
    ).planner;
    expect(p).toMatchObject({ provider: 'bedrock', maxTasks: 50, region: 'eu-central-1' });
  });

  it.each([
    ['planner:\n  maxTasks: 51\n', 'p.yml:2: Too big: expected number to be <=50'],
    ['planner:\n  provider: bedrock\n', 'p.yml:2: planner.provider bedrock needs planner.model'],
    [
      'planner:\n  provider: openai\n  model: amazon.nova-lite-v1:0\n',
      'p.yml:2: Invalid option: expected one of "deterministic"|"bedrock"',
    ],
    ['planner:\n  model: amazon.nova-lite-v1:0\n  region: mars\n', 'p.yml:3: not an AWS region'],
    ['planner:\n  temperature: 1\n', 'p.yml:2: unknown key temperature'],
  ])('names the line of a bad planner setting: %j', (yaml, message) => {
    expect(issuesOf(() => parseConfig(yaml, 'p.yml'))).toEqual([expect.stringContaining(message)]);
  });

  it('is central only: a repository overlay may not set it', () => {
    const central = parseConfigSource('{}', 'central.yml').source;
    const repo = readSource('planner:\n  provider: bedrock\n  model: amazon.nova-pro-v1:0\n', 'repo.yml');
    expect(issuesOf(() => overlayConfig(central, repo))).toEqual([
      'repo.yml:1: planner can only be set in the central config',
    ]);
  });

  it('npm run config:check refuses a bad planner section with file:line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sy-planner-'));
    const file = join(dir, 'switchyard.yml');
    await writeFile(file, 'version: 1\nplanner:\n  provider: bedrock\n  maxTasks: 0\n');
    const res = await run('npx', ['tsx', 'scripts/config-check.ts', file], { encoding: 'utf8' }).then(
      (o) => ({ code: 0, stderr: o.stderr }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`${file}:4: planner.maxTasks`);
    expect(res.stderr).toContain('planner.provider bedrock needs planner.model');
  });

  it('prices Anthropic and Nova models, inference profiles included, and lets config add or override', () => {
    expect(priceOf('anthropic.claude-3-5-haiku-20241022-v1:0')).toEqual({
      inputPerMTok: 0.8,
      outputPerMTok: 4,
    });
    expect(priceOf('eu.amazon.nova-lite-v1:0')).toEqual({ inputPerMTok: 0.06, outputPerMTok: 0.24 });
    expect(priceOf('us.anthropic.claude-sonnet-4-20250514-v1:0')).toEqual({
      inputPerMTok: 3,
      outputPerMTok: 15,
    });
    expect(priceOf('meta.llama3-70b-instruct-v1:0')).toBeUndefined();
    const extra = { 'meta.llama3-70b': { inputPerMTok: 2.65, outputPerMTok: 3.5 } };
    expect(priceOf('meta.llama3-70b-instruct-v1:0', extra)).toEqual(extra['meta.llama3-70b']);
    expect(estimateCostUsd('amazon.nova-pro-v1:0', { inputTokens: 1_000_000, outputTokens: 500_000 })).toBe(
      2.4,
    );
    expect(
      estimateCostUsd('anthropic.claude-3-5-haiku-20241022-v1:0', { inputTokens: 1843, outputTokens: 212 }),
    ).toBe(0.002322);
    expect(estimateCostUsd('unknown.model-v1', { inputTokens: 1, outputTokens: 1 })).toBeUndefined();
  });
});
