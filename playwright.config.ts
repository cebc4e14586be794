import { defineConfig } from '@playwright/test';

// The local stack's logs are noise next to the test list (as in vitest.config.ts).
process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/**
 * Browser tests of the run console (test/browser/*.spec.ts; vitest runs test/**\/*.test.ts only).
 * Playwright's own browser download is unreachable here, so they drive Debian's Chromium
 * (`apt-get install chromium`, done by .ci/run when missing); CHROMIUM_PATH overrides the path.
 */
export default defineConfig({
  testDir: 'test/browser',
  testMatch: '**/*.spec.ts',
  // One local stack per file, started in beforeAll: the tests of a file share it, in order.
  workers: 1,
  fullyParallel: false,
  timeout: 90_000,
  expect: { timeout: 20_000 },
  reporter: [['list']],
  outputDir: 'test-results',
  use: {
    headless: true,
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      // Root in a container has no user namespace for Chromium's sandbox.
      args: ['--no-sandbox'],
    },
  },
});
