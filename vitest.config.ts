import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Vitest's default is one worker less than the cores: one, on a 2-core CI machine. Most unit
    // files wait on child processes (the CLI, PostgreSQL, openssl, promtool) more than they
    // compute, so a second worker shortens the unit tier there. The e2e project runs its files
    // one after another whatever this says (singleFork).
    maxWorkers: 2,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'test/*.test.ts'],
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          globalSetup: ['test/e2e/global-setup.ts'],
          // The lab is one shared set of namespaces and daemons: run e2e files one after another.
          pool: 'forks',
          poolOptions: { forks: { singleFork: true } },
          testTimeout: 300_000,
          hookTimeout: 600_000,
        },
      },
    ],
  },
});
