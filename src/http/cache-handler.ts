/**
 * The Nix binary cache protocol at `/cache` (unified: every slice the caller may read) and
 * `/cache/<org>/<slice>` (one slice). Served by a lean node:http handler rather than the Hono app:
 * it is the hot path (every substitution asks for narinfos) and it streams NARs both ways, so it
 * works on the raw request/response. It uses the same authentication, services (and through them
 * the same authorizer), error table and access log as the rest of the HTTP layer.
 * Reads that are denied answer exactly like misses.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { FloeError, InvalidInput } from '../errors.js';
import { requestCredential } from './credential.js';
import { ANONYMOUS, describePrincipal, type Principal, withClient } from '../identity/principal.js';
import type { ClientResolver } from './client-address.js';
import type { TokenService } from '../identity/tokens.js';
import { formatCacheInfo } from '../nix/cache-info.js';
import { parseStorePathHash } from '../nix/store-path.js';
import type { CacheService, CacheView } from '../cache/service.js';
import type { OrgService } from '../org/service.js';
import type { Limits } from '../config.js';
import type { Logger } from '../log.js';
import { declaredLength, discardSmallBody, readEncodedSmallBody, readJson } from './body.js';
import { CLIENT_CLOSED, MISS_BODY, MISS_HEADERS, clientWentAway, errorBody, logFailure } from './errors.js';
import { nextRequestId } from './request-id.js';
import type { Metrics } from './metrics.js';

export interface CacheHandlerDeps {
  cache: CacheService;
  orgs: OrgService;
  tokens: TokenService;
  limits: Limits;
  priority: number;
  log: Logger;
  metrics: Metrics;
  resolveClient: ClientResolver;
  /**
   * A raw CI identity token (a JWT, not a floe_ token) as the credential, exchanged and memoized
   * per token: magic-nix-cache puts the job's token in the netrc Nix reads for this cache.
   */
  exchangeRawCiToken?: (jwt: string) => Promise<string>;
}

const UNIFIED_TOP = new Set(['nar', 'log', 'realisations', 'build-trace-v2', 'debuginfo']);

type Headers = Record<string, string>;

/**
 * A credential that failed on a read. Its message also goes in the status line's reason phrase:
 * Nix checks existence with HEAD (no body to carry a message) and prints the reason phrase
 * ("HTTP error 400 ('<reason>')") on every version.
 */
class RefusedReadCredential extends FloeError {
  constructor(message: string) {
    super('invalid_input', `Floe cache: ${message}`);
  }
}

function send(req: IncomingMessage, res: ServerResponse, status: number, headers: Headers, body?: string, reason?: string): void {
  const bytes = body === undefined ? undefined : Buffer.from(body);
  const all = bytes ? { ...headers, 'Content-Length': String(bytes.length) } : headers;
  if (reason === undefined) res.writeHead(status, all);
  else res.writeHead(status, reason, all);
  res.end(req.method === 'HEAD' ? undefined : bytes);
}

/** The one answer for "missing" and "denied read" (the same bytes as `missResponse`). */
function miss(req: IncomingMessage, res: ServerResponse): void {
  send(req, res, 404, { ...MISS_HEADERS }, MISS_BODY);
}

/**
 * Nix's libcurl sends `Expect: 100-continue` on uploads. The server defers the 100 until the
 * request has been authorized, so a refused upload is answered before its body is ever sent.
 */
const EXPECTS_CONTINUE = Symbol('floe.expectsContinue');
export function markExpectsContinue(req: IncomingMessage): void {
  (req as IncomingMessage & { [EXPECTS_CONTINUE]?: boolean })[EXPECTS_CONTINUE] = true;
}
function acceptBody(req: IncomingMessage, res: ServerResponse): void {
  const r = req as IncomingMessage & { [EXPECTS_CONTINUE]?: boolean };
  if (r[EXPECTS_CONTINUE]) {
    r[EXPECTS_CONTINUE] = false;
    res.writeContinue();
  }
}

