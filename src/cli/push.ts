/**
 * `floe push`: uploads closures with Floe's batch API. Asks the server which paths are missing (in
 * batches, dependencies first) and starts uploading as soon as the first answer is in, while later
 * batches are still being asked about. Each missing path's NAR streams from the store (never whole
 * in memory) with its metadata in one request, zstd-compressed on libzstd's own threads when it is
 * large and compresses; many small paths at a time, fewer large ones, each only once its references
 * are in the cache (the server makes a path visible only then), over kept-alive connections.
 * Re-running after an interruption uploads only what is still missing.
 * Over 350 lines: the query, the schedule's driver and the upload stream share one push's state
 * (the PURE scheduling is push-schedule.ts, progress push-progress.ts).
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { availableParallelism } from 'node:os';
import { spawn } from 'node:child_process';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CompressStream, compress as zstdCompress } from 'zstd-napi';
import { CliError, apiRequest, type ClientOptions } from './client.js';
import { dumpPath } from './nar-dump.js';
import { PushProgress } from './push-progress.js';
import { formatBytes, formatDuration } from '../units.js';
import { PushSchedule, dependencyOrder } from './push-schedule.js';
import {
  BATCH_MAX_NAR_BYTES,
  type MissingRequest,
  type MissingResponse,
  type PushedBatchResult,
  type PushedPath,
} from '../wire/push.js';

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
  /** `status`: the server's answer when it refused the upload (401: the token expired or was revoked). */
  failed: Array<{ path: string; error: string; status?: number }>;
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

