/**
 * Attic's API (`/_api/v1/...`), as the `attic` client and magic-nix-cache speak it, over Floe's
 * cache service: the same writeTarget authorization, NAR verification, closure completeness,
 * quotas, policies and audit as `PUT /api/v1/cache/paths`. Contract: docs/compat/attic.md.
 */
import type { IncomingMessage } from 'node:http';
import type { Context, Hono } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { FloeError, InvalidInput, NotFound, TooLarge } from '../../../errors.js';
import type { CacheService } from '../../../cache/service.js';
import type { OrgService } from '../../../org/service.js';
import type { PeerIds } from '../../../org/uuid-v7.js';
import type { SliceResource } from '../../../policy/actions.js';
import type { Principal } from '../../../identity/principal.js';
import type { Limits } from '../../../config.js';
import type { AppEnv } from '../../context.js';
import { readJson } from '../../body.js';
import { errorBody, logFailure } from '../../errors.js';
import type { Logger } from '../../../log.js';
import {
  atticCacheName,
  atticErrorBody,
  cacheConfigOf,
  DEFAULT_SLICE_NAME,
  getMissingPathsBody,
  metadataOfUpload,
  parseAtticCacheName,
  parsePreambleSize,
  parseStorePathHashes,
  parseUploadNarInfo,
  uploadResultOf,
} from './attic-mapping.js';

export interface AtticDeps {
  cache: CacheService;
  orgs: OrgService;
  peerIds: PeerIds;
  limits: Limits;
  publicUrl: () => string;
  /** The `Priority` of nix-cache-info, also Attic's cache priority. */
  priority: number;
  /** Names of the upstream caches' keys: the attic client skips paths they signed (Floe mirrors them). */
  upstreamKeyNames: () => Promise<string[]>;
  log: Logger;
}

const NO_SUCH_CACHE = 'The requested cache does not exist.';

/** Errors in Attic's JSON shape (the client prints `error: message`); denied reads look missing. */
function atticRoute(log: Logger, fn: (c: Context<AppEnv>) => Promise<Response>) {
  return async (c: Context<AppEnv>) => {
    try {
      return await fn(c);
    } catch (err) {
      const body = errorBody(err, c.get('requestId') ?? '-');
      logFailure(log, c.get('requestId') ?? '-', body, err);
      const message = err instanceof FloeError && err.code === 'not_found' ? NO_SUCH_CACHE : body.message;
      const headers: Record<string, string> = { 'Cache-Control': 'no-store' };
      if (body.retryAfterSeconds !== undefined) headers['Retry-After'] = String(body.retryAfterSeconds);
      return c.json(atticErrorBody(body.status, body.code, message), body.status as ContentfulStatusCode, headers);
    }
  };
}

/** Reads exactly `size` bytes (the JSON preamble), then hands on the rest of the body as the NAR. */
async function splitPreamble(
  req: IncomingMessage,
  size: number,
): Promise<{ head: string; rest: AsyncIterable<Buffer> }> {
  const it = (req as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  let buf = Buffer.alloc(0);
  while (buf.length < size) {
    const r = await it.next();
    if (r.done) throw new InvalidInput('body', `ended inside the ${size}-byte X-Attic-Nar-Info preamble`);
    buf = Buffer.concat([buf, r.value as Buffer]);
  }
  const tail = buf.subarray(size);
  async function* rest() {
    if (tail.length) yield tail;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value as Buffer;
    }
  }
  return { head: buf.subarray(0, size).toString('utf8'), rest: rest() };
}

