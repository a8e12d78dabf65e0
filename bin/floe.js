#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm run build` (run by `npm ci` via `prepare`).
import('../dist/src/cli/main.js').then(
  async ({ main }) => {
    const code = await main(process.argv.slice(2));
    // Success lets long-running commands (floe serve) keep going; a failure ends at once.
    if (code !== 0) process.exit(code);
  },
  (err) => {
    if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/src/cli/main.js')) {
      console.error('floe: the CLI is not built yet. Run `npm ci` (or `npm run build`) in the Floe checkout first.');
      process.exit(1);
    }
    throw err;
  },
);
