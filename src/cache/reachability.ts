/**
 * PURE garbage-collection planning: which paths stay (reachable from a root through references,
 * within their slice: slices are closure-complete) and which NAR contents no row needs any more.
 * No I/O: `gc.ts` loads the rows, calls these, and re-checks inside the delete transaction.
 */

export interface GcPath {
  slice: string;
  org: string;
  /** Hash part of the store path. */
  hash: string;
  /** Hash parts of the references (self-references allowed). */
  refs: string[];
  /** Milliseconds since the epoch. */
  createdAt: number;
  narHash: string;
}

export interface GcPolicy {
  now: number;
  /** Nothing younger than this is ever collected, whatever the retention. */
  graceMs: number;
  /** Per org: pushes younger than this are roots; null or missing = every push is a root. */
  retentionMs: ReadonlyMap<string, number | null>;
}

export const pathKey = (slice: string, hash: string): string => `${slice}/${hash}`;

export interface PathPlan {
  /** How many roots (explicit and recent) are present. */
  roots: number;
  /** Everything reachable from a root. */
  keep: ReadonlySet<GcPath>;
  collect: GcPath[];
}

/** Is this path a root because it was pushed recently enough (or its org keeps every push)? */
export function isRecentRoot(p: Pick<GcPath, 'org' | 'createdAt'>, policy: GcPolicy): boolean {
  const retention = policy.retentionMs.get(p.org);
  if (retention === null || retention === undefined) return true;
  const window = Math.max(retention, policy.graceMs);
  return p.createdAt > policy.now - window;
}

/**
 * Marks from the roots through references; everything unmarked is collectable. Paths are indexed
 * per slice and marked by identity (no key strings per visit): on embedded SQLite GC runs on the
 * event loop, and this is its longest synchronous step (100k paths).
 */
export function planPaths(paths: readonly GcPath[], explicitRoots: ReadonlySet<string>, policy: GcPolicy): PathPlan {
  const bySlice = new Map<string, Map<string, GcPath>>();
  for (const p of paths) {
    let slice = bySlice.get(p.slice);
    if (!slice) bySlice.set(p.slice, (slice = new Map()));
    slice.set(p.hash, p);
  }
  const keep = new Set<GcPath>();
  const stack: GcPath[] = [];
  const mark = (p: GcPath | undefined) => {
    if (p && !keep.has(p)) {
      keep.add(p);
      stack.push(p);
    }
  };
  const roots = new Set<GcPath>();
  for (const key of explicitRoots) {
    const slash = key.indexOf('/');
    const p = bySlice.get(key.slice(0, slash))?.get(key.slice(slash + 1));
    if (p) {
      roots.add(p);
      mark(p);
    }
  }
  for (const p of paths) {
    if (isRecentRoot(p, policy)) {
      roots.add(p);
      mark(p);
    }
  }
  while (stack.length > 0) {
    const p = stack.pop()!;
    const slice = bySlice.get(p.slice)!;
    for (const ref of p.refs) mark(slice.get(ref));
  }
  return { roots: roots.size, keep, collect: paths.filter((p) => !keep.has(p)) };
}

export interface GcNar {
  narHash: string;
  /** Milliseconds since the epoch: the later of creation and the last upload that reused it. */
  lastUsed: number;
}

/** NAR contents that no path row and no pending upload needs, and that are older than the grace period. */
export function planNars(
  nars: readonly GcNar[],
  needed: ReadonlySet<string>,
  policy: Pick<GcPolicy, 'now' | 'graceMs'>,
): GcNar[] {
  return nars.filter((n) => !needed.has(n.narHash) && n.lastUsed <= policy.now - policy.graceMs);
}

export interface GcBlob {
  key: string;
  /** Milliseconds since the epoch. */
  modifiedAt: number;
}

/** Keys Floe writes: NARs under their nix32 NarHash, flake source tarballs and build logs under their SHA-256. */
export function isFloeBlobKey(key: string): boolean {
  return (
    /^[0-9a-df-np-sv-z]{52}\.nar\.zst$/.test(key) ||
    /^tarball-[0-9a-f]{64}\.tar\.gz$/.test(key) ||
    /^log-[0-9a-f]{64}\.log\.zst$/.test(key)
  );
}

/**
 * Blobs in the store that no row knows (crash leftovers, expired tarball uploads), past the grace
 * period. Only keys Floe itself writes: anything else sharing the bucket or directory is not ours.
 */
export function planOrphans(
  blobs: readonly GcBlob[],
  known: ReadonlySet<string>,
  policy: Pick<GcPolicy, 'now' | 'graceMs'>,
): GcBlob[] {
  return blobs.filter((b) => isFloeBlobKey(b.key) && !known.has(b.key) && b.modifiedAt <= policy.now - policy.graceMs);
}

/** Every `/nix/store/<hash>-<name>` string anywhere in a JSON value (release output inventories). */
export function storePathsIn(value: unknown, out: Set<string> = new Set()): Set<string> {
  if (typeof value === 'string') {
    const m = /^\/nix\/store\/([0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+)$/.exec(value);
    if (m) out.add(m[1]!);
  } else if (Array.isArray(value)) {
    for (const v of value) storePathsIn(v, out);
  } else if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) storePathsIn(v, out);
  }
  return out;
}
