/**
 * `floe push`: uploads closures with Floe's batch API. Asks the server which paths are missing (in
 * batches), then streams each missing path's NAR (`nix-store --dump`, zstd-compressed on the fly,
 * never whole in memory) with its metadata in one request, several at a time, dependencies first
 * (the server makes a path visible only once its references are there). Re-running after an
 * interruption uploads only what is still missing.
 */
import { spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { pipeline } from 'node:stream/promises';
import { CompressStream } from 'zstd-napi';
import { CliError, apiRequest, type ClientOptions } from './client.js';
import { dumpPath } from './nar-dump.js';
import { inClosureOrder } from '../nix/closure-order.js';
import type { MissingRequest, MissingResponse, PushedPath } from '../wire/push.js';

export interface PathInfo {
  path: string;
  narHash: string;
  narSize: number;
  references: string[];
  deriver?: string;
  signatures: string[];
  ca?: string;
}

export interface PushResult {
  total: number;
  present: number;
  /** Fetched by the server itself from a trusted upstream (not uploaded). */
  mirrored: number;
  /** Upstream copies the server refused (failed verification); uploaded from here instead. */
  refused: Array<{ path: string; reason: string }>;
  uploaded: number;
  failed: Array<{ path: string; error: string }>;
  bytes: number;
}

/** Runs a Nix command and returns its stdout; a failure names the command and its last error line. */
export function runNixCommand(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', (e) => reject(new CliError(`cannot run ${cmd}: ${e.message} (is Nix installed?)`)));
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new CliError(`${cmd} ${args.slice(0, 3).join(' ')} failed: ${err.trim().split('\n').at(-1) ?? code}`))));
  });
}

/** The closure of `targets` with path info, from `nix path-info --recursive --json` (2.8 array or 2.19+ object form). */
export async function closureOf(targets: string[]): Promise<PathInfo[]> {
  const json = JSON.parse(await runNixCommand('nix', ['--extra-experimental-features', 'nix-command', 'path-info', '--recursive', '--json', ...targets])) as unknown;
  const entries: Array<[string, Record<string, unknown>]> = Array.isArray(json)
    ? (json as Array<Record<string, unknown>>).map((e) => [String(e.path), e])
    : Object.entries(json as Record<string, Record<string, unknown>>);
  return entries.map(([path, e]) => {
    if (e.valid === false || e.narHash === undefined) throw new CliError(`${path} is not valid in the local store: build or fetch it first`);
    return {
      path,
      narHash: String(e.narHash),
      narSize: Number(e.narSize),
      references: (e.references as string[]) ?? [],
      ...(e.deriver ? { deriver: String(e.deriver) } : {}),
      signatures: (e.signatures as string[]) ?? [],
      ...(e.ca ? { ca: String(e.ca) } : {}),
    };
  });
}

function fmtBytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`;
}

async function uploadOne(client: ClientOptions, endpoint: string, info: PathInfo): Promise<void> {
  const url = new URL(endpoint);
  const meta: PushedPath = {
    storePath: info.path,
    narHash: info.narHash,
    narSize: info.narSize,
    references: info.references,
    deriver: info.deriver ?? null,
    ca: info.ca ?? null,
    sigs: info.signatures,
  };
  // Small NARs go as they are (the server compresses for storage anyway); large ones as zstd.
  const compress = info.narSize >= 1 << 20;
  const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${client.token ?? ''}`, 'Content-Type': 'application/x-floe-path', 'X-Floe-Compression': compress ? 'zstd' : 'none' },
  });
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
  req.write(JSON.stringify(meta) + '\n');
  try {
    if (compress) await pipeline(dumpPath(info.path), new CompressStream({ compressionLevel: 3 }), req);
    else await pipeline(dumpPath(info.path), req);
  } catch (err) {
    req.destroy();
    const r = await response.catch(() => undefined);
    throw new CliError(r ? `${r.status}: ${r.body.trim()}` : `upload interrupted: ${(err as Error).message}`);
  }
  const r = await response;
  if (r.status !== 200 && r.status !== 201) {
    let message = r.body.trim();
    try {
      message = (JSON.parse(r.body) as { message?: string }).message ?? message;
    } catch {
      /* plain text */
    }
    throw new CliError(`HTTP ${r.status}: ${message}`);
  }
}

export async function push(client: ClientOptions, targets: string[], opts: { slice?: string; jobs: number; progress: (line: string, final?: boolean) => void }): Promise<PushResult> {
  if (!client.token) throw new CliError('pushing needs a token with the write scope: set FLOE_TOKEN or run `floe login`');
  const closure = await closureOf(targets);
  const prefix = opts.slice ? `/api/v1/cache/${opts.slice}` : '/api/v1/cache';
  const missing = new Set<string>();
  const mirrored = new Set<string>();
  const refused: PushResult['refused'] = [];
  for (let i = 0; i < closure.length; i += 1000) {
    const ask: MissingRequest = { paths: closure.slice(i, i + 1000).map((p) => p.path) };
    const res = await apiRequest<MissingResponse>(client, 'POST', `${prefix}/missing`, ask);
    for (const m of res.missing) missing.add(m);
    for (const m of res.mirrored ?? []) mirrored.add(m);
    for (const r of res.refused ?? []) {
      refused.push(r);
      opts.progress(`the server refused the upstream copy of ${r.path}: ${r.reason}; uploading it from here`, true);
    }
  }
  const todo = closure.filter((p) => missing.has(p.path));
  const result: PushResult = { total: closure.length, present: closure.length - todo.length - mirrored.size, mirrored: mirrored.size, refused, uploaded: 0, failed: [], bytes: 0 };
  const totalBytes = todo.reduce((n, p) => n + p.narSize, 0);
  opts.progress(
    `${closure.length} paths in the closure, ${result.present} already in the cache, ${mirrored.size} fetched by the server from upstream, ${todo.length} to upload (${fmtBytes(totalBytes)} uncompressed)`,
    true,
  );
  const started = Date.now();
  const byPath = new Map(todo.map((p) => [p.path, p]));
  const upload = async (path: string): Promise<boolean> => {
    const info = byPath.get(path)!;
    try {
      await uploadOne(client, `${client.server}${prefix}/paths`, info);
    } catch (err) {
      result.failed.push({ path, error: (err as Error).message });
      opts.progress(`failed ${path}: ${(err as Error).message}`, true);
      return false;
    }
    result.uploaded++;
    result.bytes += info.narSize;
    const secs = (Date.now() - started) / 1000;
    const rate = result.bytes / Math.max(secs, 0.001);
    const eta = rate > 0 ? Math.round((totalBytes - result.bytes) / rate) : 0;
    opts.progress(`[${result.uploaded}/${todo.length}] ${fmtBytes(result.bytes)} of ${fmtBytes(totalBytes)}, ${fmtBytes(rate)}/s, ETA ${eta}s: uploaded ${path}`);
    return true;
  };
  const dependencyFailed = (path: string) => result.failed.push({ path, error: 'a dependency failed to upload' });
  // Dependencies first: the server makes a path visible only once its references are there.
  const stuck = await inClosureOrder(todo.map((p) => [p.path, p.references] as const), opts.jobs, upload, dependencyFailed);
  for (const path of stuck) dependencyFailed(path);
  return result;
}
