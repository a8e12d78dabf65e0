/**
 * Upstream binary caches (server-wide, managed by the server admin): their narinfos are fetched
 * and verified against the keys trusted for them (upstream-verify.ts), their NARs streamed into
 * ingestion. Mirroring into a slice is mirroring.ts's job; this module only talks to upstreams.
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { Conflict, InvalidInput, NotFound } from '../errors.js';
import { MAX_NARINFO_BYTES, type NarInfo } from '../nix/narinfo.js';
import type { StorePathBase, StorePathHash } from '../nix/store-path.js';
import { isUniqueViolation, parseName } from '../org/service.js';
import type { Db } from '../storage/types.js';
import { type TrustedKey, parseTrustedKey, verifyUpstreamNarInfo } from './upstream-verify.js';

export interface Upstream {
  id: string;
  name: string;
  url: string;
  publicKeys: string[];
  keys: TrustedKey[];
  pullThrough: boolean;
  priority: number;
}

export type Lookup =
  | { kind: 'found'; upstream: Upstream; info: NarInfo }
  | { kind: 'refused'; reason: string }
  | { kind: 'absent' };

const LIST_TTL_MS = 2_000;

/** An upstream is not trusted to be honest: a narinfo body is read up to this size only. */
async function readBounded(res: Response, limit: number): Promise<string | undefined> {
  if (!res.body) return '';
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > limit) {
      await res.body.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
}

export class UpstreamService {
  private cached: { at: number; list: Upstream[] } | undefined;

  constructor(
    private readonly db: Db,
    private readonly timeoutMs = 30_000,
  ) {}

  async list(): Promise<Upstream[]> {
    if (this.cached && Date.now() - this.cached.at < LIST_TTL_MS) return this.cached.list;
    const rows = await this.db.selectFrom('upstreams').selectAll().orderBy('priority').orderBy('name').execute();
    const list = rows.map((r) => {
      const publicKeys = r.public_keys.split(' ').filter(Boolean);
      return {
        id: r.id,
        name: r.name,
        url: r.url,
        publicKeys,
        keys: publicKeys.map(parseTrustedKey),
        pullThrough: r.pull_through === 1,
        priority: Number(r.priority),
      };
    });
    this.cached = { at: Date.now(), list };
    return list;
  }

  async add(input: {
    name: string;
    url: string;
    publicKeys: string[];
    pullThrough?: boolean;
    priority?: number;
  }): Promise<Upstream> {
    const name = parseName('upstream', input.name);
    let url: URL;
    try {
      url = new URL(input.url);
    } catch {
      throw new InvalidInput('url', `not a URL: ${JSON.stringify(input.url.slice(0, 200))}`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new InvalidInput('url', 'must be http(s)');
    if (url.username || url.password || url.search || url.hash)
      throw new InvalidInput('url', 'no credentials, query or fragment');
    if (input.publicKeys.length === 0)
      throw new InvalidInput(
        'publicKeys',
        'at least one trusted key is needed: paths from an upstream are only accepted signed',
      );
    const keys = input.publicKeys.map((k) => parseTrustedKey(k));
    const row = {
      id: randomUUID(),
      name,
      url: url.toString().replace(/\/+$/, ''),
      public_keys: keys.map((k) => `${k.name}:${Buffer.from(k.publicKey).toString('base64')}`).join(' '),
      pull_through: input.pullThrough ? 1 : 0,
      priority: input.priority ?? 50,
      created_at: new Date().toISOString(),
    };
    try {
      await this.db.insertInto('upstreams').values(row).execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw new Conflict(`upstream ${name} already exists`);
      throw err;
    }
    this.cached = undefined;
    return (await this.list()).find((u) => u.id === row.id)!;
  }

  async remove(name: string): Promise<void> {
    const r = await this.db.deleteFrom('upstreams').where('name', '=', name).executeTakeFirst();
    if (Number(r.numDeletedRows) === 0) throw new NotFound();
    this.cached = undefined;
  }

  private async get(url: string): Promise<Response> {
    return fetch(url, { redirect: 'follow', signal: AbortSignal.timeout(this.timeoutMs) });
  }

  /** The first upstream (by priority) with a verified narinfo for `storePath` (or for a bare hash part). */
  async lookup(storePath: StorePathBase | StorePathHash, upstreams?: Upstream[]): Promise<Lookup> {
    const reasons: string[] = [];
    for (const up of upstreams ?? (await this.list())) {
      let res: Response;
      try {
        res = await this.get(`${up.url}/${storePath.slice(0, 32)}.narinfo`);
      } catch (err) {
        reasons.push(`${up.name}: unreachable (${(err as Error).message})`);
        continue;
      }
      if (res.status === 404 || res.status === 403 || res.status === 410) {
        await res.body?.cancel();
        continue;
      }
      if (!res.ok) {
        await res.body?.cancel();
        reasons.push(`${up.name}: HTTP ${res.status}`);
        continue;
      }
      const text = await readBounded(res, MAX_NARINFO_BYTES);
      if (text === undefined) {
        reasons.push(`${up.name}: narinfo larger than ${MAX_NARINFO_BYTES} bytes`);
        continue;
      }
      const verdict = verifyUpstreamNarInfo(text, storePath, up.keys);
      if (verdict.ok) return { kind: 'found', upstream: up, info: verdict.info };
      reasons.push(`${up.name}: ${verdict.reason}`);
    }
    return reasons.length > 0 ? { kind: 'refused', reason: reasons.join('; ') } : { kind: 'absent' };
  }

  /** The NAR file a verified narinfo points to, as sent by the upstream (still compressed). */
  async openNar(up: Upstream, info: NarInfo): Promise<AsyncIterable<Buffer>> {
    const url = new URL(info.url, `${up.url}/`);
    const base = new URL(`${up.url}/`);
    if (url.origin !== base.origin)
      throw new InvalidInput('URL', `upstream ${up.name} points outside itself: ${info.url.slice(0, 100)}`);
    const res = await this.get(url.toString());
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      throw new InvalidInput('NAR', `upstream ${up.name} answered HTTP ${res.status} for ${info.url.slice(0, 100)}`);
    }
    return Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>) as AsyncIterable<Buffer>;
  }
}
