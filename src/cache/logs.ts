/**
 * Build logs (`log/<drv base name>`: `nix store copy-log --to`, read by `nix log`). A log is kept
 * per slice, next to the outputs whose narinfo names that derivation as `Deriver`, and follows
 * their access exactly: served only from a slice whose copy of one of those outputs `/cache`
 * would serve the caller (missing and denied answer alike), written only by writers of a slice
 * that already holds such an output, and collected when the slice holds none any more (gc.ts).
 *
 * A log that arrives before any output of its derivation is refused (400 naming the outputs to
 * upload): Nix's own order is `nix copy`, then `nix store copy-log`, and `floe push --logs` sends
 * logs after the closure. Keeping early logs would mean storing text nobody can be allowed to
 * read yet (no output decides who may), so there is no such state.
 *
 * The text is stored as a zstd blob keyed by the SHA-256 of the stored bytes (identical logs are
 * stored once), at most MAX_LOG_BYTES of text; its stored size counts in the org's usage and quota.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InvalidInput, TooLarge } from '../errors.js';
import type { Principal } from '../identity/principal.js';
import { describePrincipal } from '../identity/principal.js';
import { type StorePathBase, type StorePathHash, parseStorePathBase } from '../nix/store-path.js';
import { lockSharedAgainstGc } from '../storage/locks.js';
import type { Storage } from '../storage/types.js';
import type { AuditEvent } from '../audit/log.js';
import { createDecompressor } from './compression.js';
import { createStorageCompressor } from './storage-compressor.js';
import type { Reading } from './reading.js';
import type { Uploads } from './uploading.js';
import type { CacheView } from './view.js';

/** Nix keeps whole build logs; 64 MiB of text is far past any log worth reading back. */
export const MAX_LOG_BYTES = 64 << 20;
/** How many outputs of one derivation are probed for the caller's access (a derivation has few). */
const MAX_OUTPUTS_PROBED = 16;

/** PURE: the blob key of a stored log, from the SHA-256 (hex) of its zstd bytes. */
export function logBlobKey(sha256Hex: string): string {
  return `log-${sha256Hex}.log.zst`;
}

/**
 * PURE: the derivation a `log/<name>` URL names. Nix 2.8 concatenates the base name into the URL
 * unescaped; newer clients may percent-encode `+`, `=` or `?`.
 */
export function parseLogName(raw: string): StorePathBase {
  let name = raw;
  if (raw.includes('%')) {
    try {
      name = decodeURIComponent(raw);
    } catch {
      throw new InvalidInput('log name', 'invalid percent-encoding');
    }
  }
  const base = parseStorePathBase(name, 'log name');
  if (!base.endsWith('.drv')) {
    throw new InvalidInput('log name', `expected log/<hash>-<name>.drv, got ${JSON.stringify(name.slice(0, 80))}`);
  }
  return base;
}

export interface StoredLog {
  /** Bytes of the log text. */
  size: number;
  /** The log text, decompressed as it is read; undefined if the blob has gone meanwhile. */
  open(): Promise<Readable | undefined>;
}

export interface BuildLogDeps {
  storage: Storage;
  reading: Reading;
  uploads: Uploads;
  audit?: { append(e: AuditEvent): void };
}

export class BuildLogService {
  constructor(private readonly deps: BuildLogDeps) {}

  /** The log the caller may read, or undefined (missing and denied alike). */
  async find(p: Principal, view: CacheView, drv: StorePathBase): Promise<StoredLog | undefined> {
    const db = this.deps.storage.db;
    let query = db.selectFrom('build_logs').select(['slice_id', 'blob_key', 'size']).where('drv', '=', drv);
    if (view.kind === 'slice') query = query.where('slice_id', '=', view.slice.slice.id);
    const rows = await query.limit(64).execute();
    let best: { row: (typeof rows)[number]; rank: number } | undefined;
    for (const row of rows) {
      const outputs = await db
        .selectFrom('paths')
        .select('hash_part')
        .where('slice_id', '=', row.slice_id)
        .where('deriver', '=', drv)
        .limit(MAX_OUTPUTS_PROBED)
        .execute();
      for (const o of outputs) {
        // Visible only where the caller would be served this very copy of an output.
        const serving = await this.deps.reading.servingSlice(p, view, o.hash_part as StorePathHash);
        if (serving?.sliceId === row.slice_id) {
          if (!best || serving.rank < best.rank) best = { row, rank: serving.rank };
          break;
        }
      }
    }
    if (!best) return undefined;
    const { blob_key: key, size } = best.row;
    return {
      size: Number(size),
      open: async () => {
        const read = await this.deps.storage.blobs.get(key);
        if (!read) return undefined;
        const text = createDecompressor('zstd');
        read.body.on('error', (err) => text.destroy(err));
        // A reader that stops early (or goes away) must not leave the blob's file or socket open.
        text.once('close', () => read.body.destroy());
        return read.body.pipe(text);
      },
    };
  }

