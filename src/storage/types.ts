/**
 * Storage contracts. Domain code (cache, identity, org, policy) depends on these types only;
 * `storage/open.ts` is the one place that picks a concrete backend.
 */
import type { Readable, Writable } from 'node:stream';
import type { Kysely } from 'kysely';
import type { Schema } from './sql/schema.js';
import type { ChangeFeed } from './changes.js';

export type { Schema } from './sql/schema.js';
/** Metadata access: one Kysely instance, whatever the dialect. */
export type Db = Kysely<Schema>;

export interface BlobRead {
  body: Readable;
  /** Total size of the blob. */
  size: number;
  /**
   * Where the bytes are on the local disk (filesystem store only), for senders that read them
   * into reused buffers instead of `body`; `body` is then never opened.
   */
  file?: { path: string; start: number; end: number };
}

export interface BlobInfo {
  key: string;
  size: number;
  /** Milliseconds since the epoch. */
  modifiedAt: number;
}

export interface BlobWriter {
  /** Stream the bytes here. Nothing is visible to readers until `commit` resolves. */
  readonly body: Writable;
  /**
   * The local spool file behind `body` (it exists, empty): code in another thread may write the
   * bytes there instead, opening it without creating it (so the file of an aborted writer is never
   * made again), and leave `body` untouched (it is opened only when used). One or the other, never both.
   */
  readonly file: string;
  /**
   * Whether code writing `file` itself must fsync it before it is done (the filesystem store links
   * that very file into place; the S3 store only uploads it). `body` does so by itself.
   */
  readonly syncFile: boolean;
  /** Makes the written bytes readable under `key`; an existing blob of that key is kept (content addressing). */
  commit(key: string): Promise<void>;
  /** Discards what was written. Safe to call after a failure or twice. */
  abort(): Promise<void>;
}

export interface BlobStore {
  begin(): Promise<BlobWriter>;
  get(key: string, range?: { start: number; end: number }): Promise<BlobRead | undefined>;
  size(key: string): Promise<number | undefined>;
  delete(key: string): Promise<void>;
  /** Every committed blob (never uncommitted uploads), for GC's orphan scan. Order unspecified. */
  list(): AsyncIterable<BlobInfo>;
  /** A short-lived URL the client may download from directly, when the backend offers one. */
  redirectUrl?(key: string): Promise<string | undefined>;
  /** Throws when the store cannot be reached (readiness probes); default: a size() of a missing key. */
  check?(): Promise<void>;
  /**
   * Tests: `observe` is told the name of every operation a commit performs (never its outcome),
   * so a test can check that committing known content costs the same operations as new content.
   */
  traceCommits?(observe: ((operation: string) => void) | undefined): void;
}

export interface Storage {
  db: Db;
  blobs: BlobStore;
  /** Dialect name, for diagnostics and the few queries that differ. */
  dialect: 'sqlite' | 'postgres';
  /** Human-readable description of the backends, for the start-up log (no secrets). */
  description: string;
  /** Change notices between replicas (best effort; pollers remain the guarantee). */
  changes: ChangeFeed;
  close(): Promise<void>;
}
