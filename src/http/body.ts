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

/**
 * Deep enough for any document Floe reads (release metadata's outputs inventory included), far
 * below what overflows the stack of the recursive code that later walks a value
 * (JSON.stringify, structured clones): JSON.parse itself accepts any depth.
 */
export const MAX_JSON_DEPTH = 100;

export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const body = await readSmallBody(req, limit);
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw new InvalidInput('body', 'expected a JSON document');
  }
  if (jsonDepth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) throw new InvalidInput('body', `JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
  return value;
}

/** Nesting depth of a parsed JSON value (a scalar is 0), counted without recursion; stops once past `stopAbove`. */
export function jsonDepth(value: unknown, stopAbove = Infinity): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    const inner = depth + 1;
    if (inner > deepest) deepest = inner;
    if (deepest > stopAbove) return deepest;
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (child !== null && typeof child === 'object') stack.push([child, inner]);
  }
  return deepest;
}

export function asIterable(req: IncomingMessage): AsyncIterable<Buffer> {
  return req as Readable;
}
