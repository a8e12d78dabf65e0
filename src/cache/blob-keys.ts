/** PURE: the object-store keys of cache blobs, shared by writers (ingest) and renderers (narinfo URLs). */

/** A verified NAR is stored zstd-compressed under its NAR hash. */
export function narBlobKey(narHashNix32: string): string {
  return `${narHashNix32}.nar.zst`;
}
