/** Starts a real `floe serve` process on 127.0.0.1 with a throwaway data dir, and talks to it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout root, whether this file runs from test/ (vitest) or dist/test/ (the benchmark). */
export const REPO_ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) || path.basename(dir) === 'dist') dir = path.dirname(dir);
  return dir;
})();
export const FLOE_BIN = path.join(REPO_ROOT, 'bin/floe.js');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface TestServer {
  url: string;
  port: number;
  dataDir: string;
  adminToken: string;
  logs: () => string;
  process: ChildProcess;
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts again on the same port and data dir (after stop or kill). */
  restart(): Promise<void>;
  cleanup(): Promise<void>;
}

/** `command`: what runs `floe` (default: this checkout's bin/floe.js on this Node), e.g. an installed `floe`. */
export async function startFloe(
  opts: { dataDir?: string; env?: Record<string, string>; command?: string[] } = {},
): Promise<TestServer> {
  const dataDir = opts.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'floe-test-')));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let output = '';
  let child!: ChildProcess;

  const launch = async () => {
    const [cmd, ...args] = opts.command ?? [process.execPath, FLOE_BIN];
    child = spawn(cmd!, [...args, 'serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`], {
      // One process unless a test asks for workers (the default is one per core).
      env: { ...process.env, FLOE_LOG_LEVEL: 'debug', FLOE_WORKERS: '1', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const started = output.length;
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`floe serve exited with ${child.exitCode}:\n${output}`);
      try {
        // The first worker answers before the others serve: the banner comes once all of them do.
        const res = await fetch(`${url}/healthz`);
        if (res.ok && output.indexOf('floe: serving at', started) >= 0) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`floe serve did not become healthy:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await launch();

  const server: TestServer = {
    url,
    port,
    dataDir,
    adminToken: (await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim(),
    logs: () => output,
    get process() {
      return child;
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      await exited;
    },
    async restart() {
      await server.stop();
      await launch();
    },
    async cleanup() {
      await server.stop('SIGKILL');
      if (!opts.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
  return server;
}

export async function api<T = unknown>(
  server: { url: string },
  token: string | undefined,
  method: string,
  p: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${server.url}${p}`, {
    method,
    headers: {
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // plain text
  }
  return { status: res.status, body: parsed as T };
}

export async function createOrg(server: TestServer, name: string): Promise<void> {
  const r = await api(server, server.adminToken, 'POST', '/api/v1/orgs', { name });
  if (r.status !== 201) throw new Error(`create org ${name}: ${r.status} ${JSON.stringify(r.body)}`);
}

export async function createToken(
  server: TestServer,
  org: string,
  scopes: string[],
  extra: { slices?: string[]; ttl?: string } = {},
): Promise<{ token: string; id: string }> {
  const r = await api<{ token: string; id: string }>(server, server.adminToken, 'POST', '/api/v1/tokens', {
    org,
    scopes,
    ...extra,
  });
  if (r.status !== 201) throw new Error(`create token: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export function basicAuth(token: string): string {
  return `Basic ${Buffer.from(`:${token}`).toString('base64')}`;
}
