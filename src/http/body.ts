/** Reading request bodies with limits. Large NAR bodies are streamed elsewhere; this is for small ones. */
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InvalidInput, TooLarge } from '../errors.js';
import { compressionFromName, createDecompressor } from '../cache/compression.js';

export function declaredLength(req: IncomingMessage): number | undefined {
  const v = req.headers['content-length'];
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

export async function readSmallBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const len = declaredLength(req);
  if (len !== undefined && len > limit) throw new TooLarge(`body larger than ${limit} bytes`);
  const encoding = String(req.headers['content-encoding'] ?? '').trim().toLowerCase();
  const chunks: Buffer[] = [];
  let total = 0;
  const collect = async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) {
      total += chunk.length;
      if (total > limit) throw new TooLarge(`body larger than ${limit} bytes`);
      chunks.push(chunk);
    }
  };
  if (encoding === '' || encoding === 'identity') {
    await collect(req);
  } else {
    // Nix >= 2.32 can upload narinfo with `narinfo-compression=…`, sent as Content-Encoding.
    const kind = compressionFromName(encoding === 'x-gzip' ? 'gzip' : encoding);
    if (!kind) throw new InvalidInput('Content-Encoding', `unsupported encoding ${JSON.stringify(encoding)}`);
    try {
      await pipeline(req, createDecompressor(kind), async function (source: AsyncIterable<Buffer>) {
        await collect(source);
      });
    } catch (err) {
      if (err instanceof TooLarge) throw err;
      throw new InvalidInput('body', `could not decode ${encoding} body: ${(err as Error).message}`);
    }
  }
  return Buffer.concat(chunks);
}

export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const body = await readSmallBody(req, limit);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new InvalidInput('body', 'expected a JSON document');
  }
}

export function asIterable(req: IncomingMessage): AsyncIterable<Buffer> {
  return req as Readable;
}