/** A small NAR in one buffer; a store path larger than its recorded NarSize is a local problem, named. */
async function readWhole(nar: Readable, info: PathInfo): Promise<Buffer> {
  const parts: Buffer[] = [];
  let length = 0;
  for await (const chunk of nar as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > info.narSize) {
      nar.destroy();
      throw new CliError(
        `${info.path} is larger than the NarSize the local store records (${info.narSize} bytes): run \`nix-store --verify --check-contents\``,
      );
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts, length);
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

/** Below this NAR size a path goes uncompressed (the server compresses for storage anyway). */
const COMPRESS_FROM = 1 << 20;
/** How much of a large NAR is compressed first to see whether compressing it pays. */
const SAMPLE_BYTES = 1 << 20;
/**
 * Paths below this size are small for the scheduler: many of them may upload at once. Small paths
 * cost the server a request and a commit each, not bandwidth.
 */
const SMALL_PATH_BYTES = 256 << 10;
/** Small uploads in flight per `--jobs`. */
const SMALL_PER_JOB = 4;
/**
 * Paths with a NAR up to BATCH_MAX_NAR_BYTES go BATCH_PATHS to a request (`POST …/paths/batch`),
 * BATCHES_PER_JOB requests per `--jobs` in flight: the server verifies and commits each as it would
 * a single upload, minus a request, its authentication and its response each.
 */
const BATCH_PATHS = 32;
const BATCHES_PER_JOB = 1;
/** NAR bytes after which a batch goes (the server takes BATCH_MAX_BODY_BYTES, path info lines included). */
const BATCH_BODY_BYTES = 1 << 20;
/** Query batches: a small first one so uploads start at once, then large ones. */
const FIRST_QUERY_BATCH = 100;
const QUERY_BATCH = 1000;

/**
 * The NAR stream of `info`, and how it goes on the wire. Large NARs are sampled: random or already
 * compressed content (zstd would win under 5 % of it) goes as it is, sparing both ends the work.
 */
async function narBody(info: PathInfo): Promise<{ nar: Readable; zstd: boolean }> {
  const nar = dumpPath(info.path);
  if (info.narSize < COMPRESS_FROM) return { nar, zstd: false };
  const it = nar[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const head: Buffer[] = [];
  let headBytes = 0;
  while (headBytes < SAMPLE_BYTES) {
    const r = await it.next();
    if (r.done) break;
    head.push(r.value);
    headBytes += r.value.length;
  }
  const sample = Buffer.concat(head);
  const zstd = zstdCompress(sample, { compressionLevel: 1 }).length < sample.length * 0.95;
  async function* rest(): AsyncGenerator<Buffer> {
    yield* head;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  return { nar: Readable.from(rest()), zstd };
}

/**
 * zstd on libzstd's worker threads (the event loop only hands buffers over and keeps the other
 * uploads moving); a large NAR gets several, so one big path uses every core.
 */
function zstdStream(narSize: number): CompressStream {
  const nbWorkers = narSize >= 8 << 20 ? Math.min(4, Math.max(1, availableParallelism())) : 1;
  return new CompressStream({ compressionLevel: 3, nbWorkers });
}

interface Connections {
  http: HttpAgent;
  https: HttpsAgent;
}

/** A request to the server on the push's kept-alive connections, with its token. */
function openRequest(
  client: ClientOptions,
  endpoint: string,
  agents: Connections,
  method: 'PUT' | 'POST',
  headers: Record<string, string>,
) {
  const url = new URL(endpoint);
  const https = url.protocol === 'https:';
  return (https ? httpsRequest : httpRequest)(url, {
    method,
    agent: https ? agents.https : agents.http,
    headers: { Authorization: `Bearer ${client.token ?? ''}`, ...headers },
  });
}

/** The metadata line of an upload, as the server's `PUT …/paths` and its batch form read it. */
function pushedPathOf(info: PathInfo): PushedPath {
  return {
    storePath: info.path,
    narHash: info.narHash,
    narSize: info.narSize,
    references: info.references,
    deriver: info.deriver ?? null,
    ca: info.ca ?? null,
    sigs: info.signatures,
  };
}

async function uploadOne(
  client: ClientOptions,
  endpoint: string,
  info: PathInfo,
  agents: Connections,
  counts: { read: (n: number) => void; sent: (n: number) => void },
): Promise<void> {
  const meta = pushedPathOf(info);
  const { nar, zstd } = await narBody(info);
  const metaLine = Buffer.from(JSON.stringify(meta) + '\n');
  // A small path goes as one buffer with its length: one write here, one read there, instead of a
  // chunked body of several writes, each a system call and a message to the server's verifier.
  const whole = !zstd && info.narSize <= SMALL_PATH_BYTES ? await readWhole(nar, info) : undefined;
  const req = openRequest(client, endpoint, agents, 'PUT', {
    'Content-Type': 'application/x-floe-path',
    'X-Floe-Compression': zstd ? 'zstd' : 'none',
    ...(whole ? { 'Content-Length': String(metaLine.length + whole.length) } : {}),
  });
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
  try {
    if (whole) {
      await new Promise<void>((resolve, reject) => {
        req.once('error', reject);
        req.end(Buffer.concat([metaLine, whole]), () => resolve());
      });
      counts.read(whole.length);
      counts.sent(whole.length);
    } else if (zstd) {
      req.write(metaLine);
      await pipeline(nar, counter(counts.read), zstdStream(info.narSize), counter(counts.sent), req);
    } else {
      req.write(metaLine);
      const both = (n: number) => {
        counts.read(n);
        counts.sent(n);
      };
      await pipeline(nar, counter(both), req);
    }
  } catch (err) {
    req.destroy();
    const r = await response.catch(() => undefined);
    throw new CliError(
      r ? `${r.status}: ${r.body.trim()}` : `upload interrupted: ${(err as Error).message}`,
      r?.status,
    );
  }
  const r = await response;
  if (r.status !== 200 && r.status !== 201) {
    let message = r.body.trim();
    try {
      message = (JSON.parse(r.body) as { message?: string }).message ?? message;
    } catch {
      /* plain text */
    }
    throw new CliError(`HTTP ${r.status}: ${message}`, r.status);
  }
}

/** The answer of a request: status and body text. */
function send(
  client: ClientOptions,
  endpoint: string,
  agents: Connections,
  body: Buffer,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = openRequest(client, endpoint, agents, 'POST', {
      'Content-Type': 'application/x-floe-paths',
      'Content-Length': String(body.length),
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The message of an error answer (JSON `message`, or the text). */
function answerMessage(body: string): string {
  try {
    return (JSON.parse(body) as { message?: string }).message ?? body.trim();
  } catch {
    return body.trim();
  }
}

/**
 * The answer to a batch of small paths: each path's own (`undefined`: uploaded, else why not),
 * or `'unsupported'` when the server has no batch route (older servers: 404 or 405) or cannot take
 * this batch whole (413): then the paths go one by one.
 */
async function uploadBatch(
  client: ClientOptions,
  endpoint: string,
  infos: PathInfo[],
  agents: Connections,
): Promise<'unsupported' | Array<CliError | undefined>> {
  const nars = await Promise.all(infos.map((info) => readWhole(dumpPath(info.path), info)));
  const parts: Buffer[] = [];
  for (const [i, info] of infos.entries()) {
    const meta = pushedPathOf(info);
    const nar = nars[i]!;
    if (nar.length !== info.narSize)
      throw new CliError(
        `${info.path} has ${nar.length} NAR bytes, not the NarSize ${info.narSize} the local store records`,
      );
    parts.push(Buffer.from(JSON.stringify(meta) + '\n'), nar);
  }
  let r: { status: number; body: string };
  try {
    r = await send(client, endpoint, agents, Buffer.concat(parts));
  } catch (err) {
    throw new CliError(`upload interrupted: ${(err as Error).message}`);
  }
  if (r.status === 404 || r.status === 405 || r.status === 413) return 'unsupported';
  if (r.status !== 200) throw new CliError(`HTTP ${r.status}: ${answerMessage(r.body)}`, r.status);
  const answer = JSON.parse(r.body) as PushedBatchResult;
  if (answer.results?.length !== infos.length)
    throw new CliError(`the server answered ${answer.results?.length ?? 0} of the ${infos.length} paths of a batch`);
  return answer.results.map((e) =>
    e.status === 'refused' ? new CliError(`HTTP ${e.httpStatus}: ${e.message}`, e.httpStatus) : undefined,
  );
}

export async function push(client: ClientOptions, targets: string[], opts: PushOptions): Promise<PushResult> {
  if (!client.token)
    throw new CliError('pushing needs a token with the write scope: set FLOE_TOKEN or run `floe login`');
  const began = Date.now();
  const closure = await closureOf(targets);
  const prefix = opts.slice ? `/api/v1/cache/${opts.slice}` : '/api/v1/cache';
  const byPath = new Map(closure.map((p) => [p.path, p]));
  const result: PushResult = {
    total: closure.length,
    present: 0,
    mirrored: 0,
    refused: [],
    uploaded: 0,
    failed: [],
    bytes: 0,
    sentBytes: 0,
    durationMs: 0,
  };
  const smallJobs = opts.jobs * SMALL_PER_JOB;
  // Batches until the server shows it has no batch route: then one path a request, as before.
  let batches = true;
  const batchJobs = Math.max(smallJobs, opts.jobs * BATCHES_PER_JOB * BATCH_PATHS);
  const schedule = new PushSchedule(closure, { jobs: opts.jobs, smallJobs: batchJobs, smallBytes: SMALL_PATH_BYTES });
  const agents: Connections = {
    http: new HttpAgent({ keepAlive: true, maxSockets: smallJobs }),
    https: new HttpsAgent({ keepAlive: true, maxSockets: smallJobs }),
  };
  const progress = new PushProgress(0, 0, opts.progressIntervalMs ?? 5000);
  const onRead = (n: number) => {
    const now = Date.now();
    progress.read(n, now);
    if (progress.due(now)) opts.progress(progress.line(now));
  };
  const dependencyFailed = (path: string) => result.failed.push({ path, error: 'a dependency failed to upload' });
  const uploaded = (info: PathInfo, sent: number): void => {
    result.uploaded++;
    result.bytes += info.narSize;
    // Only what the server kept: the bytes of a refused upload are not in its upload counter either.
    result.sentBytes += sent;
    progress.pathsDone++;
    const done = `[${result.uploaded}/${progress.totalPaths}] uploaded ${info.path} (${formatBytes(info.narSize, KIB)})`;
    opts.progress(`${done}; ${progress.line(Date.now())}`);
  };
  const failed = (path: string, err: unknown): void => {
    const status = err instanceof CliError ? err.status : undefined;
    result.failed.push({ path, error: (err as Error).message, ...(status ? { status } : {}) });
    opts.progress(`failed ${path}: ${(err as Error).message}`, true);
  };
  /** Small paths in one request; each path's outcome, or per-path uploads when the server has no batches. */
  const uploadMany = async (paths: string[]): Promise<boolean[]> => {
    const infos = paths.map((x) => byPath.get(x)!);
    let answers: 'unsupported' | Array<CliError | undefined>;
    try {
      answers = await uploadBatch(client, `${client.server}${prefix}/paths/batch`, infos, agents);
    } catch (err) {
      for (const x of paths) failed(x, err);
      return paths.map(() => false);
    }
    if (answers === 'unsupported') {
      if (batches) {
        batches = false;
        schedule.setSmallJobs(smallJobs);
        opts.progress('the server takes no batches of small paths: uploading them one by one', true);
      }
      return Promise.all(paths.map(upload));
    }
    return answers.map((err, i) => {
      const info = infos[i]!;
      if (err) {
        failed(info.path, err);
        return false;
      }
      onRead(info.narSize);
      uploaded(info, info.narSize);
      return true;
    });
  };
  const upload = async (path: string): Promise<boolean> => {
    const info = byPath.get(path)!;
    let sent = 0;
    const counts = {
      read: onRead,
      sent: (n: number) => {
        sent += n;
      },
    };
    try {
      await uploadOne(client, `${client.server}${prefix}/paths`, info, agents, counts);
    } catch (err) {
      failed(path, err);
      return false;
    }
    uploaded(info, sent);
    return true;
  };

  // Uploads start as paths become ready, whenever an answer or an upload comes in.
  let queryError: unknown;
  let wake: () => void = () => {};
  const pump = (): void => {
    if (queryError !== undefined) return;
    const batch: string[] = [];
    let batchBytes = 0;
    const flush = () => {
      const paths = batch.splice(0);
      batchBytes = 0;
      uploadMany(paths).then(
        (oks) => settle(paths, oks),
        () => settle(paths, []),
      );
    };
    for (const path of schedule.take()) {
      const info = byPath.get(path)!;
      if (batches && info.narSize <= BATCH_MAX_NAR_BYTES) {
        batch.push(path);
        batchBytes += info.narSize;
        if (batch.length >= BATCH_PATHS || batchBytes >= BATCH_BODY_BYTES) flush();
        continue;
      }
      upload(path).then(
        (ok) => settle([path], [ok]),
        () => settle([path], []),
      );
    }
    if (batch.length > 0) flush();
  };
  const settle = (paths: string[], oks: boolean[]): void => {
    for (const [i, path] of paths.entries()) {
      if (oks[i]) schedule.succeed(path);
      else for (const p of schedule.fail(path)) dependencyFailed(p);
    }
    pump();
    wake();
  };

  try {
    const order = dependencyOrder(closure);
    let toUpload = 0;
    let toUploadBytes = 0;
    for (let i = 0; i < order.length; ) {
      const size = i === 0 ? FIRST_QUERY_BATCH : QUERY_BATCH;
      const ask: MissingRequest = { paths: order.slice(i, i + size) };
      i += size;
      let res: MissingResponse;
      try {
        res = await apiRequest<MissingResponse>(client, 'POST', `${prefix}/missing`, ask);
      } catch (err) {
        queryError = err;
        break;
      }
      const missing = new Set(res.missing);
      const mirrored = new Set(res.mirrored ?? []);
      for (const r of res.refused ?? []) {
        result.refused.push(r);
        opts.progress(`the server refused the upstream copy of ${r.path}: ${r.reason}; uploading it from here`, true);
      }
      for (const path of ask.paths) {
        if (missing.has(path)) {
          const info = byPath.get(path)!;
          toUpload++;
          toUploadBytes += info.narSize;
          progress.more(info.narSize, 1);
          if (schedule.missing(path)) dependencyFailed(path);
        } else {
          if (mirrored.has(path)) result.mirrored++;
          else result.present++;
          schedule.present(path);
        }
      }
      if (i >= order.length)
        opts.progress(
          `${closure.length} paths in the closure, ${result.present} already in the cache, ` +
            `${result.mirrored} fetched by the server from upstream, ` +
            `${toUpload} to upload (${formatBytes(toUploadBytes, KIB)} uncompressed)`,
          true,
        );
      pump();
    }
    // Every answer is in (or a question failed): wait for the uploads running to finish.
    while (schedule.running > 0) await new Promise<void>((resolve) => (wake = resolve));
  } finally {
    agents.http.destroy();
    agents.https.destroy();
  }
  if (queryError !== undefined) throw queryError;
  for (const path of schedule.stuck()) dependencyFailed(path);
  result.durationMs = Date.now() - began;
  return result;
}

/** The closing line: counts, bytes and how long it took. */
export function pushSummary(r: PushResult): string {
  const secs = r.durationMs / 1000;
  const rate = secs > 0 ? `, ${formatBytes(r.bytes / secs, KIB)}/s` : '';
  return `${r.uploaded} uploaded, ${r.present} already present, ${r.failed.length} failed of ${r.total} paths; ${formatBytes(r.bytes, KIB)} (${formatBytes(r.sentBytes, KIB)} sent) in ${formatDuration(secs)}${rate}`;
}
