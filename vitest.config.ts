import { readFileSync } from 'node:fs';
import { defineConfig, type Plugin } from 'vitest/config';

/** Loads `.lua` files as text, as esbuild's text loader does in the bundles. */
const luaAsText = (): Plugin => ({
  name: 'lua-as-text',
  enforce: 'pre',
  load(id) {
    if (!id.endsWith('.lua')) return null;
    return `export default ${JSON.stringify(readFileSync(id, 'utf8'))};`;
  },
});

export default defineConfig({
  plugins: [luaAsText()],
  test: {
    // Two cores: keep parallelism modest; e2e suites start their own servers.
    maxWorkers: 2,
    // See scripts/local-env.ts (nodeSupportNotice): tests still run on Node 20.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    testTimeout: 20_000,
    hookTimeout: 120_000,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { extends: true, test: { name: 'integration', include: ['test/integration/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 60_000,
        },
      },
      {
        // The packaged zips under Node 22 and 24 (test/sandbox/zips.test.ts):
        // `osls package`, then every function run alone, as Lambda runs it.
        extends: true,
        test: {
          name: 'sandbox',
          include: ['test/sandbox/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 60_000,
        },
      },
      // The model-based test (issue 21): `npm test` runs the short version
      // (test/model/); the long one is its own project, `npm run test:model`,
      // which `npm test` leaves out (nothing in `npm test` is skipped).
      {
        extends: true,
        test: {
          name: 'model',
          include: ['test/model/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 300_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'model-long',
          include: ['test/model-long/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 3_600_000,
        },
      },
      // The fault-injection suite (issue 7): real serverless-offline and Redis
      // with faults injected; `npm run test:faults` runs it alone.
      {
        extends: true,
        test: {
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 180_000,
        },
      },
    ],
  },
});
