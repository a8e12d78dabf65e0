/**
 * The Nix binary cache protocol at `/cache` (unified: every slice the caller may read) and
 * `/cache/<org>/<slice>` (one slice). Served by a lean node:http handler rather than the Hono app:
 * it is the hot path (every substitution asks for narinfos) and it streams NARs both ways, so it
 * works on the raw request/response. Authentication, the error table, the access log and metrics
 * come from the same edge as the Hono app's (edge.ts). Reads that are denied answer exactly like
 * misses. Every route is one line of ROUTES below; its pattern is also its metrics label.
 * Over 350 lines on purpose: the whole /cache protocol in one table on one screen; longer handlers
 * live in cache-routes/.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { FloeError, InvalidInput } from '../errors.js';
import type { Principal } from '../identity/principal.js';
import { formatCacheInfo } from '../nix/cache-info.js';
import { parseStorePathHash } from '../nix/store-path.js';
import type { CacheService, CacheView } from '../cache/service.js';
import type { OrgService } from '../org/service.js';
import type { Limits } from '../config.js';
import { isRawCiToken } from './credential.js';
import { declaredLength, discardSmallBody, readEncodedSmallBody, readJson } from './body.js';
import { CLIENT_CLOSED, MISS_BODY, MISS_HEADERS, clientWentAway } from './errors.js';
import type { Edge } from './edge.js';
import type { Metrics } from './metrics.js';
import { type Pattern, compilePattern, matchPattern, splitCachePath } from './route-table.js';
import { handleBuildLog } from './cache-routes/logs.js';
import { handleListing } from './cache-routes/listings.js';
import { handleDebugInfo } from './cache-routes/debuginfo.js';
import { sendFileRange } from './send-file.js';

export interface CacheHandlerDeps {
  cache: CacheService;
  orgs: OrgService;
  edge: Edge;
  limits: Limits;
  priority: number;
  metrics: Metrics;
  /**
   * A raw CI identity token (a JWT, not a floe_ token) as the credential, exchanged and memoized
   * per token: magic-nix-cache puts the job's token in the netrc Nix reads for this cache.
   */
  exchangeRawCiToken?: (jwt: string, clientIp: string | undefined) => Promise<string>;
}

type Headers = Record<string, string>;

/** One request on its way through a route: the caller, the view its URL names, the pattern's parameters. */
interface CacheRequest {
  req: IncomingMessage;
  res: ServerResponse;
  principal: Principal;
  view: CacheView;
  params: Record<string, string>;
}
type Handler = (r: CacheRequest, deps: CacheHandlerDeps, cacheInfo: string) => Promise<void> | void;
type Method = 'GET' | 'HEAD' | 'PUT';
type SegmentHandler = typeof handleBuildLog;

/** The routes in cache-routes/ take the path's segments and answer through an io object. */
function viaSegments(handle: SegmentHandler, segments: (params: Record<string, string>) => string[]): Handler {
  return async ({ req, res, principal, view, params }, deps) => {
    const io = {
      send: (status: number, headers: Headers, body?: string) => send(req, res, status, headers, body),
      miss: (): true => {
        miss(req, res);
        return true;
      },
      acceptBody: () => acceptBody(req, res),
    };
    if (!(await handle({ req, res, principal, view, cache: deps.cache }, io, segments(params)))) miss(req, res);
  };
}

/** Every /cache route. Patterns are matched after the optional `<org>/<slice>` prefix. */
const ROUTES: Array<[methods: Method[], pattern: string, handler: Handler]> = [
  [['GET', 'HEAD'], 'nix-cache-info', getCacheInfo],
  [['PUT'], 'nix-cache-info', putCacheInfo],
  [['GET', 'HEAD'], ':hash.narinfo', getNarInfo],
  [['PUT'], ':hash.narinfo', putNarInfo],
  [['GET', 'HEAD', 'PUT'], ':hash.ls', viaSegments(handleListing, (p) => [`${p.hash}.ls`])],
  [['GET', 'HEAD', 'PUT'], 'log/:drv', viaSegments(handleBuildLog, (p) => ['log', p.drv!])],
  [['GET', 'HEAD', 'PUT'], 'debuginfo/:id', viaSegments(handleDebugInfo, (p) => ['debuginfo', p.id!])],
  [['GET', 'HEAD'], 'realisations/:id.doi', getRealisation],
  [['PUT'], 'realisations/:id.doi', putRealisation],
  [['HEAD'], 'nar/:file', headNar],
  [['GET'], 'nar/:file', getNar],
  [['PUT'], 'nar/:file', putNar],
];

const TABLE: Array<{ pattern: Pattern; handlers: Map<string, Handler> }> = [];
for (const [methods, text, handler] of ROUTES) {
  let entry = TABLE.find((e) => e.pattern.text === text);
  if (!entry) TABLE.push((entry = { pattern: compilePattern(text), handlers: new Map() }));
  for (const m of methods) entry.handlers.set(m, handler);
}

