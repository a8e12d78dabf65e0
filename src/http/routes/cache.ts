/**
 * The Nix binary cache protocol, at `/cache` (unified: every slice the caller may read) and at
 * `/cache/<org>/<slice>` (one slice). Reads that are denied answer exactly like misses.
 */
import { pipeline } from 'node:stream/promises';
import type { Context } from 'hono';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { InvalidInput } from '../../errors.js';
import { missResponse } from '../errors.js';
import { formatCacheInfo } from '../../nix/cache-info.js';
import { parseStorePathHash } from '../../nix/store-path.js';
import type { CacheService, CacheView } from '../../cache/service.js';
import type { OrgService } from '../../org/service.js';
import type { AppEnv } from '../context.js';
import { declaredLength, readSmallBody } from '../body.js';
import type { Limits } from '../../config.js';

export interface CacheRouteDeps {
  cache: CacheService;
  orgs: OrgService;
  limits: Limits;
  priority: number;
}

const UNIFIED_TOP = new Set(['nar', 'log', 'realisations', 'build-trace-v2', 'debuginfo']);

function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'invalid' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'invalid';
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) return 'invalid';
  return { start, end };
}

function textResponse(method: string, text: string, headers: Record<string, string>): Response {
  return new Response(method === 'HEAD' ? null : text, { status: 200, headers: { ...headers, 'Content-Length': String(Buffer.byteLength(text)) } });
}

export function cacheHandler(deps: CacheRouteDeps) {
  const cacheInfo = formatCacheInfo({ wantMassQuery: true, priority: deps.priority });

  return async (c: Context<AppEnv>) => {
    const method = c.req.method;
    const rawPath = c.req.path;
    const parts = rawPath.slice('/cache'.length).split('/').slice(1);
    if (parts.length === 0 || parts.some((x) => x === '' || x === '.' || x === '..')) return missResponse();

    let view: CacheView = { kind: 'unified' };
    let rest = parts;
    if (!(parts.length === 1 || UNIFIED_TOP.has(parts[0]!))) {
      if (parts.length < 3) return missResponse();
      const slice = await deps.orgs.findSlice(parts[0]!, parts[1]!);
      if (!slice) return missResponse();
      view = { kind: 'slice', slice };
      rest = parts.slice(2);
    }
    const principal = c.get('principal');
    const req = c.env.incoming;

    if (rest.length === 1 && rest[0] === 'nix-cache-info') {
      if (method === 'GET' || method === 'HEAD') {
        return textResponse(method, cacheInfo, { 'Content-Type': 'text/x-nix-cache-info' });
      }
      if (method === 'PUT') {
        // Nix only PUTs this when GET failed; ours always exists, so accept and ignore.
        await deps.cache.writeTarget(principal, view);
        await readSmallBody(req, deps.limits.maxSmallBodyBytes);
        return c.body(null, 204);
      }
    }

    if (rest.length === 1 && rest[0]!.endsWith('.narinfo')) {
      const hash = parseStorePathHash(rest[0]!.slice(0, -'.narinfo'.length));
      if (method === 'GET' || method === 'HEAD') {
        const text = await deps.cache.findNarInfo(principal, view, hash);
        if (text === undefined) return missResponse();
        return textResponse(method, text, { 'Content-Type': 'text/x-nix-narinfo', 'Cache-Control': 'private, no-cache' });
      }
      if (method === 'PUT') {
        await deps.cache.writeTarget(principal, view); // refuse before reading the body
        const body = await readSmallBody(req, deps.limits.maxSmallBodyBytes);
        const result = await deps.cache.uploadNarInfo(principal, view, hash, body.toString('utf8'));
        return c.body(null, result === 'created' ? 201 : 200);
      }
    }

    if (rest.length === 1 && rest[0]!.endsWith('.ls') && method === 'PUT') {
      // NAR listings (write-nar-listing=1) are optional; accept them so such uploads work, but do not keep them yet.
      await deps.cache.writeTarget(principal, view);
      await readSmallBody(req, 64 * deps.limits.maxSmallBodyBytes);
      return c.body(null, 204);
    }

    if (rest.length === 2 && rest[0] === 'nar') {
      const file = rest[1]!;
      if (method === 'HEAD') {
        const found = await deps.cache.findNar(principal, view, file);
        if (found) return c.body(null, 200, { 'Content-Length': String(found.size), 'Accept-Ranges': 'bytes', 'Content-Type': 'application/x-nix-nar' });
        if (await deps.cache.hasNarFile(principal, view, file)) return c.body(null, 200);
        return missResponse();
      }
      if (method === 'GET') {
        const found = await deps.cache.findNar(principal, view, file);
        if (!found) return missResponse();
        const range = parseRange(c.req.header('range'), found.size);
        if (range === 'invalid') {
          return c.body(null, 416, { 'Content-Range': `bytes */${found.size}` });
        }
        const read = await found.open(range);
        if (!read) return missResponse();
        const res = c.env.outgoing;
        res.writeHead(range ? 206 : 200, {
          'Content-Type': 'application/x-nix-nar',
          'Content-Length': String(range ? range.end - range.start + 1 : found.size),
          'Accept-Ranges': 'bytes',
          'Cache-Control': 'private, max-age=31536000, immutable',
          ...(range ? { 'Content-Range': `bytes ${range.start}-${range.end}/${found.size}` } : {}),
        });
        try {
          await pipeline(read.body, res);
        } catch {
          // Client went away mid-download; nothing to clean up on our side.
        }
        return RESPONSE_ALREADY_SENT;
      }
      if (method === 'PUT') {
        await deps.cache.writeTarget(principal, view);
        const len = declaredLength(req);
        if (len !== undefined && len > deps.limits.maxUploadBytes) throw new InvalidInput('Content-Length', `upload larger than the limit of ${deps.limits.maxUploadBytes} bytes`);
        const controller = new AbortController();
        req.once('close', () => {
          if (!req.complete) controller.abort();
        });
        await deps.cache.uploadNarFile(principal, view, file, req, controller.signal);
        return c.body(null, 201);
      }
    }
    return missResponse();
  };
}
