#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ (by `npm run build`, run by `npm ci` via `prepare`; a packed
// tarball ships dist/ built). Floe needs Node >= 22: on an older `node` (Debian bookworm has 20) the launcher
// re-runs itself under the Node 24 that the optional `node` dependency installs, if it is there.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';

const MIN_MAJOR = 22;
const major = Number(process.versions.node.split('.')[0]);

if (major < MIN_MAJOR) {
  let bundled;
  try {
    bundled = createRequire(import.meta.url).resolve('node/bin/node');
  } catch {
    console.error(
      `floe: needs Node >= ${MIN_MAJOR} (this is ${process.version}); install Node 24, or reinstall Floe ` +
        'with optional dependencies so the `node` package brings it',
    );
    process.exit(1);
  }
  // Node 20 cannot exec(): run the child and pass signals on, so systemd's SIGTERM still drains the server.
  const child = spawn(bundled, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit' });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else process.exit(code ?? 1);
  });
} else {
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
}