/** A /cache path parsed once: the slice it names, the matched route, and the metrics label. */
function resolve(pathname: string) {
  const path = splitCachePath(pathname);
  for (const entry of TABLE) {
    const params = matchPattern(entry.pattern, path.rest);
    if (params) return { path, entry, params, label: `${path.prefix}/${entry.pattern.text}` };
  }
  return { path, entry: undefined, params: {}, label: `${path.prefix}/*` };
}

type Resolved = ReturnType<typeof resolve>;

/** The route template of a /cache path, for metrics labels (org and slice names are not labels). */
export function cacheRouteOf(pathname: string): string {
  return resolve(pathname).label;
}

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

function send(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  headers: Headers,
  body?: string,
  reason?: string,
): void {
  const all = body === undefined ? headers : { ...headers, 'Content-Length': String(Buffer.byteLength(body)) };
  if (reason === undefined) res.writeHead(status, all);
  else res.writeHead(status, reason, all);
  // A string body goes out with the header block in one write (a Buffer would be a second chunk).
  if (req.method === 'HEAD' || body === undefined) res.end();
  else res.end(body, 'utf8');
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

export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | 'invalid' | undefined {
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

function getCacheInfo({ req, res }: CacheRequest, _deps: CacheHandlerDeps, cacheInfo: string): void {
  send(req, res, 200, { 'Content-Type': 'text/x-nix-cache-info' }, cacheInfo);
}

async function putCacheInfo({ req, res, principal, view }: CacheRequest, deps: CacheHandlerDeps): Promise<void> {
  // Nix only PUTs this after a failed GET; ours always exists, so accept and ignore.
  await deps.cache.uploads.writeTarget(principal, view);
  acceptBody(req, res);
  await discardSmallBody(req, deps.limits.maxSmallBodyBytes);
  send(req, res, 204, {});
}

async function getNarInfo({ req, res, principal, view, params }: CacheRequest, deps: CacheHandlerDeps): Promise<void> {
  const text = await deps.cache.findNarInfo(principal, view, parseStorePathHash(params.hash!));
  deps.metrics.narinfoLookup(text !== undefined);
  if (text === undefined) return miss(req, res);
  send(req, res, 200, { 'Content-Type': 'text/x-nix-narinfo', 'Cache-Control': 'private, no-cache' }, text);
}

async function putNarInfo({ req, res, principal, view, params }: CacheRequest, deps: CacheHandlerDeps): Promise<void> {
  const hash = parseStorePathHash(params.hash!);
  const target = await deps.cache.uploads.writeTarget(principal, view); // refuse before reading the body
  acceptBody(req, res);
  const body = await readEncodedSmallBody(req, deps.limits.maxSmallBodyBytes);
  const result = await deps.cache.uploads.uploadNarInfo(principal, target, hash, body.toString('utf8'));
  send(req, res, result === 'created' ? 201 : 200, {});
}

/** Nix sends `sha256:<hex>!out` unescaped; other clients may percent-encode `:` and `!`. */
function realisationId(raw: string): string {
  return /%(21|3a)/i.test(raw) ? raw.replace(/%21/g, '!').replace(/%3a/gi, ':') : raw;
}

async function getRealisation(r: CacheRequest, deps: CacheHandlerDeps): Promise<void> {
  const { req, res, principal, view, params } = r;
  const body = await deps.cache.realisations.find(principal, view, realisationId(params.id!));
  if (body === undefined) return miss(req, res);
  send(req, res, 200, { 'Content-Type': 'application/json', 'Cache-Control': 'private, no-cache' }, body);
}

async function putRealisation(r: CacheRequest, deps: CacheHandlerDeps): Promise<void> {
  const { req, res, principal, view, params } = r;
  const target = await deps.cache.uploads.writeTarget(principal, view); // refuse before reading the body
  acceptBody(req, res);
  const json = await readJson(req, deps.limits.maxSmallBodyBytes);
  const result = await deps.cache.realisations.put(principal, target, realisationId(params.id!), json);
  send(req, res, result === 'created' ? 201 : 200, {});
}

async function headNar({ req, res, principal, view, params }: CacheRequest, deps: CacheHandlerDeps): Promise<void> {
  const found = await deps.cache.reading.findNar(principal, view, params.file!);
  if (found) {
    const headers = { 'Content-Length': String(found.size), 'Accept-Ranges': 'bytes' };
    return send(req, res, 200, { ...headers, 'Content-Type': 'application/x-nix-nar' });
  }
  if (await deps.cache.uploads.hasNarFile(principal, view, params.file!)) return send(req, res, 200, {});
  miss(req, res);
}

async function getNar({ req, res, principal, view, params }: CacheRequest, deps: CacheHandlerDeps): Promise<void> {
  const found = await deps.cache.reading.findNar(principal, view, params.file!);
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
  const length = range ? range.end - range.start + 1 : found.size;
  res.writeHead(range ? 206 : 200, {
    'Content-Type': 'application/x-nix-nar',
    'Content-Length': String(length),
    'Accept-Ranges': 'bytes',
    'Cache-Control': 'private, max-age=31536000, immutable',
    ...(range ? { 'Content-Range': `bytes ${range.start}-${range.end}/${found.size}` } : {}),
  });
  try {
    await (read.file ? sendFileRange(res, read.file) : pipeline(read.body, res));
    deps.metrics.inc('floe_nar_bytes_served_total', {}, length);
  } catch {
    // The client went away mid-download; nothing to clean up here.
  }
}

async function putNar({ req, res, principal, view, params }: CacheRequest, deps: CacheHandlerDeps): Promise<void> {
  // A full org is refused before its body is sent.
  const target = await deps.cache.uploads.admitNarUpload(principal, view);
  const len = declaredLength(req);
  if (len !== undefined && len > deps.limits.maxUploadBytes) {
    throw new InvalidInput('Content-Length', `upload larger than the limit of ${deps.limits.maxUploadBytes} bytes`);
  }
  const controller = new AbortController();
  req.once('close', () => {
    if (!req.complete) controller.abort();
  });
  acceptBody(req, res);
  try {
    const nar = await deps.cache.uploads.uploadNarFile(principal, target, params.file!, req, controller.signal, len);
    deps.metrics.uploadAccepted(nar.receivedBytes);
  } catch (err) {
    deps.metrics.uploadRejected(err);
    throw err;
  }
  send(req, res, 201, {});
}

export function createCacheHandler(deps: CacheHandlerDeps) {
  const cacheInfo = formatCacheInfo({ wantMassQuery: true, priority: deps.priority });
  const { edge } = deps;

  async function route(
    req: IncomingMessage,
    res: ServerResponse,
    principal: Principal,
    found: Resolved,
  ): Promise<void> {
    const { path, entry, params } = found;
    if (path.invalid) return miss(req, res);
    let view: CacheView = { kind: 'unified' };
    if (path.slice) {
      const slice = await deps.orgs.findSlice(path.slice.org, path.slice.slice);
      // A slice URL exists only for those who may use it: for anyone else every method on it
      // answers what a typo would (no 401/403 that would confirm the slice exists).
      if (!slice || !deps.cache.mayUseSlice(principal, slice)) return miss(req, res);
      view = { kind: 'slice', slice };
    }
    const handler = entry?.handlers.get(req.method ?? 'GET');
    if (!handler) return miss(req, res);
    await handler({ req, res, principal, view, params }, deps, cacheInfo);
  }

  /**
   * No credential = anonymous. A credential that fails (expired, revoked, invalid, misplaced) on a
   * read is a 400, not a 401: Nix treats 401 on a narinfo as "absent" (silent rebuilds, an hour of
   * negative cache) while any other 4xx fails loudly with our message on every version, and is
   * not cached. Uploads keep the 401, which Nix reports as an error there anyway.
   */
  async function authenticate(req: IncomingMessage, start: ReturnType<Edge['begin']>): Promise<Principal> {
    try {
      const raw = deps.exchangeRawCiToken;
      const exchange =
        raw &&
        (async (credential: string) => {
          return isRawCiToken(credential) ? raw(credential, start.principal.client?.ip) : credential;
        });
      return await edge.authenticate(start, req.headers.authorization, exchange);
    } catch (err) {
      const read = req.method === 'GET' || req.method === 'HEAD';
      if (read && err instanceof FloeError && err.code === 'unauthenticated') {
        throw new RefusedReadCredential(err.message);
      }
      throw err;
    }
  }

  return async function handleCache(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> {
    const start = edge.begin(req);
    res.setHeader('X-Request-Id', start.requestId);
    const found = resolve(pathname);
    let principal = start.principal;
    // Set when the request failed: whether the client had gone away by then.
    let closedByClient: boolean | undefined;
    try {
      principal = await authenticate(req, start);
      await route(req, res, principal, found);
    } catch (err) {
      closedByClient = clientWentAway(req, res);
      const failure = edge.fail(start, err, req, res);
      if (failure.kind === 'client-gone') {
        // Nobody is left to answer.
      } else if (res.headersSent) {
        res.destroy();
      } else if (failure.kind === 'miss') {
        miss(req, res);
      } else {
        const { body, headers } = failure;
        const reason = err instanceof RefusedReadCredential ? body.message : undefined;
        const all = { 'Content-Type': 'text/plain; charset=UTF-8', ...headers };
        send(req, res, body.status, all, `${body.message}\n`, reason);
      }
    }
    // A download the client cut short ends here without an error (see the NAR pipeline above).
    const status = (closedByClient ?? clientWentAway(req, res)) ? CLIENT_CLOSED : res.statusCode;
    const method = req.method ?? 'GET';
    edge.finish(start, { area: 'cache', method, route: found.label, path: pathname, status, principal });
  };
}
