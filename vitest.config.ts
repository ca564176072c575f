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
          // Vitest's 5 s default is a deadline, not a check: many unit tests run the CLI, scrypt
          // or PostgreSQL as child processes, and on two busy cores those ran past 5 s (and one
          // CLI test with many calls past 30 s) without anything being wrong. A test that hangs
          // still fails, a minute later. Speed is measured by the bench scripts, never here.
          testTimeout: 60_000,
          hookTimeout: 120_000,
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
