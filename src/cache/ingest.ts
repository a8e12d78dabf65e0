/**
 * Verify-while-streaming NAR ingestion: bytes from the client are counted, sniffed, and handed to
 * a verifier thread (verify-pool.ts) that decompresses them, parses the NAR (structure check),
 * hashes it (NarHash/NarSize) and writes it, as zstd, to the blob writer's hidden spool file
 * (a zstd upload as sent, anything else recompressed). Only a fully verified NAR is committed, under its NarHash, so identical
 * content is stored once whoever uploads it. Decoding follows the consumer (see compression.ts),
 * and every decoded chunk is checked against the NAR's allowed size before it is used, so a
 * decompression bomb is refused after at most that size plus a slice, not expanded.
 */
import { narBlobKey } from './blob-keys.js';
import { FloeError, InsufficientStorage, InvalidInput, TooLarge } from '../errors.js';
import { isStorageFull } from '../storage/failures.js';
import type { Hash } from '../nix/hash.js';
import { encodeNix32 } from '../nix/nix32.js';
import type { Principal } from '../identity/principal.js';
import type { BlobStore, Db } from '../storage/types.js';
import { lockSharedAgainstGc } from '../storage/locks.js';
import { type Compression, sniffCompression } from './compression.js';
import { type Verifier, sharedVerifier } from './verify-pool.js';
import { WHOLE_VERIFY_BYTES, narSizeProblem, verifyWhole } from './verify-stream.js';

export interface IngestLimits {
  /** Largest request body accepted (compressed bytes on the wire). */
  maxUploadBytes: number;
  /** Largest NAR accepted after decompression (also bounds decompression bombs). */
  maxNarBytes: number;
}

export interface IngestedNar {
  narHash: Hash;
  narSize: number;
  /** The key of the stored blob (nix32 NarHash). */
  blobKey: string;
  receivedBytes: number;
  compression: Compression;
}

/** Which slice uploaded a NAR under which file name, and until when that counts. */
export interface UploadRecord {
  sliceId: string;
  /** The name it was uploaded as, given the NAR hash (known only once the NAR is verified). */
  fileName: (narHashNix32: string) => string;
  expiresAt: Date;
}

export { narBlobKey };

export { MAX_EXPANSION_RATIO, UNDECLARED_NAR_FLOOR_BYTES, narSizeProblem } from './verify-stream.js';

