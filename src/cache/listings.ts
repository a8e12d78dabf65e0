/**
 * NAR listings (`<hash>.ls`, what `write-nar-listing=true` uploads and `nix store ls` / nix-index
 * read). Generated from the stored NAR on demand with the pure validator (nix/nar.ts), never taken
 * from the uploader: a listing cannot disagree with the bytes it describes. Served exactly where
 * the narinfo of the path would be (missing and denied alike); uploaded `.ls` files are read
 * (bounded) and dropped by the HTTP layer. A listing is a function of the NAR alone, so once made
 * it is memoized by NAR hash (bounded, least recently used first out): access is still decided
 * per request before the memo is consulted, and `nix store ls` walking a tree costs one decode.
 */
import { pipeline } from 'node:stream/promises';
import { FloeError } from '../errors.js';
import type { Principal } from '../identity/principal.js';
import { NarValidator, formatNarListing } from '../nix/nar.js';
import type { StorePathHash } from '../nix/store-path.js';
import type { Storage } from '../storage/types.js';
import { createDecompressor } from './compression.js';
import { narBlobKey } from './ingest.js';
import type { Reading } from './reading.js';
import type { CacheView } from './view.js';

/** Past this many files, directories and links a listing is not offered (it would be megabytes of JSON). */
export const MAX_LISTED_ENTRIES = 200_000;

/** Memo bounds: listings are up to a few MiB of JSON each. */
const MEMO_MAX_BYTES = 32 << 20;
const MEMO_MAX_ENTRIES = 4096;

/**
 * Listings by NAR hash, least recently used evicted first, bounded in bytes and entries. `null`
 * remembers "too many entries to list", so a huge NAR is not decoded again on every request.
 */
export class ListingMemo {
  private readonly entries = new Map<string, string | null>();
  private bytes = 0;

  constructor(
    private readonly maxBytes = MEMO_MAX_BYTES,
    private readonly maxEntries = MEMO_MAX_ENTRIES,
  ) {}

  get(narHash: string): string | null | undefined {
    const hit = this.entries.get(narHash);
    if (hit === undefined) return undefined;
    this.entries.delete(narHash);
    this.entries.set(narHash, hit);
    return hit;
  }

  set(narHash: string, listing: string | null): void {
    const size = listing?.length ?? 0;
    if (size > this.maxBytes || this.entries.has(narHash)) return;
    this.entries.set(narHash, listing);
    this.bytes += size;
    for (const [key, value] of this.entries) {
      if (this.bytes <= this.maxBytes && this.entries.size <= this.maxEntries) break;
      this.entries.delete(key);
      this.bytes -= value?.length ?? 0;
    }
  }

  get size(): number {
    return this.entries.size;
  }
}

export class ListingService {
  private readonly memo = new ListingMemo();
  /** One decode per NAR at a time: concurrent requests for the same listing share it. */
  private readonly inFlight = new Map<string, Promise<string | null | undefined>>();

  constructor(private readonly deps: { storage: Storage; reading: Reading }) {}

  /** The listing of the path the caller would be served under `hash`, or undefined. */
  async find(p: Principal, view: CacheView, hash: StorePathHash): Promise<string | undefined> {
    const serving = await this.deps.reading.servingSlice(p, view, hash);
    if (!serving) return undefined;
    const row = await this.deps.storage.db
      .selectFrom('paths')
      .select('nar_hash')
      .where('slice_id', '=', serving.sliceId)
      .where('hash_part', '=', hash)
      .executeTakeFirst();
    if (!row) return undefined;
    const known = this.memo.get(row.nar_hash);
    if (known !== undefined) return known ?? undefined;
    let making = this.inFlight.get(row.nar_hash);
    if (!making) {
      making = this.generate(row.nar_hash).finally(() => this.inFlight.delete(row.nar_hash));
      this.inFlight.set(row.nar_hash, making);
    }
    return (await making) ?? undefined;
  }

  /** The listing of a stored NAR; null when it has too many entries; undefined when the blob is gone. */
  private async generate(narHash: string): Promise<string | null | undefined> {
    const blob = await this.deps.storage.blobs.get(narBlobKey(narHash));
    if (!blob) return undefined;
    const validator = new NarValidator({ listing: { maxEntries: MAX_LISTED_ENTRIES } });
    let listing: string | null;
    try {
      // The decoder yields to the event loop between slices, so a large NAR does not stall others.
      await pipeline(blob.body, createDecompressor('zstd'), async (nar: AsyncIterable<Buffer>) => {
        for await (const chunk of nar) validator.push(chunk);
      });
      validator.end();
      listing = formatNarListing(validator.listing!);
    } catch (err) {
      // Too many entries to list (the stored NAR itself was verified at upload).
      if (!(err instanceof FloeError)) throw err;
      listing = null;
    }
    this.memo.set(narHash, listing);
    return listing;
  }
}
