/**
 * PURE: the path grammar of `/cache`, for the route table in cache-handler.ts. A path is
 * `/cache/<rest>` (the caller's unified view) or `/cache/<org>/<slice>/<rest>` (one slice);
 * `<rest>` is matched against each route's pattern, whose segments are literals or
 * `:name<suffix>` (`:hash.narinfo` matches `abc.narinfo` with hash = `abc`). The matched pattern
 * is also the metrics label, so labels stay a closed set whatever the path.
 */

/** First segments that are never an org name: they start a unified-view path. */
export const UNIFIED_TOP: ReadonlySet<string> = new Set(['nar', 'log', 'realisations', 'build-trace-v2', 'debuginfo']);

interface Segment {
  literal?: string;
  param?: string;
  suffix?: string;
}

export interface Pattern {
  text: string;
  segments: Segment[];
}

export function compilePattern(text: string): Pattern {
  const segments = text.split('/').map((s): Segment => {
    if (!s.startsWith(':')) return { literal: s };
    const m = /^:([A-Za-z]+)(.*)$/.exec(s);
    if (!m) throw new Error(`bad route pattern segment ${s}`);
    return { param: m[1]!, suffix: m[2]! };
  });
  return { text, segments };
}

/** The parameters of `rest` under `pattern`, or undefined when it does not match. */
export function matchPattern(pattern: Pattern, rest: readonly string[]): Record<string, string> | undefined {
  if (rest.length !== pattern.segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < rest.length; i++) {
    const seg = pattern.segments[i]!;
    const part = rest[i]!;
    if (seg.literal !== undefined) {
      if (part !== seg.literal) return undefined;
    } else {
      if (!part.endsWith(seg.suffix!)) return undefined;
      params[seg.param!] = part.slice(0, part.length - seg.suffix!.length);
    }
  }
  return params;
}

/** Where a /cache path points: the view it names, and the segments left for the route patterns. */
export interface CachePath {
  /** The `<org>/<slice>` prefix, if the path names one slice. */
  slice?: { org: string; slice: string };
  rest: string[];
  /** Empty, `.` or `..` segments, or a slice prefix without a rest: nothing can be found here. */
  invalid: boolean;
  /** `/cache` or `/cache/:org/:slice`, for labels. */
  prefix: '/cache' | '/cache/:org/:slice';
}

export function splitCachePath(pathname: string): CachePath {
  const parts = pathname.slice('/cache'.length).split('/').slice(1);
  const bad = parts.length === 0 || parts.some((x) => x === '' || x === '.' || x === '..');
  if (parts.length === 1 || UNIFIED_TOP.has(parts[0]!)) return { rest: parts, invalid: bad, prefix: '/cache' };
  if (parts.length < 3) return { rest: parts, invalid: true, prefix: '/cache' };
  const slice = { org: parts[0]!, slice: parts[1]! };
  return { slice, rest: parts.slice(2), invalid: bad, prefix: '/cache/:org/:slice' };
}
