import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/*.case.ts', 'node_modules/**', 'dist/**'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Real-Nix suites start servers and Nix processes; two cores, so keep files moderately parallel.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
