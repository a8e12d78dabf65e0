/**
 * Release versions and version requirements, as Cargo (and so FlakeHub) read them. Pure.
 * Versions are semver; rolling releases are `0.<minor>.<commit count>+rev-<sha>` (build metadata
 * never affects precedence). Requirements: `*`, `1`, `1.2`, `1.2.3` (caret by default), `^1.2`,
 * `~1.2`, `=1.2.3`, `>=1, <2`, `1.2.*`, `0.1.*`. Prereleases match only when a comparator names a
 * prerelease of the same major.minor.patch.
 */
import semver from 'semver';
import { InvalidInput } from '../errors.js';

export interface Version {
  /** As published, without a leading "v" (build metadata kept). */
  text: string;
  major: number;
  minor: number;
  patch: number;
  prerelease: readonly (string | number)[];
  build: readonly string[];
}

export function parseVersion(text: string): Version {
  const stripped = text.startsWith('v') ? text.slice(1) : text;
  if (stripped.length > 200) throw new InvalidInput('version', 'too long');
  const v = semver.parse(stripped, { loose: false });
  if (!v)
    throw new InvalidInput(
      'version',
      `${JSON.stringify(text.slice(0, 80))} is not a semantic version (X.Y.Z[-pre][+build])`,
    );
  return { text: stripped, major: v.major, minor: v.minor, patch: v.patch, prerelease: v.prerelease, build: v.build };
}

export function compareVersions(a: Version, b: Version): number {
  return semver.compare(a.text, b.text);
}

type Op = '=' | '>' | '>=' | '<' | '<=';
interface Comparator {
  op: Op;
  version: string;
}
interface Partial {
  major: number;
  minor?: number;
  patch?: number;
  pre: string;
}
export interface Requirement {
  text: string;
  comparators: Comparator[];
  /** major.minor.patch of comparators that carry a prerelease (they admit that triple's prereleases). */
  prereleaseTriples: Set<string>;
}

const PARTIAL = /^(\d+)(?:\.(\d+|\*|x))?(?:\.(\d+|\*|x))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;

function parsePartial(text: string): Partial | 'any' {
  if (text === '*' || text === 'x') return 'any';
  const m = PARTIAL.exec(text);
  if (!m) throw new InvalidInput('version requirement', `cannot read ${JSON.stringify(text)}`);
  const num = (s: string | undefined) => (s === undefined || s === '*' || s === 'x' ? undefined : Number(s));
  const minor = num(m[2]);
  const patch = minor === undefined ? undefined : num(m[3]);
  return {
    major: Number(m[1]),
    ...(minor !== undefined ? { minor } : {}),
    ...(patch !== undefined ? { patch } : {}),
    pre: m[4] ? `-${m[4]}` : '',
  };
}

const v3 = (a: number, b: number, c: number, pre = '') => `${a}.${b}.${c}${pre}`;

/** The comparators of one requirement term (Cargo semantics). */
function termComparators(op: string, p: Partial | 'any'): Comparator[] {
  if (p === 'any') return [];
  const { major, minor, patch, pre } = p;
  const lower = v3(major, minor ?? 0, patch ?? 0, pre);
  const next = (): string =>
    minor === undefined
      ? v3(major + 1, 0, 0)
      : patch === undefined
        ? v3(major, minor + 1, 0)
        : v3(major, minor, patch + 1);
  switch (op) {
    case '':
    case '^': {
      let upper: string;
      if (major > 0 || minor === undefined) upper = v3(major + 1, 0, 0);
      else if (minor > 0 || patch === undefined) upper = v3(0, minor + 1, 0);
      else upper = v3(0, 0, patch + 1);
      return [
        { op: '>=', version: lower },
        { op: '<', version: `${upper}-0` },
      ];
    }
    case '~': {
      const upper = minor === undefined ? v3(major + 1, 0, 0) : v3(major, minor + 1, 0);
      return [
        { op: '>=', version: lower },
        { op: '<', version: `${upper}-0` },
      ];
    }
    case '=':
      return patch !== undefined
        ? [{ op: '=', version: lower }]
        : [
            { op: '>=', version: lower },
            { op: '<', version: `${next()}-0` },
          ];
    case '>':
      return patch !== undefined ? [{ op: '>', version: lower }] : [{ op: '>=', version: next() }];
    case '>=':
      return [{ op: '>=', version: lower }];
    case '<':
      return [{ op: '<', version: patch !== undefined ? lower : `${lower}-0` }];
    case '<=':
      return patch !== undefined ? [{ op: '<=', version: lower }] : [{ op: '<', version: `${next()}-0` }];
    default:
      throw new InvalidInput('version requirement', `unknown operator ${JSON.stringify(op)}`);
  }
}

