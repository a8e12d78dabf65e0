/**
 * PURE: work over part of a closure, dependencies first. A path starts only once every reference
 * it has inside the set has succeeded (references outside the set are taken as present already);
 * a failure gives up every path that depends on it, transitively. Used by the server's mirroring
 * (fetches from upstreams): the server makes a path visible only once its references are there.
 * `floe push` orders the same way, with the server's answers arriving as it goes
 * (cli/push-schedule.ts).
 */

/** A path and its references (base names or full paths, as long as both sides use the same form). */
export type ClosureNode = readonly [path: string, references: readonly string[]];

export class ClosureOrder {
  private readonly refs = new Map<string, readonly string[]>();
  private readonly pending = new Set<string>();
  private readonly running = new Set<string>();
  private readonly succeededPaths = new Set<string>();
  private readonly failedPaths = new Set<string>();

  constructor(nodes: Iterable<ClosureNode>) {
    for (const [path, references] of nodes) {
      this.refs.set(path, references);
      this.pending.add(path);
    }
  }

  /** Up to `max` pending paths whose dependencies have all succeeded, now counted as running. */
  take(max: number): string[] {
    const out: string[] = [];
    for (const path of this.pending) {
      if (out.length >= max) break;
      const ready = this.refs.get(path)!.every((r) => r === path || !this.refs.has(r) || this.succeededPaths.has(r));
      if (ready) out.push(path);
    }
    for (const path of out) {
      this.pending.delete(path);
      this.running.add(path);
    }
    return out;
  }

  succeed(path: string): void {
    this.running.delete(path);
    this.succeededPaths.add(path);
  }

  /** Marks `path` failed (running or not yet started); returns the pending paths given up because of it. */
  fail(path: string): string[] {
    this.running.delete(path);
    this.pending.delete(path);
    this.failedPaths.add(path);
    const givenUp: string[] = [];
    let changed = true;
    while (changed) {
      changed = false;
      for (const p of this.pending) {
        if (this.refs.get(p)!.some((r) => r !== p && this.failedPaths.has(r))) {
          this.pending.delete(p);
          this.failedPaths.add(p);
          givenUp.push(p);
          changed = true;
        }
      }
    }
    return givenUp;
  }

  get runningCount(): number {
    return this.running.size;
  }

  /** Paths not started. Once nothing runs and `take` gives nothing, none of them can: a reference cycle. */
  get remaining(): string[] {
    return [...this.pending];
  }
}

/**
 * Runs `work` over `nodes` in closure order, at most `limit` at a time, starting each path as soon
 * as its dependencies are done. `onGivenUp` hears of each path skipped because a dependency failed.
 * Returns the paths that could never start (a reference cycle between distinct paths; Nix never
 * makes one).
 */
export async function inClosureOrder(
  nodes: Iterable<ClosureNode>,
  limit: number,
  work: (path: string) => Promise<boolean>,
  onGivenUp: (path: string) => void = () => {},
  alreadyFailed: Iterable<string> = [],
): Promise<string[]> {
  const order = new ClosureOrder(nodes);
  for (const path of alreadyFailed) for (const p of order.fail(path)) onGivenUp(p);
  return new Promise<string[]>((resolve) => {
    const pump = (): void => {
      for (const path of order.take(limit - order.runningCount)) {
        work(path).then(
          (ok) => settle(path, ok),
          () => settle(path, false),
        );
      }
      if (order.runningCount === 0) resolve(order.remaining);
    };
    const settle = (path: string, ok: boolean): void => {
      if (ok) order.succeed(path);
      else for (const p of order.fail(path)) onGivenUp(p);
      pump();
    };
    pump();
  });
}

/**
 * PURE: the paths of a set in an order that removes referrers before what they reference, so that
 * what is left after any prefix is still closed under references (a slice emptied in batches never
 * serves a path whose references are gone). Kahn's algorithm on the reverse graph, O(paths + refs);
 * self-references and references outside the set are ignored. A cycle (never in a Nix store) goes last.
 */
export function referrersFirst(nodes: Iterable<ClosureNode>): string[] {
  const refs = new Map<string, readonly string[]>();
  for (const [path, references] of nodes) refs.set(path, references);
  const referrers = new Map<string, number>();
  for (const [path, references] of refs)
    for (const r of new Set(references)) if (r !== path && refs.has(r)) referrers.set(r, (referrers.get(r) ?? 0) + 1);
  const order = [...refs.keys()].filter((p) => !referrers.get(p));
  for (let i = 0; i < order.length; i++) {
    const path = order[i]!;
    for (const r of new Set(refs.get(path)!)) {
      if (r === path || !refs.has(r)) continue;
      const left = referrers.get(r)! - 1;
      referrers.set(r, left);
      if (left === 0) order.push(r);
    }
  }
  if (order.length < refs.size) {
    const placed = new Set(order);
    for (const p of refs.keys()) if (!placed.has(p)) order.push(p);
  }
  return order;
}