export function atticRoutes(app: Hono<AppEnv>, deps: AtticDeps): void {
  /** The slice an Attic cache name designates, if the caller may use it (else the one miss). */
  const sliceOf = async (p: Principal, name: string): Promise<SliceResource> => {
    const ref = parseAtticCacheName(name);
    let slice: SliceResource | undefined;
    if (ref?.kind === 'slice') slice = await deps.orgs.findSlice(ref.org, ref.slice);
    if (ref?.kind === 'project') {
      const orgName = await deps.peerIds.orgNameByUuid(ref.orgUuid);
      slice = orgName ? await deps.orgs.findSlice(orgName, DEFAULT_SLICE_NAME) : undefined;
    }
    if (!slice || !deps.cache.mayUseSlice(p, slice)) throw new NotFound();
    return slice;
  };

  app.get(
    '/_api/v1/cache-config/:cache',
    atticRoute(deps.log, async (c) => {
      const slice = await sliceOf(c.get('principal'), c.req.param('cache')!);
      const keys = (await deps.cache.orgPublicKeys(slice.org.name)) ?? [];
      const base = deps.publicUrl();
      return c.json(
        cacheConfigOf({
          substituterUrl: `${base}/cache/${slice.org.name}/${slice.slice.name}`,
          apiUrl: `${base}/`,
          publicKey: keys[0],
          isPublic: slice.slice.public,
          priority: deps.priority,
          upstreamKeyNames: await deps.upstreamKeyNames(),
        }),
        200,
        { 'Cache-Control': 'no-store', 'X-Attic-Cache-Name': atticCacheName(slice.org.name, slice.slice.name) },
      );
    }),
  );

  app.post(
    '/_api/v1/get-missing-paths',
    atticRoute(deps.log, async (c) => {
      const p = c.get('principal');
      const raw = await readJson(c.env.incoming, 16 * deps.limits.maxSmallBodyBytes);
      const parsed = getMissingPathsBody.safeParse(raw);
      if (!parsed.success) throw new InvalidInput('body', 'expected {"cache": string, "store_path_hashes": [string]}');
      if (parsed.data.store_path_hashes.length > deps.limits.maxBatchPaths) {
        throw new InvalidInput('store_path_hashes', `at most ${deps.limits.maxBatchPaths} per request`);
      }
      const slice = await sliceOf(p, parsed.data.cache);
      const target = await deps.cache.uploads.writeTarget(p, { kind: 'slice', slice });
      const missing = await deps.cache.uploads.missingHashes(
        target,
        parseStorePathHashes(parsed.data.store_path_hashes),
      );
      return c.json({ missing_paths: missing });
    }),
  );

  app.put(
    '/_api/v1/upload-path',
    atticRoute(deps.log, async (c) => {
      const p = c.get('principal');
      const req = c.env.incoming;
      const maxInfo = 4 * deps.limits.maxSmallBodyBytes;
      const preamble = parsePreambleSize(c.req.header('x-attic-nar-info-preamble-size'), maxInfo);
      let infoText: string;
      let body: AsyncIterable<Buffer>;
      if (preamble !== undefined) {
        ({ head: infoText, rest: body } = await splitPreamble(req, preamble));
      } else {
        const header = c.req.header('x-attic-nar-info');
        if (header === undefined) {
          throw new InvalidInput(
            'X-Attic-Nar-Info',
            'send the path info in this header, or as a preamble sized by X-Attic-Nar-Info-Preamble-Size',
          );
        }
        if (header.length > maxInfo) throw new TooLarge(`X-Attic-Nar-Info longer than ${maxInfo} bytes`);
        infoText = header;
        body = req;
      }
      const info = parseUploadNarInfo(infoText);
      const slice = await sliceOf(p, info.cache);
      const meta = metadataOfUpload(info);
      const controller = new AbortController();
      req.once('close', () => {
        if (!req.complete) controller.abort();
      });
      // Attic sends the NAR as `nix-store --dump` makes it; ingest sniffs any compression anyway.
      const target = await deps.cache.uploads.writeTarget(p, { kind: 'slice', slice });
      const { result, nar } = await deps.cache.uploads.uploadPath(p, target, meta, body, undefined, controller.signal);
      return c.json(uploadResultOf(result, nar.narSize));
    }),
  );
}