export function parseRequirement(text: string): Requirement {
  const trimmed = text.trim();
  if (trimmed === '' || trimmed.length > 200) throw new InvalidInput('version requirement', 'empty or too long');
  const comparators: Comparator[] = [];
  const prereleaseTriples = new Set<string>();
  for (const raw of trimmed.split(',')) {
    const term = raw.trim();
    const m = /^(\^|~|=|>=|<=|>|<)?\s*v?(.+)$/.exec(term);
    if (!m) throw new InvalidInput('version requirement', `cannot read ${JSON.stringify(term)}`);
    const op = m[1] ?? '';
    const partial = parsePartial(m[2]!);
    // A wildcard in a bare term (`1.2.*`) is the same as ~ on the part before it.
    const effectiveOp = op === '' && /\.(\*|x)/.test(m[2]!) ? '~' : op;
    if (partial !== 'any' && partial.pre)
      prereleaseTriples.add(v3(partial.major, partial.minor ?? 0, partial.patch ?? 0));
    if (partial === 'any' && op !== '')
      throw new InvalidInput('version requirement', `${JSON.stringify(term)}: an operator needs a version`);
    const terms = termComparators(effectiveOp, partial);
    // Bounds semver cannot read (numbers past 2^53, a next major that is, "-01") would make every
    // later match throw: refuse them here, where the requirement is still the client's input.
    const unreadable = terms.find((c) => semver.valid(c.version) === null);
    if (unreadable)
      throw new InvalidInput(
        'version requirement',
        `${JSON.stringify(term.slice(0, 80))}: ${JSON.stringify(unreadable.version.slice(0, 80))} is not a version semver can compare`,
      );
    comparators.push(...terms);
  }
  return { text: trimmed, comparators, prereleaseTriples };
}

export function satisfies(version: Version, req: Requirement): boolean {
  if (version.prerelease.length > 0 && !req.prereleaseTriples.has(v3(version.major, version.minor, version.patch)))
    return false;
  return req.comparators.every((c) => {
    const cmp = semver.compare(version.text, c.version);
    switch (c.op) {
      case '=':
        return cmp === 0;
      case '>':
        return cmp > 0;
      case '>=':
        return cmp >= 0;
      case '<':
        return cmp < 0;
      case '<=':
        return cmp <= 0;
      default:
        return false;
    }
  });
}

/** The highest version satisfying the requirement, or undefined. */
export function resolveRequirement<T extends { version: Version }>(
  candidates: readonly T[],
  req: Requirement,
): T | undefined {
  let best: T | undefined;
  for (const c of candidates) {
    if (satisfies(c.version, req) && (!best || compareVersions(c.version, best.version) > 0)) best = c;
  }
  return best;
}

/** `0.<minor>.<commit count>+rev-<sha>` for rolling releases. */
export function rollingVersion(minor: number, commitCount: number, rev: string): string {
  if (!/^[0-9a-f]{40}$/.test(rev)) throw new InvalidInput('revision', 'expected a 40-character git commit hash');
  return `0.${minor}.${commitCount}+rev-${rev}`;
}

/**
 * A key whose plain string order is semver precedence (build metadata ignored), so the database
 * can find the best match by index. Stored in `releases.version_sort`: never change the encoding
 * without a migration that recomputes it. Hex of a byte string, because PostgreSQL compares text
 * by the database's collation, which orders punctuation and case its own way but [0-9a-f] as bytes.
 * Bytes: major, minor, patch as 16 digits (semver caps them at 2^53), then `~` for a release or
 * `-` and each prerelease identifier: numeric ones `1` + 3-digit length + digits (so length, then
 * digits, decide), others `2` + text + `!` (below every identifier character, so a prefix sorts
 * first). A key that ends sorts below every continuation: fewer identifiers rank lower, as semver says.
 */
export function versionSortKey(v: Pick<Version, 'major' | 'minor' | 'patch' | 'prerelease'>): string {
  const n16 = (x: number) => String(x).padStart(16, '0');
  let key = `${n16(v.major)}${n16(v.minor)}${n16(v.patch)}`;
  if (v.prerelease.length === 0) key += '~';
  else {
    key += '-';
    for (const id of v.prerelease) {
      const s = String(id);
      key += /^[0-9]+$/.test(s) ? `1${String(s.length).padStart(3, '0')}${s}` : `2${s}!`;
    }
  }
  return Buffer.from(key, 'latin1').toString('hex');
}

export interface SortKeyBound {
  key: string;
  inclusive: boolean;
}

/**
 * The range of sort keys a requirement can match: the tightest lower and upper comparator. Every
 * comparator is a bound and a match must pass all of them, so the range is exact but for the
 * prerelease rule (see `prereleaseTriples`), which callers apply on top.
 */
export function requirementBounds(req: Requirement): { lower?: SortKeyBound; upper?: SortKeyBound } {
  let lower: SortKeyBound | undefined;
  let upper: SortKeyBound | undefined;
  for (const c of req.comparators) {
    const key = versionSortKey(parseVersion(c.version));
    if (c.op === '>' || c.op === '>=' || c.op === '=') {
      const inclusive = c.op !== '>';
      if (!lower || key > lower.key || (key === lower.key && !inclusive)) lower = { key, inclusive };
    }
    if (c.op === '<' || c.op === '<=' || c.op === '=') {
      const inclusive = c.op !== '<';
      if (!upper || key < upper.key || (key === upper.key && !inclusive)) upper = { key, inclusive };
    }
  }
  return { ...(lower ? { lower } : {}), ...(upper ? { upper } : {}) };
}

/**
 * SQL LIKE patterns over sort keys for the prerelease rule: releases (keys end in `~`, hex 7e) and
 * prereleases of the triples the requirement names (key prefix: the triple, then `-`, hex 2d).
 * Hex holds no LIKE wildcard, and the last two hex digits are exactly the last byte.
 */
export function admittedKeyPatterns(req: Requirement): string[] {
  const hex = (s: string) => Buffer.from(s, 'latin1').toString('hex');
  const triples = [...req.prereleaseTriples].map((t) => {
    const [major, minor, patch] = t.split('.').map(Number) as [number, number, number];
    return `${versionSortKey({ major, minor, patch, prerelease: [] }).slice(0, -2)}${hex('-')}%`;
  });
  return [`%${hex('~')}`, ...triples];
}
