/**
 * NAR listings (`<hash>.ls`, what `write-nar-listing=true` uploads and `nix store ls` / nix-index
 * read). Generated from the stored NAR on demand with the pure validator (nix/nar.ts), never taken
 * from the uploader: a listing cannot disagree with the bytes it describes. Served exactly where
 * the narinfo of the path would be (missing and denied alike); uploaded `.ls` files are read
 * (bounded) and dropped by the HTTP layer.
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

export class ListingService {
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
    const blob = await this.deps.storage.blobs.get(narBlobKey(row.nar_hash));
    if (!blob) return undefined;
    const validator = new NarValidator({ listing: { maxEntries: MAX_LISTED_ENTRIES } });
    try {
      // The decoder yields to the event loop between slices, so a large NAR does not stall others.
      await pipeline(blob.body, createDecompressor('zstd'), async (nar: AsyncIterable<Buffer>) => {
        for await (const chunk of nar) validator.push(chunk);
      });
      validator.end();
    } catch (err) {
      // Too many entries to list (the stored NAR itself was verified at upload).
      if (err instanceof FloeError) return undefined;
      throw err;
    }
    return formatNarListing(validator.listing!);
  }
}
