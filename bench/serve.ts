import { type ChildProcess, spawn } from 'node:child_process';
import { FLOE_BIN, freePort } from '../test/helpers/server.js';

/**
 * Starts `floe serve` for a benchmark (quiet logs unless `env` says otherwise) and waits until it
 * answers. `bin` and `nodeFlags` let a run compare other builds or profile one.
 */
export async function serveForBench(
  dataDir: string,
  env: Record<string, string> = {},
  opts: { bin?: string; nodeFlags?: readonly string[] } = {},
): Promise<{ url: string; pid: number; child: ChildProcess; stop(): void }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const bin = opts.bin ?? FLOE_BIN;
  const args = [...(opts.nodeFlags ?? []), bin, 'serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`];
  const child = spawn(process.execPath, args, {
    stdio: 'ignore',
    env: { ...process.env, FLOE_LOG_LEVEL: 'warn', FLOE_WORKERS: '1', ...env },
  });
  for (let i = 0; i < 400; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) return { url, pid: child.pid!, child, stop: () => child.kill('SIGKILL') };
    } catch {
      /* starting */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`floe serve (${bin}) did not start for the benchmark (data dir ${dataDir})`);
}