export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'invalid' | undefined {
  if (!header) return undefined;
  // Several ranges: the whole body with 200 is a valid answer (RFC 9110 §14.2), and simpler than multipart.
  if (/^\s*bytes=.*,/.test(header)) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'invalid';
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) return 'invalid';
  return { start, end };
}

/** The route template of a /cache path, for metrics labels (org and slice names are not labels). */
export function cacheRouteOf(pathname: string): string {
  const parts = pathname.slice('/cache'.length).split('/').slice(1);
  const sliced = parts.length >= 3 && !UNIFIED_TOP.has(parts[0]!);
  const prefix = sliced ? '/cache/:org/:slice' : '/cache';
  const rest = sliced ? parts.slice(2) : parts;
  const [first] = rest;
  if (rest.length === 1 && first === 'nix-cache-info') return `${prefix}/nix-cache-info`;
  if (rest.length === 1 && first!.endsWith('.narinfo')) return `${prefix}/:hash.narinfo`;
  if (rest.length === 1 && first!.endsWith('.ls')) return `${prefix}/:hash.ls`;
  if (rest.length === 2 && first === 'nar') return `${prefix}/nar/:file`;
  return `${prefix}/*`;
}

export function createCacheHandler(deps: CacheHandlerDeps) {
  const cacheInfo = formatCacheInfo({ wantMassQuery: true, priority: deps.priority });

  async function route(req: IncomingMessage, res: ServerResponse, principal: Principal, pathname: string): Promise<void> {
    const method = req.method ?? 'GET';
    const parts = pathname.slice('/cache'.length).split('/').slice(1);
    if (parts.length === 0 || parts.some((x) => x === '' || x === '.' || x === '..')) return miss(req, res);

    let view: CacheView = { kind: 'unified' };
    let rest = parts;
    if (!(parts.length === 1 || UNIFIED_TOP.has(parts[0]!))) {
      if (parts.length < 3) return miss(req, res);
      const slice = await deps.orgs.findSlice(parts[0]!, parts[1]!);
      // A slice URL exists only for those who may use it: for anyone else every method on it
      // answers what a typo would (no 401/403 that would confirm the slice exists).
      if (!slice || !deps.cache.mayUseSlice(principal, slice)) return miss(req, res);
      view = { kind: 'slice', slice };
      rest = parts.slice(2);
    }
    const [first, second] = rest;

    if (rest.length === 1 && first === 'nix-cache-info') {
      if (method === 'GET' || method === 'HEAD') return send(req, res, 200, { 'Content-Type': 'text/x-nix-cache-info' }, cacheInfo);
      if (method === 'PUT') {
        // Nix only PUTs this after a failed GET; ours always exists, so accept and ignore.
        await deps.cache.writeTarget(principal, view);
        acceptBody(req, res);
        await discardSmallBody(req, deps.limits.maxSmallBodyBytes);
        return send(req, res, 204, {});
      }
    }

    if (rest.length === 1 && first!.endsWith('.narinfo')) {
      const hash = parseStorePathHash(first!.slice(0, -'.narinfo'.length));
      if (method === 'GET' || method === 'HEAD') {
        const text = await deps.cache.findNarInfo(principal, view, hash);
        deps.metrics.inc('floe_narinfo_lookups_total', { result: text === undefined ? 'miss_or_denied' : 'hit' });
        if (text === undefined) return miss(req, res);
        return send(req, res, 200, { 'Content-Type': 'text/x-nix-narinfo', 'Cache-Control': 'private, no-cache' }, text);
      }
      if (method === 'PUT') {
        await deps.cache.writeTarget(principal, view); // refuse before reading the body
        acceptBody(req, res);
        const body = await readEncodedSmallBody(req, deps.limits.maxSmallBodyBytes);
        const result = await deps.cache.uploadNarInfo(principal, view, hash, body.toString('utf8'));
        return send(req, res, result === 'created' ? 201 : 200, {});
      }
    }

    if (rest.length === 2 && first === 'realisations' && second!.endsWith('.doi')) {
      const raw = second!.slice(0, -'.doi'.length);
      // Nix sends `sha256:<hex>!out` unescaped; other clients may percent-encode `:` and `!`.
      const id = /%(21|3a)/i.test(raw) ? raw.replace(/%21/g, '!').replace(/%3a/gi, ':') : raw;
      if (method === 'GET' || method === 'HEAD') {
        const body = await deps.cache.realisations.find(principal, view, id);
        if (body === undefined) return miss(req, res);
        return send(req, res, 200, { 'Content-Type': 'application/json', 'Cache-Control': 'private, no-cache' }, body);
      }
      if (method === 'PUT') {
        await deps.cache.writeTarget(principal, view); // refuse before reading the body
        acceptBody(req, res);
        const json = await readJson(req, deps.limits.maxSmallBodyBytes);
        const result = await deps.cache.realisations.put(principal, view, id, json);
        return send(req, res, result === 'created' ? 201 : 200, {});
      }
    }

    if (rest.length === 1 && first!.endsWith('.ls') && method === 'PUT') {
      // NAR listings (write-nar-listing=1) are optional: accepted so such uploads work, not kept yet.
      await deps.cache.writeTarget(principal, view);
      acceptBody(req, res);
      await discardSmallBody(req, 64 * deps.limits.maxSmallBodyBytes);
      return send(req, res, 204, {});
    }

    if (rest.length === 2 && first === 'nar') {
      const file = second!;
      if (method === 'HEAD') {
        const found = await deps.cache.findNar(principal, view, file);
        if (found) return send(req, res, 200, { 'Content-Length': String(found.size), 'Accept-Ranges': 'bytes', 'Content-Type': 'application/x-nix-nar' });
        if (await deps.cache.hasNarFile(principal, view, file)) return send(req, res, 200, {});
        return miss(req, res);
      }
      if (method === 'GET') {
        const found = await deps.cache.findNar(principal, view, file);
        if (!found) return miss(req, res);
        const range = parseRange(req.headers.range, found.size);
        if (range === 'invalid') return send(req, res, 416, { 'Content-Range': `bytes */${found.size}` });
        if (!range) {
          // The caller is authorized for this NAR; let the object store send the bytes.
          const direct = await found.redirectUrl();
          if (direct) return send(req, res, 302, { Location: direct, 'Cache-Control': 'no-store' });
        }
        const read = await found.open(range);
        if (!read) return miss(req, res);
        res.writeHead(range ? 206 : 200, {
          'Content-Type': 'application/x-nix-nar',
          'Content-Length': String(range ? range.end - range.start + 1 : found.size),
          'Accept-Ranges': 'bytes',
          'Cache-Control': 'private, max-age=31536000, immutable',
          ...(range ? { 'Content-Range': `bytes ${range.start}-${range.end}/${found.size}` } : {}),
        });
        try {
          await pipeline(read.body, res);
          deps.metrics.inc('floe_nar_bytes_served_total', {}, range ? range.end - range.start + 1 : found.size);
        } catch {
          // The client went away mid-download; nothing to clean up here.
        }
        return;
      }
      if (method === 'PUT') {
        await deps.cache.admitUpload(principal, view); // a full org is refused before its body is sent
        const len = declaredLength(req);
        if (len !== undefined && len > deps.limits.maxUploadBytes) throw new InvalidInput('Content-Length', `upload larger than the limit of ${deps.limits.maxUploadBytes} bytes`);
        const controller = new AbortController();
        req.once('close', () => {
          if (!req.complete) controller.abort();
        });
        acceptBody(req, res);
        try {
          const nar = await deps.cache.uploadNarFile(principal, view, file, req, controller.signal, len);
          deps.metrics.inc('floe_uploads_total', { result: 'accepted' });
          deps.metrics.inc('floe_upload_bytes_total', {}, nar.receivedBytes);
        } catch (err) {
          deps.metrics.inc('floe_uploads_total', { result: 'rejected' });
          if (err instanceof FloeError && err.code !== 'unauthenticated' && err.code !== 'forbidden') deps.metrics.uploadVerificationFailed(err.code);
          throw err;
        }
        return send(req, res, 201, {});
      }
    }
    return miss(req, res);
  }

  /**
   * No credential = anonymous. A credential that fails (expired, revoked, invalid, misplaced) on a
   * read is a 400, not a 401: Nix treats 401 on a narinfo as "absent" (silent rebuilds, an hour of
   * negative cache) while any other 4xx fails loudly with our message on every version, and is
   * not cached. Uploads keep the 401, which Nix reports as an error there anyway.
   */
  async function authenticate(req: IncomingMessage): Promise<Principal> {
    try {
      let credential = requestCredential(req.headers.authorization);
      if (credential !== undefined && deps.exchangeRawCiToken && !credential.startsWith('floe_') && credential.split('.').length === 3) {
        credential = await deps.exchangeRawCiToken(credential);
      }
      return credential === undefined ? ANONYMOUS : await deps.tokens.verify(credential);
    } catch (err) {
      const read = req.method === 'GET' || req.method === 'HEAD';
      if (read && err instanceof FloeError && err.code === 'unauthenticated') throw new RefusedReadCredential(err.message);
      throw err;
    }
  }

  return async function handleCache(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> {
    const started = performance.now();
    const requestId = nextRequestId();
    res.setHeader('X-Request-Id', requestId);
    const client = deps.resolveClient(req, requestId);
    let principal: Principal = withClient(ANONYMOUS, client);
    // Set when the request failed: whether the client had gone away by then.
    let closedByClient: boolean | undefined;
    try {
      principal = withClient(await authenticate(req), client);
      await route(req, res, principal, pathname);
    } catch (err) {
      const body = errorBody(err, requestId);
      closedByClient = clientWentAway(req, res);
      if (closedByClient || res.writableEnded) deps.log.debug({ reqId: requestId, msg: (err as Error).message }, 'client went away');
      else logFailure(deps.log, requestId, body, err);
      if (closedByClient || res.writableEnded) {
        // Cancelled upload: nothing failed on our side, and nobody is left to answer. Or the body
        // stalled and the body watchdog answered 408 already.
      } else if (res.headersSent) {
        res.destroy();
      } else if (err instanceof FloeError && err.code === 'not_found') {
        miss(req, res);
      } else {
        const headers: Headers = { 'Content-Type': 'text/plain; charset=UTF-8', 'Cache-Control': 'no-store' };
        if (body.status === 401) headers['WWW-Authenticate'] = 'Basic realm="floe", charset="UTF-8"';
        if (body.retryAfterSeconds !== undefined) headers['Retry-After'] = String(body.retryAfterSeconds);
        // A rejected upload may leave body bytes unread; close rather than parse them as a new request.
        if (!req.complete) headers.Connection = 'close';
        send(req, res, body.status, headers, `${body.message}\n`, err instanceof RefusedReadCredential ? body.message : undefined);
      }
    }
    // A download the client cut short ends here without an error (see the NAR pipeline above).
    const status = (closedByClient ?? clientWentAway(req, res)) ? CLIENT_CLOSED : res.statusCode;
    deps.metrics.request('cache', req.method ?? 'GET', cacheRouteOf(pathname), status, (performance.now() - started) / 1000);
    if (deps.log.isLevelEnabled('info')) {
      // Never log headers or query strings: only what cannot carry a secret.
      deps.log.info(
        { reqId: requestId, method: req.method, path: pathname, status, ms: Math.round((performance.now() - started) * 100) / 100, principal: describePrincipal(principal) },
        'request',
      );
    }
  };
}
