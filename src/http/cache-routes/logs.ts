/**
 * `GET|HEAD|PUT /cache[/<org>/<slice>]/log/<drv base name>`: build logs (cache/logs.ts decides).
 * Nix ≥ 2.32 with `log-compression=…` sends the log with a Content-Encoding: it is decoded here
 * (bounded on the wire and decoded), and served back as plain text, which every version reads.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FloeError, InvalidInput, TooLarge } from '../../errors.js';
import type { Principal } from '../../identity/principal.js';
import type { CacheService, CacheView } from '../../cache/service.js';
import { MAX_LOG_BYTES, parseLogName } from '../../cache/logs.js';
import { compressionFromName, createDecompressor } from '../../cache/compression.js';
import { contentEncoding, declaredLength } from '../body.js';

export interface CacheRouteIo {
  send(status: number, headers: Record<string, string>, body?: string): void;
  /** Answers as for a missing path; returns true (handled) so a route can `return io.miss()`. */
  miss(): true;
  /** Sends the deferred `100 Continue`: call once the upload is authorized. */
  acceptBody(): void;
}

export interface CacheRequest {
  req: IncomingMessage;
  res: ServerResponse;
  principal: Principal;
  view: CacheView;
  cache: CacheService;
}

/** Handles the request if it is a log route; false leaves it to the other routes. */
export async function handleBuildLog(r: CacheRequest, io: CacheRouteIo, rest: readonly string[]): Promise<boolean> {
  if (rest.length !== 2 || rest[0] !== 'log') return false;
  const method = r.req.method ?? 'GET';
  if (method === 'GET' || method === 'HEAD') {
    let found;
    try {
      found = await r.cache.logs.find(r.principal, r.view, parseLogName(rest[1]!));
    } catch (err) {
      // A malformed name is a miss like any other unknown file.
      if (err instanceof InvalidInput) return io.miss();
      throw err;
    }
    if (!found) return io.miss();
    const headers = {
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': String(found.size),
      'Cache-Control': 'private, no-cache',
    };
    if (method === 'HEAD') {
      r.res.writeHead(200, headers).end();
      return true;
    }
    const text = await found.open();
    if (!text) return io.miss();
    r.res.writeHead(200, headers);
    try {
      await pipeline(text, upTo(found.size), r.res);
    } catch {
      // The client went away mid-download.
    }
    return true;
  }
  if (method === 'PUT') {
    const drv = parseLogName(rest[1]!);
    await r.cache.logs.admit(r.principal, r.view, drv); // refuse before reading the body
    const len = declaredLength(r.req);
    if (len !== undefined && len > MAX_LOG_BYTES) throw new TooLarge(`build log larger than ${MAX_LOG_BYTES} bytes`);
    io.acceptBody();
    const result = await r.cache.logs.put(r.principal, r.view, drv, decodedBody(r.req));
    io.send(result === 'created' ? 201 : 200, {});
    return true;
  }
  return false;
}

/**
 * Ends the answer with its last byte: a client that has its Content-Length closes at once, before
 * the decoder would report the end of its frame (which then looked like a client gone away).
 */
function upTo(size: number) {
  return async function* (source: AsyncIterable<Buffer>) {
    let sent = 0;
    if (size === 0) return;
    for await (const chunk of source) {
      const part = sent + chunk.length > size ? chunk.subarray(0, size - sent) : chunk;
      sent += part.length;
      yield part;
      if (sent >= size) return;
    }
  };
}

/**
 * The request body decoded by its Content-Encoding, at most MAX_LOG_BYTES on the wire (the
 * decoded size is bounded by the consumer). The request is piped, not given to pipeline(): a
 * refusal must not destroy its socket, or the answer could never be sent.
 */
function decodedBody(req: IncomingMessage): AsyncIterable<Buffer> {
  const encoding = contentEncoding(req.headers);
  const kind = encoding === '' ? 'none' : compressionFromName(encoding === 'x-gzip' ? 'gzip' : encoding);
  if (!kind)
    throw new InvalidInput('Content-Encoding', `unsupported encoding ${JSON.stringify(encoding.slice(0, 40))}`);
  const wire = new PassThrough();
  let received = 0;
  req.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received > MAX_LOG_BYTES) {
      req.unpipe(wire);
      wire.destroy(new TooLarge(`build log larger than ${MAX_LOG_BYTES} bytes on the wire`));
    }
  });
  req.once('close', () => {
    if (!req.complete) wire.destroy(new InvalidInput('body', 'the client went away before the end of the log'));
  });
  req.pipe(wire);
  if (kind === 'none') return wire;
  const decoder = createDecompressor(kind);
  wire.on('error', (err) => decoder.destroy(err));
  decoder.on('error', () => req.unpipe(wire));
  return translated(wire.pipe(decoder), encoding);
}

/** Decoder errors carry library messages: say what failed in terms the client can act on. */
async function* translated(source: AsyncIterable<Buffer>, encoding: string): AsyncIterable<Buffer> {
  try {
    yield* source;
  } catch (err) {
    if (err instanceof FloeError) throw err;
    throw new InvalidInput('body', `could not decode the ${encoding.slice(0, 40)} body: ${(err as Error).message}`);
  }
}
