/**
 * Reading request bodies with limits. Large NAR bodies are streamed elsewhere; this is for small
 * ones. Bodies are read as sent: JSON, forms and tarballs take no Content-Encoding (decoding a body
 * before knowing who sent it hands anyone a decompression bomb). The one protocol that compresses
 * small bodies, Nix >= 2.32 uploading narinfo with `narinfo-compression`, gets readEncodedSmallBody,
 * called only after the upload was authorized.
 */
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FloeError, InvalidInput, TooLarge } from '../errors.js';
import { compressionFromName, createDecompressor } from '../cache/compression.js';

export function declaredLength(req: IncomingMessage): number | undefined {
  const v = req.headers['content-length'];
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** The request's Content-Encoding, lower case; '' when there is none (or it says identity). */
export function contentEncoding(headers: IncomingMessage['headers']): string {
  const encoding = String(headers['content-encoding'] ?? '')
    .trim()
    .toLowerCase();
  return encoding === 'identity' ? '' : encoding;
}

export function refuseContentEncoding(encoding: string): void {
  if (encoding !== '')
    throw new InvalidInput(
      'Content-Encoding',
      `${JSON.stringify(encoding.slice(0, 40))} is not accepted here: send the body uncompressed`,
    );
}

/** Collects at most `limit` bytes of `source`, refusing (and so destroying the source) past it. */
async function collect(source: AsyncIterable<Buffer>, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of source) {
    total += chunk.length;
    if (total > limit) throw new TooLarge(`${what} larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/**
 * Deep enough for any document Floe reads (release metadata's outputs inventory included), far
 * below what overflows the stack of the recursive code that later walks a value
 * (JSON.stringify, structured clones): JSON.parse itself accepts any depth.
 */
export const MAX_JSON_DEPTH = 100;

/** Refuses a body whose Content-Length is over `limit` before any of it is read. */
export function checkDeclaredLength(req: IncomingMessage, limit: number): void {
  const len = declaredLength(req);
  if (len !== undefined && len > limit) throw new TooLarge(`body larger than ${limit} bytes`);
}

/** The body as sent, at most `limit` bytes; refused if it declares a Content-Encoding. */
export async function readSmallBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  refuseContentEncoding(contentEncoding(req.headers));
  checkDeclaredLength(req, limit);
  return collect(req, limit, 'body');
}

/** Reads and drops a body Floe accepts but does not keep (any encoding: it is never decoded). */
export async function discardSmallBody(req: IncomingMessage, limit: number): Promise<void> {
  checkDeclaredLength(req, limit);
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) throw new TooLarge(`body larger than ${limit} bytes`);
  }
}

/**
 * The body decoded by its Content-Encoding, for authorized narinfo uploads only: at most `limit`
 * bytes on the wire and at most `limit` bytes decoded. The decoder is destroyed the moment the
 * decoded bytes pass the limit or the request fails, so it never works ahead of the check.
 */
export async function readEncodedSmallBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const encoding = contentEncoding(req.headers);
  if (encoding === '') return readSmallBody(req, limit);
  const kind = compressionFromName(encoding === 'x-gzip' ? 'gzip' : encoding);
  if (!kind || kind === 'none')
    throw new InvalidInput('Content-Encoding', `unsupported encoding ${JSON.stringify(encoding.slice(0, 40))}`);
  checkDeclaredLength(req, limit);
  let wire = 0;
  const counted = async function* (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) {
      wire += chunk.length;
      if (wire > limit) throw new TooLarge(`body larger than ${limit} bytes`);
      yield chunk;
    }
  };
  let body: Buffer | undefined;
  // The request is piped, not handed to pipeline(): a refusal destroys the decoder chain but must
  // not destroy the request's socket, or the 413 could never be sent.
  const wireSide = new PassThrough();
  req.pipe(wireSide);
  try {
    await pipeline(wireSide, counted, createDecompressor(kind), async (decoded: AsyncIterable<Buffer>) => {
      body = await collect(decoded, limit, 'decoded body');
    });
  } catch (err) {
    req.unpipe(wireSide);
    if (err instanceof FloeError) throw err;
    throw new InvalidInput('body', `could not decode the ${encoding} body: ${(err as Error).message}`);
  }
  return body!;
}

export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const body = await readSmallBody(req, limit);
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw new InvalidInput('body', 'expected a JSON document');
  }
  if (jsonDepth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH)
    throw new InvalidInput('body', `JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
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
    for (const child of Array.isArray(v) ? v : Object.values(v))
      if (child !== null && typeof child === 'object') stack.push([child, inner]);
  }
  return deepest;
}
