/**
 * `GET|HEAD /cache[/<org>/<slice>]/<hash>.ls`: the NAR listing, generated from the stored NAR
 * (cache/listings.ts). `PUT` (Nix's `write-nar-listing=true`) is accepted, read up to a bound and
 * dropped: the uploader's listing is never needed, nor trusted.
 */
import { InvalidInput } from '../../errors.js';
import { parseStorePathHash } from '../../nix/store-path.js';
import { discardSmallBody } from '../body.js';
import type { CacheRequest, CacheRouteIo } from './logs.js';

/** Nix's listings are JSON of every entry: a few MiB for the largest store paths. */
const MAX_UPLOADED_LISTING_BYTES = 16 << 20;

export async function handleListing(r: CacheRequest, io: CacheRouteIo, rest: readonly string[]): Promise<boolean> {
  if (rest.length !== 1 || !rest[0]!.endsWith('.ls')) return false;
  const method = r.req.method ?? 'GET';
  if (method === 'GET' || method === 'HEAD') {
    let hash;
    try {
      hash = parseStorePathHash(rest[0]!.slice(0, -'.ls'.length));
    } catch (err) {
      if (err instanceof InvalidInput) return io.miss();
      throw err;
    }
    const listing = await r.cache.listings.find(r.principal, r.view, hash);
    if (listing === undefined) return io.miss();
    io.send(200, { 'Content-Type': 'application/json', 'Cache-Control': 'private, no-cache' }, listing);
    return true;
  }
  if (method === 'PUT') {
    await r.cache.uploads.writeTarget(r.principal, r.view); // refuse before reading the body
    io.acceptBody();
    await discardSmallBody(r.req, MAX_UPLOADED_LISTING_BYTES);
    io.send(204, {});
    return true;
  }
  return false;
}
