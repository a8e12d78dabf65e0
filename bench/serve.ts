import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
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

/** Makes `org` on a bench server (as its admin) and a read + write token of it; returns the token and its Basic header. */
export async function benchOrgToken(
  url: string,
  dataDir: string,
  org: string,
): Promise<{ token: string; auth: string }> {
  const admin = readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
  const call = async (p: string, body: unknown) => {
    const res = await fetch(`${url}${p}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`POST ${p}: ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, string>;
  };
  await call('/api/v1/orgs', { name: org });
  const token = (await call('/api/v1/tokens', { org, scopes: ['read', 'write'] })).token!;
  return { token, auth: `Basic ${Buffer.from(`:${token}`).toString('base64')}` };
}
