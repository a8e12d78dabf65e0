import { spawn } from 'node:child_process';
import { FLOE_BIN, freePort } from '../test/helpers/server.js';

/** Starts `floe serve` for a benchmark (quiet logs) and waits until it answers. */
export async function serveForBench(
  dataDir: string,
  env: Record<string, string> = {},
): Promise<{ url: string; pid: number; stop(): void }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [FLOE_BIN, 'serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`], {
    stdio: 'ignore',
    env: { ...process.env, FLOE_LOG_LEVEL: 'warn', FLOE_WORKERS: '1', ...env },
  });
  for (let i = 0; i < 400; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) return { url, pid: child.pid!, stop: () => child.kill('SIGKILL') };
    } catch {
      /* starting */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`floe serve did not start for the benchmark (data dir ${dataDir})`);
}
