/**
 * A streaming NAR validator: feed it chunks as they arrive, it checks the archive grammar
 * (nix src/libutil/archive.cc, doc/manual/source/protocols/nix-archive) without buffering file
 * contents. It rejects what Nix's own parser rejects: bad magic, unknown tags, non-zero padding,
 * unsorted or duplicate directory entries, invalid names, trailing bytes, truncation.
 *
 * The grammar is written as a generator that asks the driver for "read n bytes" (small tokens)
 * or "skip n bytes" (file contents, never copied), so it reads like the spec and stays O(1) in
 * memory however large the archive.
 */
import { InvalidInput } from '../errors.js';

type Request = { kind: 'read'; n: number } | { kind: 'skip'; n: number };
type Grammar = Generator<Request, void, Buffer>;

export const NAR_MAGIC = 'nix-archive-1';
const MAX_TOKEN = 64;
const MAX_NAME = 255;
const MAX_TARGET = 4095;
const MAX_DEPTH = 256;

export interface NarStats {
  files: number;
  directories: number;
  symlinks: number;
}

class NarSyntaxError extends Error {}

function* readInt(): Generator<Request, number, Buffer> {
  const b = yield { kind: 'read', n: 8 };
  const v = b.readBigUInt64LE(0);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new NarSyntaxError('integer too large');
  return Number(v);
}

function* readPadding(len: number): Generator<Request, void, Buffer> {
  const pad = (8 - (len % 8)) % 8;
  if (pad === 0) return;
  const p = yield { kind: 'read', n: pad };
  for (const byte of p) if (byte !== 0) throw new NarSyntaxError('non-zero padding');
}

function* readBytes(max: number, what: string): Generator<Request, Buffer, Buffer> {
  const len = yield* readInt();
  if (len > max) throw new NarSyntaxError(`${what} longer than ${max} bytes`);
  const data = len === 0 ? Buffer.alloc(0) : Buffer.from(yield { kind: 'read', n: len });
  yield* readPadding(len);
  return data;
}

function* readToken(): Generator<Request, string, Buffer> {
  return (yield* readBytes(MAX_TOKEN, 'tag')).toString('latin1');
}

function* expect(token: string): Generator<Request, void, Buffer> {
  const got = yield* readToken();
  if (got !== token) throw new NarSyntaxError(`expected "${token}", got ${JSON.stringify(got)}`);
}

/** A NAR listing node, as in Nix's `.ls` files (`{"version":1,"root":<node>}`). */
export type NarListingNode =
  | { type: 'regular'; size: number; executable?: true; narOffset: number }
  | { type: 'directory'; entries: Record<string, NarListingNode> }
  | { type: 'symlink'; target: string };

/** Collects the listing while the grammar runs; `offset()` = bytes consumed so far. */
interface ListingSink {
  offset(): number;
  entries: number;
  maxEntries: number;
}

function* node(
  depth: number,
  stats: NarStats,
  sink?: ListingSink,
): Generator<Request, NarListingNode | undefined, Buffer> {
  if (sink && ++sink.entries > sink.maxEntries)
    throw new NarSyntaxError(`more than ${sink.maxEntries} entries to list`);
  if (depth > MAX_DEPTH) throw new NarSyntaxError(`nesting deeper than ${MAX_DEPTH}`);
  yield* expect('(');
  let listed: NarListingNode | undefined;
  yield* expect('type');
  const type = yield* readToken();
  if (type === 'regular') {
    stats.files++;
    let tag = yield* readToken();
    const executable = tag === 'executable';
    if (executable) {
      yield* expect('');
      tag = yield* readToken();
    }
    if (tag !== 'contents') throw new NarSyntaxError(`expected "contents", got ${JSON.stringify(tag)}`);
    const size = yield* readInt();
    // narOffset: where the file's bytes start, just after their length.
    if (sink)
      listed = {
        type: 'regular',
        size,
        ...(executable ? { executable: true as const } : {}),
        narOffset: sink.offset(),
      };
    if (size > 0) yield { kind: 'skip', n: size };
    yield* readPadding(size);
    yield* expect(')');
  } else if (type === 'symlink') {
    stats.symlinks++;
    yield* expect('target');
    const target = yield* readBytes(MAX_TARGET, 'symlink target');
    if (target.length === 0) throw new NarSyntaxError('empty symlink target');
    if (target.includes(0)) throw new NarSyntaxError('symlink target contains NUL');
    if (sink) listed = { type: 'symlink', target: target.toString('utf8') };
    yield* expect(')');
  } else if (type === 'directory') {
    stats.directories++;
    let previous: Buffer | undefined;
    // No prototype: an entry named "__proto__" is an ordinary key.
    const entries: Record<string, NarListingNode> | undefined = sink ? Object.create(null) : undefined;
    for (;;) {
      const tag = yield* readToken();
      if (tag === ')') break;
      if (tag !== 'entry') throw new NarSyntaxError(`expected "entry" or ")", got ${JSON.stringify(tag)}`);
      yield* expect('(');
      yield* expect('name');
      const name = yield* readBytes(MAX_NAME, 'entry name');
      const shown = JSON.stringify(name.toString('utf8'));
      if (name.length === 0) throw new NarSyntaxError('empty entry name');
      if (name.includes(0x2f) || name.includes(0)) throw new NarSyntaxError(`entry name ${shown} contains "/" or NUL`);
      if (name.equals(Buffer.from('.')) || name.equals(Buffer.from('..')))
        throw new NarSyntaxError(`entry name ${shown} is not allowed`);
      if (previous && Buffer.compare(previous, name) >= 0)
        throw new NarSyntaxError(`directory entries not sorted or duplicated at ${shown}`);
      previous = name;
      yield* expect('node');
      const child = yield* node(depth + 1, stats, sink);
      if (entries && child) entries[name.toString('utf8')] = child;
      yield* expect(')');
    }
    if (entries) listed = { type: 'directory', entries };
  } else {
    throw new NarSyntaxError(`unknown node type ${JSON.stringify(type)}`);
  }
  return listed;
}

