import { defineConfig } from 'vitest/config'

// Integration tests spawn real worker threads and child processes; they load
// the compiled dist/ (built by `pretest`), because Node 20 cannot run .ts in a
// worker. Unit tests import src/ directly.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
})