/** Reads from `source`, verifies, stores. `declared` is what the client says (file extension). */
export async function ingestNar(
  source: AsyncIterable<Buffer>,
  declared: Compression | undefined,
  deps: { blobs: BlobStore; db: Db; dialect: 'sqlite' | 'postgres' },
  limits: IngestLimits,
  signal?: AbortSignal,
  /** The NarSize the client or upstream declared: decoding stops as soon as the NAR passes it. */
  declaredNarSize?: number,
  /** The body's Content-Length, when no NarSize was declared (to pick the compressor). */
  bodyBytes?: number,
  /**
   * The upload record (`nar_uploads`) that keeps this NAR from GC until its narinfo arrives,
   * written in the same transaction as the `nars` row: from that moment the NAR is needed, so a
   * GC in between, even with grace 0, cannot collect it (the grace period alone left a window).
   */
  record?: UploadRecord,
  verifier: Verifier = sharedVerifier(),
): Promise<IngestedNar> {
  // An upload whose client went away (or timed out) while it queued for a slot frees it at once.
  signal?.throwIfAborted();
  let received = 0;
  async function* counted() {
    for await (const chunk of source) {
      received += chunk.length;
      if (received > limits.maxUploadBytes)
        throw new TooLarge(`upload is larger than the limit of ${limits.maxUploadBytes} bytes`);
      yield chunk;
    }
  }
  const it = counted()[Symbol.asyncIterator]();
  const headChunks: Buffer[] = [];
  let headLength = 0;
  while (headLength < 32) {
    const r = await it.next();
    if (r.done) break;
    headChunks.push(r.value);
    headLength += r.value.length;
  }
  if (headLength === 0) throw new InvalidInput('NAR', 'empty body');
  const head = Buffer.concat(headChunks);
  const compression = sniffCompression(head, declared);
  async function* body() {
    yield head;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }

  const writer = await deps.blobs.begin();
  try {
    let verified;
    try {
      const params = {
        compression,
        maxNarBytes: limits.maxNarBytes,
        ...(declaredNarSize !== undefined ? { declaredNarSize } : {}),
        ...(bodyBytes !== undefined ? { bodyBytes } : {}),
        file: writer.file,
        syncFile: writer.syncFile,
      };
      // Written by the verifier through the file; `writer.body` is never opened. A small
      // uncompressed NAR of declared size is read whole (never past that size) and verified here.
      const whole =
        compression === 'none' && declaredNarSize !== undefined && declaredNarSize <= WHOLE_VERIFY_BYTES
          ? await readUpTo(body(), (n) => narSizeProblem(n, n, limits.maxNarBytes, declaredNarSize), signal)
          : undefined;
      verified = whole ? await verifyWhole(params, whole) : await verifier.verify(params, body(), signal);
    } catch (err) {
      if (err instanceof FloeError) throw err;
      if ((err as Error).name === 'AbortError') throw err;
      // Our side failed (the temp file's disk is full, an I/O error): the server's fault, not
      // "could not decompress". System call errors carry `syscall`; decoders' do not.
      if (isStorageFull(err)) throw new InsufficientStorage({ cause: err });
      if (typeof (err as NodeJS.ErrnoException).syscall === 'string') throw err;
      throw new InvalidInput('NAR', `could not decompress the body as ${compression}: ${(err as Error).message}`);
    }
    const narHash: Hash = { algo: 'sha256', digest: Buffer.from(verified.narHash) };
    const narHashNix32 = encodeNix32(narHash.digest);
    const blobKey = narBlobKey(narHashNix32);
    // The row first, under the lock shared with GC: either GC ran before (the row and blob are
    // gone, so we store ours) or after (it sees touched_at and leaves both alone for the grace
    // period). The blob store is asked only after that transaction: no S3 round trip (or outage)
    // holds a database connection and the GC lock.
    const now = new Date().toISOString();
    const fileHash = encodeNix32(Buffer.from(verified.fileHash));
    const existed = await deps.db.transaction().execute(async (trx) => {
      await lockSharedAgainstGc(trx, deps.dialect);
      // One statement: a new row, or the touch of the one there (which then keeps its created_at).
      const stored = await trx
        .insertInto('nars')
        .values({
          nar_hash: narHashNix32,
          nar_size: verified.narSize,
          file_hash: fileHash,
          file_size: verified.fileSize,
          created_at: now,
          touched_at: now,
        })
        .onConflict((oc) => oc.column('nar_hash').doUpdateSet({ touched_at: now }))
        .returning('created_at')
        .executeTakeFirstOrThrow();
      if (record) {
        const row = {
          slice_id: record.sliceId,
          file_name: record.fileName(narHashNix32),
          nar_hash: narHashNix32,
          nar_size: verified.narSize,
          created_at: now,
          expires_at: record.expiresAt.toISOString(),
        };
        await trx
          .insertInto('nar_uploads')
          .values(row)
          .onConflict((oc) =>
            oc.columns(['slice_id', 'file_name']).doUpdateSet({
              nar_hash: row.nar_hash,
              nar_size: row.nar_size,
              created_at: row.created_at,
              expires_at: row.expires_at,
            }),
          )
          .execute();
      }
      // Created at this very millisecond by another upload counts as new: that one commits its blob too.
      return stored.created_at !== now;
    });
    const present = (await deps.blobs.size(blobKey)) !== undefined;
    // Whether some org already stores this content must not show in how long the upload takes
    // (skipping the commit of a known blob was a few ms faster): the temp blob is always committed,
    // fsynced like a new one; the store keeps the existing blob and drops the copy.
    await writer.commit(blobKey);
    // A row whose blob was lost describes our file now.
    if (!present && existed)
      await deps.db
        .updateTable('nars')
        .set({ file_hash: fileHash, file_size: verified.fileSize })
        .where('nar_hash', '=', narHashNix32)
        .execute();
    return { narHash, narSize: verified.narSize, blobKey, receivedBytes: received, compression };
  } catch (err) {
    await writer.abort();
    if (isStorageFull(err) && !(err instanceof FloeError)) throw new InsufficientStorage({ cause: err });
    throw err;
  }
}

/**
 * The whole of a body that is an uncompressed NAR of declared size: a chunk taking it past that
 * size (or the server's limit) is the streaming verification's refusal, and nothing more is read.
 */
async function readUpTo(
  source: AsyncIterable<Buffer>,
  problem: (size: number) => FloeError | undefined,
  signal?: AbortSignal,
): Promise<Buffer> {
  const parts: Buffer[] = [];
  let length = 0;
  for await (const chunk of source) {
    length += chunk.length;
    const refused = problem(length);
    if (refused) throw refused;
    parts.push(chunk);
  }
  signal?.throwIfAborted();
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
}

/**
 * Whose turn an ingestion slot is within its org (FairSemaphore's member): the token, so one
 * token's stalled uploads cannot take every slot of the org; other callers share one turn.
 */
export function ingestMember(p: Principal): string {
  return p.kind === 'anonymous' ? 'anonymous' : `token:${p.tokenId}`;
}
