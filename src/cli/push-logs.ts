/**
 * `floe push --logs`: after the closure, uploads the local build log of every derivation that
 * produced a path of it (`nix-store --read-log`), as `nix store copy-log` would, to the same
 * slice. Paths fetched rather than built have no local log: they are skipped, not failures. The
 * server keeps a log only next to an output of its derivation, so this runs after the paths.
 */
import { spawn } from 'node:child_process';
import { CliError, type ClientOptions } from './client.js';
import type { PathInfo } from './push.js';

/** The server's limit (cache/logs.ts); a larger local log is reported, never sent. */
const MAX_LOG_BYTES = 64 << 20;

export interface LogPushResult {
  uploaded: number;
  /** Derivations without a local log (fetched, or built with keep-build-log off). */
  absent: number;
  failed: Array<{ drv: string; error: string }>;
}

/** The local log text of `drv`, or undefined when Nix has none. */
function readLocalLog(drv: string): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const child = spawn('nix-store', ['--read-log', drv], { stdio: ['ignore', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    child.stdout.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_LOG_BYTES) {
        tooLarge = true;
        child.kill();
      } else chunks.push(d);
    });
    child.on('error', (e) => reject(new CliError(`cannot run nix-store: ${e.message} (is Nix installed?)`)));
    child.on('close', (code) => {
      if (tooLarge) reject(new CliError(`the build log is larger than ${MAX_LOG_BYTES} bytes`));
      else resolve(code === 0 ? Buffer.concat(chunks) : undefined);
    });
  });
}

/** Uploads the logs of the derivations behind `closure` to `/cache` or `/cache/<org>/<slice>`. */
export async function pushLogs(
  client: ClientOptions,
  closure: readonly PathInfo[],
  opts: { slice?: string; progress: (line: string) => void },
): Promise<LogPushResult> {
  const isDrv = (d: string | undefined): d is string => typeof d === 'string' && d.endsWith('.drv');
  const derivers = [...new Set(closure.map((p) => p.deriver).filter(isDrv))];
  const result: LogPushResult = { uploaded: 0, absent: 0, failed: [] };
  const base = `${client.server}/cache${opts.slice ? `/${opts.slice}` : ''}/log/`;
  for (const drv of derivers) {
    try {
      const text = await readLocalLog(drv);
      if (text === undefined) {
        result.absent++;
        continue;
      }
      const res = await fetch(base + drv.slice(drv.lastIndexOf('/') + 1), {
        method: 'PUT',
        headers: { Authorization: `Bearer ${client.token ?? ''}`, 'Content-Type': 'text/plain; charset=utf-8' },
        body: new Uint8Array(text),
      });
      const body = (await res.text()).trim();
      if (res.status !== 200 && res.status !== 201) throw new CliError(`HTTP ${res.status}: ${body}`);
      result.uploaded++;
    } catch (err) {
      result.failed.push({ drv, error: (err as Error).message });
      opts.progress(`build log of ${drv} not uploaded: ${(err as Error).message}`);
    }
  }
  const { uploaded, absent, failed } = result;
  opts.progress(`build logs: ${uploaded} uploaded, ${absent} not kept locally, ${failed.length} failed`);
  return result;
}
