/** Runs the real `floe` binary (bin/floe.js → dist/) as a child process, as users and scripts do. */
import { spawn } from 'node:child_process';
import { FLOE_BIN } from './server.js';

export interface FloeRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface FloeRunOptions {
  /** Added to (and overriding) the test process's environment; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  /** Written to stdin, which is then closed (stdin is closed at once without it). */
  input?: string;
  cwd?: string;
  /** Run as this user (the test runs as root): a machine's unprivileged user. */
  uid?: number;
  gid?: number;
}

export function runFloe(args: string[], opts: FloeRunOptions = {}): Promise<FloeRun> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...opts.env })) if (v !== undefined) env[k] = v;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FLOE_BIN, ...args], {
      env,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid ?? opts.uid } : {}),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}
