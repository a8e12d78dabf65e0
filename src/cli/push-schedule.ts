/**
 * PURE: which paths `floe push` uploads next. The server's answers to the missing-queries come in
 * batches (dependencies first), so uploads start while later batches are still being asked about.
 * A path starts only once each of its references in the closure is known to be in the cache
 * (present there, or uploaded by this push): the server makes a path visible only with its
 * references, and refuses it otherwise. A reference outside the closure is taken as present.
 *
 * Concurrency adapts to size: at most `jobs` large paths at a time, small ones fill up to
 * `smallJobs` uploads in all. A small path costs the server a request and a commit rather than
 * bandwidth, so more of them in flight hide the round trips. Among ready paths the largest go
 * first, so the longest upload overlaps the many small ones instead of trailing them.
 */

export interface ScheduledPath {
  path: string;
  references: readonly string[];
  narSize: number;
}

export interface ScheduleLimits {
  /** Large paths uploading at once. */
  jobs: number;
  /** Uploads at once in all, small ones included (≥ jobs). */
  smallJobs: number;
  /** A path below this NAR size is small. */
  smallBytes: number;
}

type State = 'unknown' | 'missing' | 'running' | 'done' | 'failed';

/** Store paths in dependency order (every reference before its referrers), for the missing-queries. */
export function dependencyOrder(nodes: readonly ScheduledPath[]): string[] {
  const byPath = new Map(nodes.map((n) => [n.path, n]));
  const seen = new Set<string>();
  const out: string[] = [];
  for (const root of nodes) {
    if (seen.has(root.path)) continue;
    // Iterative depth-first walk: a closure can be deep enough to overflow the stack.
    const stack: Array<{ path: string; next: number }> = [{ path: root.path, next: 0 }];
    seen.add(root.path);
    while (stack.length > 0) {
      const top = stack.at(-1)!;
      const refs = byPath.get(top.path)!.references;
      if (top.next < refs.length) {
        const ref = refs[top.next++]!;
        if (!seen.has(ref) && byPath.has(ref)) {
          seen.add(ref);
          stack.push({ path: ref, next: 0 });
        }
        continue;
      }
      stack.pop();
      out.push(top.path);
    }
  }
  return out;
}

export class PushSchedule {
  private readonly nodes = new Map<string, ScheduledPath>();
  private readonly state = new Map<string, State>();
  private readonly dependents = new Map<string, string[]>();
  /** References in the closure not done yet, per path. */
  private readonly waiting = new Map<string, number>();
  /** Given up because a dependency failed, while the server had not said yet whether it holds them. */
  private readonly doomed = new Set<string>();
  /** Ready large paths, largest first; ready small ones in the order they became ready. */
  private readonly readyLarge: ScheduledPath[] = [];
  private readonly readySmall: ScheduledPath[] = [];
  private smallHead = 0;
  private runningLarge = 0;
  private runningAll = 0;
  private unknownCount: number;

  private readonly limits: ScheduleLimits;

  constructor(nodes: Iterable<ScheduledPath>, limits: ScheduleLimits) {
    this.limits = { ...limits };
    for (const n of nodes) {
      this.nodes.set(n.path, n);
      this.state.set(n.path, 'unknown');
    }
    for (const n of this.nodes.values()) {
      let count = 0;
      for (const r of new Set(n.references)) {
        if (r === n.path || !this.nodes.has(r)) continue;
        count++;
        const list = this.dependents.get(r);
        if (list) list.push(n.path);
        else this.dependents.set(r, [n.path]);
      }
      this.waiting.set(n.path, count);
    }
    this.unknownCount = this.nodes.size;
  }

  /** The server already holds `path` (or fetched it itself): it counts as done. */
  present(path: string): void {
    const s = this.state.get(path);
    if (s !== 'unknown') return;
    this.unknownCount--;
    this.doomed.delete(path);
    this.finish(path);
  }

  /**
   * The server lacks `path`: it will be uploaded once its references are done. Returns true when
   * it is given up instead, because one of its dependencies failed already.
   */
  missing(path: string): boolean {
    if (this.state.get(path) !== 'unknown') return false;
    this.unknownCount--;
    if (this.doomed.delete(path)) {
      this.state.set(path, 'failed');
      return true;
    }
    this.state.set(path, 'missing');
    if (this.waiting.get(path) === 0) this.makeReady(path);
    return false;
  }

