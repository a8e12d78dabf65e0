/**
 * PURE: which sources a caller's unified substituter (`/cache`) consults, and in which order.
 *
 * A caller only ever receives content from sources it (or its org's admins) chose:
 * - a token of org A: the token's slices first (a slice-limited token stops there, then follows),
 *   then A's `default`, then A's slices marked "in view" by priority, then the public slices of
 *   other orgs that A follows, in A's order. Deploy-only tokens consult all of A's slices (the
 *   policy still limits them to their outputs' closures).
 * - anonymous callers and the server admin: only the slices the server admin listed as global.
 * Nothing else: another org's upload never reaches a caller through a view that did not include
 * it, and within a view the first source holding a path wins, whatever the upload order.
 */
import type { Principal } from '../identity/principal.js';
import { DEFAULT_SLICE } from '../org/names.js';
import type { SliceResource } from '../policy/actions.js';

/** Where a /cache request looks: the caller's unified view, or one slice (its URL names it). */
export type CacheView = { kind: 'unified' } | { kind: 'slice'; slice: SliceResource };

export interface ViewSlice {
  id: string;
  orgId: string;
  name: string;
  inView: boolean;
  priority: number;
}

export interface ViewSources {
  /** The caller's org's slices (empty for callers without an org). */
  own: readonly ViewSlice[];
  /** Other orgs' slices the caller's org follows, with the org's priority for each. */
  follows: ReadonlyArray<{ sliceId: string; priority: number }>;
  /** Slices served to anonymous callers, with their global priority. */
  globals: ReadonlyArray<{ sliceId: string; priority: number }>;
}

/** Slice ids in the order the view consults them. */
export function viewOrder(p: Principal, sources: ViewSources): string[] {
  if (p.kind !== 'token') return [...sources.globals].sort(byPriority).map((g) => g.sliceId);
  const own = sources.own.filter((s) => s.orgId === p.org.id);
  const ordered: string[] = [];
  const add = (id: string | undefined) => {
    if (id !== undefined && !ordered.includes(id)) ordered.push(id);
  };
  const byName = new Map(own.map((s) => [s.name, s]));
  if (p.slices !== null && !p.deploy) {
    // Slices are a ceiling: a limited token's view holds its slices, then what its org follows.
    for (const name of p.slices) add(byName.get(name)?.id);
  } else {
    add(byName.get(DEFAULT_SLICE)?.id);
    const rest = own.filter((s) => s.name !== DEFAULT_SLICE && (s.inView || p.deploy !== undefined));
    for (const s of [...rest].sort(
      (a, b) => a.priority - b.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
    ))
      add(s.id);
  }
  for (const f of [...sources.follows].sort(byPriority)) add(f.sliceId);
  return ordered;
}

function byPriority(a: { sliceId: string; priority: number }, b: { sliceId: string; priority: number }): number {
  return a.priority - b.priority || (a.sliceId < b.sliceId ? -1 : a.sliceId > b.sliceId ? 1 : 0);
}

/** Keeps the rows whose slice is in the view, in view order. */
export function inViewOrder<T extends { slice_id: string }>(
  rows: readonly T[],
  order: ReadonlyMap<string, number>,
): T[] {
  const kept = rows.filter((r) => order.has(r.slice_id));
  return kept.length < 2 ? kept : kept.sort((a, b) => order.get(a.slice_id)! - order.get(b.slice_id)!);
}
