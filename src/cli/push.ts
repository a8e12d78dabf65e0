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
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CompressStream } from 'zstd-napi';
import { CliError, apiRequest, type ClientOptions } from './client.js';
import { dumpPath } from './nar-dump.js';
import { PushProgress } from './push-progress.js';
import { formatBytes, formatDuration } from '../units.js';
import { inClosureOrder } from '../nix/closure-order.js';
import type { MissingRequest, MissingResponse, PushedPath } from '../wire/push.js';

/** Push output counts in whole KiB under 1 MiB, like the progress lines. */
const KIB = { wholeKiB: true } as const;

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
  /** NAR bytes of the uploaded paths (uncompressed). */
  bytes: number;
  /** NAR body bytes sent on the wire (zstd for large paths), the server's `floe_upload_bytes_total`. */
  sentBytes: number;
  /** From the first question to the server to the last answer. */
  durationMs: number;
}

export interface PushOptions {
  slice?: string;
  jobs: number;
  /** A line for the log; `final` lines stay, others may be redrawn over (a TTY's status line). */
  progress: (line: string, final?: boolean) => void;
  /** At most one byte-progress line this often (default 5 s, for logs). */
  progressIntervalMs?: number;
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
    child.on('close', (code) =>
      code === 0
        ? resolve(out)
        : reject(new CliError(`${cmd} ${args.slice(0, 3).join(' ')} failed: ${err.trim().split('\n').at(-1) ?? code}`)),
    );
  });
}

/** The closure of `targets` with path info, from `nix path-info --recursive --json` (2.8 array or 2.19+ object form). */
export async function closureOf(targets: string[]): Promise<PathInfo[]> {
  const json = JSON.parse(
    await runNixCommand('nix', [
      '--extra-experimental-features',
      'nix-command',
      'path-info',
      '--recursive',
      '--json',
      ...targets,
    ]),
  ) as unknown;
  const entries: Array<[string, Record<string, unknown>]> = Array.isArray(json)
    ? (json as Array<Record<string, unknown>>).map((e) => [String(e.path), e])
    : Object.entries(json as Record<string, Record<string, unknown>>);
  return entries.map(([path, e]) => {
    if (e.valid === false || e.narHash === undefined)
      throw new CliError(`${path} is not valid in the local store: build or fetch it first`);
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

/** Counts the bytes passing through, for progress as a NAR streams. */
function counter(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      onBytes(chunk.length);
      done(null, chunk);
    },
  });
}

async function uploadOne(
  client: ClientOptions,
  endpoint: string,
  info: PathInfo,
  counts: { read: (n: number) => void; sent: (n: number) => void },
): Promise<void> {
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
    headers: {
      Authorization: `Bearer ${client.token ?? ''}`,
      'Content-Type': 'application/x-floe-path',
      'X-Floe-Compression': compress ? 'zstd' : 'none',
    },
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
    if (compress)
      await pipeline(
        dumpPath(info.path),
        counter(counts.read),
        new CompressStream({ compressionLevel: 3 }),
        counter(counts.sent),
        req,
      );
    else
      await pipeline(
        dumpPath(info.path),
        counter((n) => (counts.read(n), counts.sent(n))),
        req,
      );
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

export async function push(client: ClientOptions, targets: string[], opts: PushOptions): Promise<PushResult> {
  if (!client.token)
    throw new CliError('pushing needs a token with the write scope: set FLOE_TOKEN or run `floe login`');
  const began = Date.now();
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
  const result: PushResult = {
    total: closure.length,
    present: closure.length - todo.length - mirrored.size,
    mirrored: mirrored.size,
    refused,
    uploaded: 0,
    failed: [],
    bytes: 0,
    sentBytes: 0,
    durationMs: 0,
  };
  const totalBytes = todo.reduce((n, p) => n + p.narSize, 0);
  opts.progress(
    `${closure.length} paths in the closure, ${result.present} already in the cache, ${mirrored.size} fetched by the server from upstream, ${todo.length} to upload (${formatBytes(totalBytes, KIB)} uncompressed)`,
    true,
  );
  const progress = new PushProgress(totalBytes, todo.length, opts.progressIntervalMs ?? 5000);
  const onRead = (n: number) => {
    const now = Date.now();
    progress.read(n, now);
    if (progress.due(now)) opts.progress(progress.line(now));
  };
  const byPath = new Map(todo.map((p) => [p.path, p]));
  const upload = async (path: string): Promise<boolean> => {
    const info = byPath.get(path)!;
    let sent = 0;
    const counts = { read: onRead, sent: (n: number) => void (sent += n) };
    try {
      await uploadOne(client, `${client.server}${prefix}/paths`, info, counts);
    } catch (err) {
      result.failed.push({ path, error: (err as Error).message });
      opts.progress(`failed ${path}: ${(err as Error).message}`, true);
      return false;
    }
    result.uploaded++;
    result.bytes += info.narSize;
    // Only what the server kept: the bytes of a refused upload are not in its upload counter either.
    result.sentBytes += sent;
    progress.pathsDone++;
    opts.progress(
      `[${result.uploaded}/${todo.length}] uploaded ${path} (${formatBytes(info.narSize, KIB)}); ${progress.line(Date.now())}`,
    );
    return true;
  };
  const dependencyFailed = (path: string) => result.failed.push({ path, error: 'a dependency failed to upload' });
  // Dependencies first: the server makes a path visible only once its references are there.
  const stuck = await inClosureOrder(
    todo.map((p) => [p.path, p.references] as const),
    opts.jobs,
    upload,
    dependencyFailed,
  );
  for (const path of stuck) dependencyFailed(path);
  result.durationMs = Date.now() - began;
  return result;
}

/** The closing line: counts, bytes and how long it took. */
export function pushSummary(r: PushResult): string {
  const secs = r.durationMs / 1000;
  const rate = secs > 0 ? `, ${formatBytes(r.bytes / secs, KIB)}/s` : '';
  return `${r.uploaded} uploaded, ${r.present} already present, ${r.failed.length} failed of ${r.total} paths; ${formatBytes(r.bytes, KIB)} (${formatBytes(r.sentBytes, KIB)} sent) in ${formatDuration(secs)}${rate}`;
}