  /** From now on at most `n` uploads at once in all (paths running stay running). */
  setSmallJobs(n: number): void {
    this.limits.smallJobs = Math.max(n, this.limits.jobs);
  }

  /** Ready paths within the limits, now counted as running (large ones first, largest first). */
  take(): string[] {
    const out: string[] = [];
    const { jobs, smallJobs } = this.limits;
    // (A ready path given up since, by a `fail` of it before it started, is skipped.)
    while (this.readyLarge.length > 0 && this.runningLarge < jobs && this.runningAll < smallJobs) {
      const n = this.readyLarge.shift()!;
      if (this.state.get(n.path) !== 'missing') continue;
      this.runningLarge++;
      this.start(n, out);
    }
    while (this.smallHead < this.readySmall.length && this.runningAll < smallJobs) {
      const n = this.readySmall[this.smallHead++]!;
      if (this.state.get(n.path) === 'missing') this.start(n, out);
    }
    if (this.smallHead > 1024 && this.smallHead * 2 > this.readySmall.length) {
      this.readySmall.splice(0, this.smallHead);
      this.smallHead = 0;
    }
    return out;
  }

  succeed(path: string): void {
    if (this.state.get(path) !== 'running') return;
    this.stop(path);
    this.finish(path);
  }

  /**
   * Marks a running (or not yet started) path failed; returns the paths known to be missing that
   * are given up because of it, transitively. Dependents the server has not answered for yet are
   * given up when it says they are missing (see `missing`); present ones simply count as done.
   */
  fail(path: string): string[] {
    const s = this.state.get(path);
    if (s === 'done' || s === 'failed') return [];
    if (s === 'running') this.stop(path);
    if (s === 'unknown') this.unknownCount--;
    this.state.set(path, 'failed');
    const givenUp: string[] = [];
    const stack = [...(this.dependents.get(path) ?? [])];
    while (stack.length > 0) {
      const p = stack.pop()!;
      const ps = this.state.get(p);
      if (ps === 'missing') {
        this.state.set(p, 'failed');
        givenUp.push(p);
      } else if (ps === 'unknown' && !this.doomed.has(p)) {
        this.doomed.add(p);
      } else continue;
      stack.push(...(this.dependents.get(p) ?? []));
    }
    return givenUp;
  }

  get running(): number {
    return this.runningAll;
  }

  /** Paths the server has not answered for yet. */
  get unknown(): number {
    return this.unknownCount;
  }

  /**
   * Missing paths that can never start: nothing runs, and each waits on a reference that is not
   * done (a reference cycle between distinct paths; Nix never makes one). Meaningful once nothing
   * is unknown and nothing runs.
   */
  stuck(): string[] {
    return [...this.state].filter(([, s]) => s === 'missing').map(([p]) => p);
  }

  private start(n: ScheduledPath, out: string[]): void {
    this.state.set(n.path, 'running');
    this.runningAll++;
    out.push(n.path);
  }

  private stop(path: string): void {
    this.runningAll--;
    if (!this.isSmall(this.nodes.get(path)!)) this.runningLarge--;
  }

  private finish(path: string): void {
    this.state.set(path, 'done');
    for (const d of this.dependents.get(path) ?? []) {
      const left = this.waiting.get(d)! - 1;
      this.waiting.set(d, left);
      if (left === 0 && this.state.get(d) === 'missing') this.makeReady(d);
    }
  }

  private isSmall(n: ScheduledPath): boolean {
    return n.narSize < this.limits.smallBytes;
  }

  private makeReady(path: string): void {
    const n = this.nodes.get(path)!;
    if (this.isSmall(n)) {
      this.readySmall.push(n);
      return;
    }
    // Few paths are large: a sorted insert is cheap.
    let i = 0;
    while (i < this.readyLarge.length && this.readyLarge[i]!.narSize >= n.narSize) i++;
    this.readyLarge.splice(i, 0, n);
  }
}