function* nar(stats: NarStats, sink?: ListingSink, done?: (root: NarListingNode | undefined) => void): Grammar {
  const magic = yield* readBytes(MAX_TOKEN, 'magic');
  if (magic.toString('latin1') !== NAR_MAGIC) throw new NarSyntaxError('not a NAR (bad magic)');
  const root = yield* node(0, stats, sink);
  done?.(root);
}

/** The `.ls` document of a listing, with Nix 2.8's key order (and its omission of executable: false). */
export function formatNarListing(root: NarListingNode): string {
  return JSON.stringify({ version: 1, root });
}

export class NarValidator {
  readonly stats: NarStats = { files: 0, directories: 0, symlinks: 0 };
  private readonly grammar: Grammar;
  private request: Request | undefined;
  private buffer = Buffer.alloc(0);
  private filled = 0;
  private offset = 0;
  private finished = false;

  private root: NarListingNode | undefined;

  /** `listing`: also build the archive's listing (`.ls`), refusing archives of more entries than `maxEntries`. */
  constructor(opts: { listing?: { maxEntries: number } } = {}) {
    const sink = opts.listing && { offset: () => this.offset, entries: 0, maxEntries: opts.listing.maxEntries };
    this.grammar = nar(this.stats, sink, (root) => (this.root = root));
    this.advance(undefined);
  }

  /** The listing, once the archive ended (only when asked for in the constructor). */
  get listing(): NarListingNode | undefined {
    return this.root;
  }

  /** Bytes consumed so far. */
  get size(): number {
    return this.offset;
  }

  push(chunk: Uint8Array): void {
    let pos = 0;
    while (pos < chunk.length) {
      const req = this.request;
      if (!req) throw this.error('trailing data after the end of the archive');
      if (req.kind === 'skip') {
        const take = Math.min(req.n, chunk.length - pos);
        req.n -= take;
        pos += take;
        this.offset += take;
        if (req.n === 0) this.advance(undefined);
      } else {
        if (this.buffer.length < req.n) this.buffer = Buffer.alloc(Math.max(req.n, 64));
        const take = Math.min(req.n - this.filled, chunk.length - pos);
        this.buffer.set(chunk.subarray(pos, pos + take), this.filled);
        this.filled += take;
        pos += take;
        this.offset += take;
        if (this.filled === req.n) {
          this.filled = 0;
          this.advance(this.buffer.subarray(0, req.n));
        }
      }
    }
  }

  /** Call at end of input: throws if the archive is incomplete. */
  end(): NarStats {
    if (!this.finished) throw this.error('truncated archive');
    return this.stats;
  }

  private advance(value: Buffer | undefined): void {
    let r: IteratorResult<Request, void>;
    try {
      r = this.grammar.next(value as Buffer);
    } catch (err) {
      if (err instanceof NarSyntaxError) throw this.error(err.message);
      throw err;
    }
    if (r.done) {
      this.finished = true;
      this.request = undefined;
    } else {
      this.request = { ...r.value };
    }
  }

  private error(message: string): InvalidInput {
    return new InvalidInput('NAR', `${message} (at byte ${this.offset})`);
  }
}

/** Writes a NAR for an in-memory tree; used by tests and the benchmark to make fixtures. */
export type NarTree =
  | { type: 'regular'; contents: Uint8Array | string; executable?: boolean }
  | { type: 'symlink'; target: string }
  | { type: 'directory'; entries: Record<string, NarTree> };

export function serializeNar(tree: NarTree): Buffer {
  const parts: Buffer[] = [];
  const int = (n: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    parts.push(b);
  };
  const str = (s: Uint8Array | string) => {
    const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : Buffer.from(s);
    int(b.length);
    parts.push(b);
    const pad = (8 - (b.length % 8)) % 8;
    if (pad) parts.push(Buffer.alloc(pad));
  };
  const write = (t: NarTree) => {
    str('(');
    str('type');
    if (t.type === 'regular') {
      str('regular');
      if (t.executable) {
        str('executable');
        str('');
      }
      str('contents');
      str(t.contents);
    } else if (t.type === 'symlink') {
      str('symlink');
      str('target');
      str(t.target);
    } else {
      str('directory');
      const names = Object.keys(t.entries).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      for (const name of names) {
        str('entry');
        str('(');
        str('name');
        str(name);
        str('node');
        write(t.entries[name]!);
        str(')');
      }
    }
    str(')');
  };
  str(NAR_MAGIC);
  write(tree);
  return Buffer.concat(parts);
}
