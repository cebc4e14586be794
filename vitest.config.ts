// DynamoDB Local runs on Node 20 here; Lambda runs Node 22. The SDK's Node 20 notice is noise in tests.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

import { configDefaults, defineConfig } from 'vitest/config';

/**
 * The files that get a module graph of their own (`isolate`, vitest's default). Every other file
 * shares its worker's modules with the files before it: importing the SDKs, Octokit, CDK and the
 * app once per worker instead of once per file took vitest from 329 s to 197 s on this machine (172 s
 * with every file shared; three runs in shuffled file order passed that way too).
 *
 * A file belongs here when what it does would reach the files after it, or depends on a fresh
 * module: it mocks a module (`vi.mock`), sets `process.env` or fake timers, spies on a shared
 * logger or counts a once-per-process warning. (The Actions callback keeps one JWKS cache per
 * issuer URL per process: test/support/fake-oidc.ts gives each fake issuer a URL of its own, so
 * files that verify OIDC tokens share modules too.) test/architecture/isolation.test.ts checks
 * this list against the files.
 */
export const ISOLATED = [
  'test/agents/bedrock-planner.test.ts',
  'test/agents/http-endpoint.test.ts',
  'test/agents/replan.test.ts',
  'test/common/secret-rotation.test.ts',
  'test/common/secrets.test.ts',
  'test/e2e/budget.test.ts',
  'test/queue/queues.test.ts',
  'test/routing/config-versions.test.ts',
  'test/scripts/runs-cli.test.ts',
];

export default defineConfig({
  test: {
    globalSetup: ['test/support/global-setup.ts'],
    // DynamoDB Local is one process shared by all files; each file makes its own table.
    pool: 'forks',
    // Tests wait on events, never on the clock; these bounds only turn a hang into a failure. They
    // are generous because a loaded 2-core CI machine runs a DynamoDB-heavy test 5-10x slower
    // (under two busy loops, agent tests took 30-42 s and failed at the old 30 s bound).
    testTimeout: 120_000,
    hookTimeout: 120_000,
    env: { POWERTOOLS_LOG_LEVEL: 'SILENT', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    projects: [
      {
        extends: true,
        test: {
          name: 'shared',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...ISOLATED],
          isolate: false,
        },
      },
      { extends: true, test: { name: 'isolated', include: ISOLATED } },
    ],
  },
});
