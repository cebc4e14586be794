// DynamoDB Local runs on Node 20 here; Lambda runs Node 22. The SDK's Node 20 notice is noise in tests.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // DynamoDB Local is one process shared by all files; each file makes its own table.
    pool: 'forks',
    // Tests wait on events, never on the clock; these bounds only turn a hang into a failure. They
    // are generous because a loaded 2-core CI machine runs a DynamoDB-heavy test 5-10x slower
    // (under two busy loops, agent tests took 30-42 s and failed at the old 30 s bound).
    testTimeout: 120_000,
    hookTimeout: 120_000,
    env: { POWERTOOLS_LOG_LEVEL: 'SILENT', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  },
});
