import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../../infra/build.ts';
import { FUNCTIONS } from '../../infra/functions.ts';
import { REPO_ROOT, type SwitchyardStack } from '../../infra/switchyard-stack.ts';

/** A Discord-shaped public key and application id: configuration, not secrets. */
export const TEST_CONTEXT = {
  discordPublicKey: 'a'.repeat(64),
  discordApplicationId: '123456789012345678',
  alarmEmail: 'ops@example.com',
};

/**
 * The stack's function entries must exist even when bundling is skipped. Until every handler in
 * functions/ is written, use stand-ins in a temporary project root (never in functions/ itself).
 */
let standIns: string | undefined;

function projectRoot(): string | undefined {
  if (FUNCTIONS.every((spec) => existsSync(join(REPO_ROOT, spec.entry)))) return undefined;
  if (standIns !== undefined) return standIns;
  const root = mkdtempSync(join(tmpdir(), 'switchyard-infra-'));
  for (const spec of FUNCTIONS) {
    const file = join(root, spec.entry);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, 'export const handler = async () => ({ statusCode: 200 });\n');
  }
  writeFileSync(join(root, 'package-lock.json'), '{}\n');
  standIns = root;
  return root;
}

export interface Synthesized {
  app: App;
  stack: SwitchyardStack;
  template: Template;
}

/** Build the app exactly as infra/app.ts does, with bundling skipped (no esbuild, no Docker). */
export function build(context: Record<string, string> = {}): Omit<Synthesized, 'template'> {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [], ...TEST_CONTEXT, ...context } });
  const root = projectRoot();
  const stack = buildApp(app, root === undefined ? {} : { projectRoot: root });
  return { app, stack };
}

/** Build and synthesize once; synthesis also runs the cdk-nag plugin, so it throws on a finding. */
export function synth(context: Record<string, string> = {}): Synthesized {
  const { app, stack } = build(context);
  return { app, stack, template: Template.fromStack(stack) };
}