  /**
   * Checks everything that can be checked before the body is read: the caller writes the target
   * slice (and its org is not over quota), and the slice holds an output of `drv`.
   */
  async admit(p: Principal, view: CacheView, drv: StorePathBase) {
    const target = await this.deps.uploads.admitNarUpload(p, view);
    const output = await this.deps.storage.db
      .selectFrom('paths')
      .select('store_path')
      .where('slice_id', '=', target.slice.id)
      .where('deriver', '=', drv)
      .executeTakeFirst();
    if (!output) {
      const where = `${target.org.name}/${target.slice.name}`;
      throw new InvalidInput(
        'log',
        `no output of /nix/store/${drv} is in ${where}: upload the outputs (nix copy) before their build log`,
      );
    }
    return target;
  }

  /** `PUT log/<drv>`: the log text (already decoded from any Content-Encoding), stored in the write target. */
  async put(
    p: Principal,
    view: CacheView,
    drv: StorePathBase,
    text: AsyncIterable<Buffer>,
  ): Promise<'created' | 'replaced'> {
    const target = await this.admit(p, view, drv);
    const { storage } = this.deps;
    const writer = await storage.blobs.begin();
    const sha = createHash('sha256');
    let size = 0;
    let stored = 0;
    try {
      await pipeline(
        text,
        async function* bounded(source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            size += chunk.length;
            if (size > MAX_LOG_BYTES) throw new TooLarge(`build log larger than ${MAX_LOG_BYTES} bytes`);
            yield chunk;
          }
        },
        createStorageCompressor(),
        async function* measured(source: AsyncIterable<Buffer>) {
          for await (const chunk of source as AsyncIterable<Buffer>) {
            sha.update(chunk);
            stored += chunk.length;
            yield chunk;
          }
        },
        writer.body,
      );
    } catch (err) {
      await writer.abort();
      throw err;
    }
    const key = logBlobKey(sha.digest('hex'));
    const now = new Date().toISOString();
    // The row first, under the lock GC's sweeps take exclusively, then the blob: GC either ran
    // before (the blob is ours to write) or sees the row and keeps the blob (as ingest.ts does).
    const replaced = await storage.db.transaction().execute(async (trx) => {
      await lockSharedAgainstGc(trx, storage.dialect);
      const slice = target.slice.id;
      const existing = await trx
        .selectFrom('build_logs')
        .select('drv')
        .where('slice_id', '=', slice)
        .where('drv', '=', drv)
        .executeTakeFirst();
      const row = { blob_key: key, size, stored_size: stored, uploaded_by: describePrincipal(p), created_at: now };
      if (existing)
        await trx.updateTable('build_logs').set(row).where('slice_id', '=', slice).where('drv', '=', drv).execute();
      else
        await trx
          .insertInto('build_logs')
          .values({ slice_id: target.slice.id, drv, ...row })
          .execute();
      return existing !== undefined;
    });
    try {
      await writer.commit(key);
    } catch (err) {
      await writer.abort();
      throw err;
    }
    this.deps.audit?.append({
      principal: p,
      action: 'cache.write',
      target: `${target.org.name}/${target.slice.name}:log/${drv}`,
      orgId: target.org.id,
      detail: { size, storedSize: stored, ...(replaced ? { replaced: true } : {}) },
    });
    return replaced ? 'replaced' : 'created';
  }
}
