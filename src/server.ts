/**
 * Composition root: config -> log -> storage -> keys -> identity/policy -> services -> HTTP.
 * The only module that wires concrete backends together.
 * Long because every service is constructed and wired here and nowhere else.
 */
import { atticSubstituterPath } from './http/routes/compat/attic-mapping.js';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { readFile, writeFile, rename, chmod, statfs } from 'node:fs/promises';
import { getRequestListener } from '@hono/node-server';
import type { Config } from './config.js';
import type { Logger } from './log.js';
import { openStorage } from './storage/open.js';
import { restrictDataDir } from './storage/permissions.js';
import { KeyRing, rotateJwtKey } from './identity/server-keys.js';
import { TokenService } from './identity/tokens.js';
import { OidcVerifier } from './identity/oidc.js';
import { ExchangeService } from './identity/exchange.js';
import { StsVerifier } from './identity/aws-sts.js';
import { Authorizer } from './policy/authorize.js';
import { AuditLog } from './audit/log.js';
import { PolicyStore } from './org/policies.js';
import { clientResolver } from './http/client-address.js';
import { OrgService } from './org/service.js';
import { CacheService } from './cache/service.js';
import { configureSharedVerifier } from './cache/verify-pool.js';
import { UpstreamService } from './cache/upstream.js';
import { RetentionService } from './cache/retention.js';
import { GarbageCollector } from './cache/gc.js';
import { createApp } from './http/app.js';
import { webSurface } from './web/app.js';
import { createAdminServices } from './admin/index.js';
import { Metrics, areaOf } from './http/metrics.js';
import { ProcessMetrics } from './http/process-metrics.js';
import { reportFeedEvents } from './storage/feed-reporting.js';
import type { ReadinessCheck } from './http/app.js';
import { sql } from 'kysely';
import { RegistryService } from './registry/service.js';
import { ReadmeRenderer } from './web/readme-renderer.js';
import { UsageService } from './cache/usage.js';
import { UsageHistory } from './cache/usage-history.js';
import { DeployScopes } from './registry/deploy.js';
import { ReleaseSources, backfillReleaseSources } from './registry/sources.js';
import { SignerService } from './cache/signers.js';
import { SourceService } from './cache/sources.js';
import { OrgKeyService } from './org/keys.js';
import { createCacheHandler, markExpectsContinue } from './http/cache-handler.js';
import { createEdge } from './http/edge.js';
import { RateLimiter } from './http/rate-limit.js';
import { rawCiTokenExchange } from './http/credential.js';
import { ConnectionDrain } from './http/drain.js';
import { BodyWatchdog } from './http/body-watchdog.js';
import { limitConnectionsPerClient } from './http/connection-limit.js';

export interface RunningServer {
  url: string;
  storageDescription: string;
  adminTokenFile: string;
  close(): Promise<void>;
}

const ADMIN_TOKEN_TTL_SECONDS = 365 * 24 * 3600;

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

async function ensureAdminToken(file: string, tokens: TokenService, log: Logger): Promise<void> {
  try {
    const existing = (await readFile(file, 'utf8')).trim();
    const p = await tokens.verify(existing);
    if (p.kind === 'server-admin') {
      await chmod(file, 0o600);
      return;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      log.warn({ file }, 'admin token no longer valid; writing a new one');
  }
  const minted = await tokens.mint({
    subject: 'admin',
    ttlSeconds: ADMIN_TOKEN_TTL_SECONDS,
    description: 'bootstrap admin token',
    grant: { role: 'server-admin' },
  });
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, `${minted.token}\n`, { mode: 0o600 });
  await rename(tmp, file);
}

/** One backend check for /readyz, bounded in time: a hung backend is as unready as a failing one. */
async function probe(backend: ReadinessCheck['backend'], check: () => Promise<unknown>): Promise<ReadinessCheck> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('timed out after 3 s')), 3000))),
    ]);
    return { backend, ok: true, ms: Math.round(performance.now() - started) };
  } catch (err) {
    return {
      backend,
      ok: false,
      ms: Math.round(performance.now() - started),
      error: (err as Error).message.split('\n')[0]!.slice(0, 200),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Free space on the data directory (temp files, the S3 spool, SQLite): an upload needs room first. */
async function checkFreeSpace(dir: string, minFreeBytes: number): Promise<void> {
  if (minFreeBytes <= 0) return;
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  const mib = (n: number) => Math.floor(n / 2 ** 20);
  // No path in the message: readiness answers are public.
  if (free < minFreeBytes)
    throw new Error(
      `only ${mib(free)} MiB free on the data directory, less than FLOE_MIN_FREE_BYTES (${mib(minFreeBytes)} MiB)`,
    );
}

/** How this process takes part in a `floe serve --workers N` (supervisor.ts); defaults = alone. */
export interface ProcessRole {
  /** Runs what must run once per server: scheduled GC, the upload sweep, usage snapshots. */
  singletons?: boolean;
  /** Names the worker in an `X-Floe-Worker` response header (tests tell workers apart by it). */
  workerHeader?: boolean;
}

export async function startServer(config: Config, log: Logger, role: ProcessRole = {}): Promise<RunningServer> {
  const singletons = role.singletons ?? true;
  for (const f of await restrictDataDir(config.dataDir)) {
    log.warn(
      { path: f.path, mode: f.was, fixed: f.fixed },
      f.fixed
        ? `${f.path} was ${f.was}, open to other local users (the database holds the server's signing keys); made private`
        : `${f.path} is ${f.was} and readable by other local users, and this process cannot change it: make it private to the user running floe`,
    );
  }
  const metrics = new Metrics();
  const storage = await openStorage({
    dataDir: config.dataDir,
    ...(config.databaseUrl ? { databaseUrl: config.databaseUrl } : {}),
    ...(config.s3 ? { s3: config.s3 } : {}),
    feedEvents: reportFeedEvents(log, (n) => metrics.inc('floe_change_notices_unanswered_total', {}, n)),
  });
  log.info({ storage: storage.description }, 'storage ready');

  let handler:
    | ((req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void)
    | undefined;
  const server: Server = createServer((req, res) => {
    if (handler) return handler(req, res);
    res.writeHead(503, { 'Retry-After': '1', 'Content-Type': 'text/plain' }).end('starting\n');
  });
  // Uploads of large NARs can take long; headers must still arrive promptly, and bodies keep
  // arriving while the server waits for them (the body watchdog; 408 otherwise).
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;
  const idleMs = config.bodyIdleSeconds * 1000;
  const bodies = new BodyWatchdog(
    {
      idleMs,
      minBytesPerSecond: config.bodyMinBytesPerSecond,
      windowMs: Math.max(2 * idleMs, 10_000),
      tickMs: idleMs > 0 ? Math.min(1000, Math.max(100, idleMs / 4)) : 1000,
    },
    (req, stall) => log.info({ path: (req.url ?? '').split('?')[0], stall }, 'request body stalled: answered 408'),
  );
  limitConnectionsPerClient(server, config.maxConnectionsPerClient, config.trustedProxies, (ip) =>
    log.warn({ ip, max: config.maxConnectionsPerClient }, 'too many connections from one client: closed a new one'),
  );
  // On shutdown: /readyz fails at once, requests in flight finish, connections close as they go idle.
  const connections = new ConnectionDrain(server);
  // With a checkContinue listener Node leaves the 100 to us: /cache sends it only once the upload
  // is authorized; everything else gets it at once, as Node would.
  server.on('checkContinue', (req, res) => {
    if (!handler) return res.writeHead(503, { 'Retry-After': '1', Connection: 'close' }).end('starting\n');
    const cache = (req.url ?? '').startsWith('/cache');
    if (cache) markExpectsContinue(req);
    handler(req, res); // first: the body watchdog starts counting at the 100
    if (!cache) res.writeContinue();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const publicUrl =
    config.publicUrl ??
    `http://${formatHost(config.listen.host === '0.0.0.0' ? '127.0.0.1' : config.listen.host)}:${address.port}`;
  const hostName = new URL(publicUrl).hostname.replace(/[[\]:]/g, '-');

  const keyRing = await KeyRing.open(storage.db, { nixKeyName: config.cacheKeyName ?? `${hostName}-1` });
  const keys = keyRing.current;
  // Rotations made through another replica arrive within a minute even without an unknown kid.
  const keyReload = setInterval(
    () => void keyRing.reload(0).catch((err) => log.warn({ err }, 'reloading server keys failed')),
    60_000,
  );
  keyReload.unref();
  const tokens = new TokenService(storage.db, keyRing, publicUrl, storage.changes);
  storage.changes.subscribe(
    'keys',
    () => void keyRing.reload(0).catch((err) => log.warn({ err }, 'reloading server keys failed')),
  );
  const processMetrics = new ProcessMetrics(server);
  const audit = new AuditLog(storage.db, log);
  audit.start();
  const policies = new PolicyStore(storage.db, log, storage.changes);
  await policies.refresh();
  // Policy changes made through other replicas take effect within a second.
  policies.start(1000);
  const authorizer = new Authorizer(audit, policies, (allowed) => metrics.policyDecision(allowed ? 'allow' : 'deny'));
  const orgs = new OrgService(storage.db);
  const upstreams = new UpstreamService(storage.db);
  const signers = new SignerService(storage.db);
  // Each org signs its own narinfos; the server's Nix key is only the legacy key of orgs that
  // held paths before org keys existed (kept as `previous` until their admins retire it).
  const orgKeys = new OrgKeyService(storage.db, { keyPrefix: hostName, legacy: keys.nix }, storage.changes);
  const sources = new SourceService(storage.db, storage.changes);
  configureSharedVerifier(config.verifyThreads);
  const cache = new CacheService({
    storage,
    orgs,
    authorizer,
    keys: orgKeys,
    sources,
    limits: { maxUploadBytes: config.limits.maxUploadBytes, maxNarBytes: config.limits.maxNarBytes },
    audit,
    deploy: new DeployScopes(storage.db),
    // "Not a source" is memoized only while every write is heard in time (as the narinfo miss memo, reading.ts).
    releaseSources: new ReleaseSources(storage.db, authorizer, orgKeys, { changes: storage.changes }),
    upstreams,
    signers,
    ingestSlots: config.ingest,
    uploads: { expiryMs: config.uploadExpirySeconds * 1000, refusedHoldMs: config.gc.graceSeconds * 1000 },
  });
  const resignAfterUpgrade = await orgKeys.migrateOrgs();
  for (const orgId of resignAfterUpgrade) {
    // Upgraded data: narinfos get the org's own signature next to the shared server key's.
    const n = await cache.resignOrg(orgId);
    log.info(
      { orgId, paths: n },
      "org signing key created; narinfos re-signed (the server key stays as the org's previous key until retired)",
    );
  }
  const retention = new RetentionService(storage.db);
  // Storage over time: today's row per org shortly after start, then daily, and after every GC run.
  const history = new UsageHistory(storage.db);
  const snapshot = (why: string) =>
    void history.snapshotAll().then(
      (orgs) => log.debug({ orgs, why }, 'usage snapshot written'),
      (err) => log.warn({ err, why }, 'usage snapshot failed'),
    );
  const snapshotFirst = singletons ? setTimeout(() => snapshot('start'), 1000) : undefined;
  snapshotFirst?.unref();
  // Releases published before their sources were stored in the cache get them, in the background.
  const sourcesFirst = singletons
    ? setTimeout(
        () =>
          void backfillReleaseSources(storage, log).catch((err) =>
            log.warn({ err }, 'release sources backfill failed'),
          ),
        1000,
      )
    : undefined;
  sourcesFirst?.unref();
  const snapshotDaily = singletons ? setInterval(() => snapshot('daily'), 86_400_000) : undefined;
  snapshotDaily?.unref();
  const gc = new GarbageCollector(
    storage,
    (hashes) => cache.forget(hashes),
    log,
    (result, bytes) => {
      metrics.gcRun(result, bytes);
      if (result === 'ok') snapshot('gc');
    },
  );
  const gcGraceMs = config.gc.graceSeconds * 1000;
  const gcTimer =
    config.gc.intervalSeconds > 0 && singletons
      ? setInterval(
          () =>
            void gc
              .run({ graceMs: gcGraceMs })
              .then((r) =>
                audit.append({
                  principal: { kind: 'server-admin', tokenId: 'gc-schedule', subject: 'gc-schedule' },
                  action: 'gc.run',
                  target: 'scheduled garbage collection',
                  orgId: null,
                  detail: { roots: r.roots, paths: r.paths, nars: r.nars, orphanBlobs: r.orphanBlobs },
                }),
              )
              .catch((err) => log.error({ err }, 'scheduled gc failed')),
          config.gc.intervalSeconds * 1000,
        )
      : undefined;
  gcTimer?.unref();
  // NARs uploaded without a narinfo (or refused at commit) are collected even with GC off: they
  // count against quotas only until they expire, and must not pile up on disk after that.
  const sweepEveryMs = Math.min(15 * 60_000, Math.max(1000, (config.uploadExpirySeconds * 1000) / 2));
  const uploadSweep = singletons
    ? setInterval(
        () =>
          void gc
            .sweepUploads({ graceMs: gcGraceMs })
            .catch((err) => log.warn({ err }, 'sweeping uncommitted uploads failed')),
        sweepEveryMs,
      )
    : undefined;
  uploadSweep?.unref();
  const resolveClient = clientResolver(config.trustedProxies);
  const verifier = new OidcVerifier(storage.db, config.oidc);
  const sts = new StsVerifier(storage.db, {
    audience: publicUrl,
    ...(config.testAwsStsEndpoint ? { endpointOverride: config.testAwsStsEndpoint } : {}),
  });
  if (config.testAwsStsEndpoint)
    log.warn(
      { endpoint: config.testAwsStsEndpoint },
      'FLOE_TEST_AWS_STS_ENDPOINT is set: AWS logins are verified by a stand-in, not by AWS (tests only)',
    );
  const exchange = new ExchangeService(storage.db, orgs, tokens, verifier, publicUrl, sts);
  await exchange.backfillSubjectKeys();
  const readmes = new ReadmeRenderer(log, (result) => metrics.inc('floe_readme_renders_total', { result }));
  const registry = new RegistryService(storage, orgs, authorizer, cache, audit, (markdown) => readmes.render(markdown));
  // One edge for both HTTP stacks: authentication, the error table, access log and metrics.
  const edge = createEdge({ tokens, log, metrics, resolveClient });
  // Every administrative change, for the API and the web alike: authorize → act → audit.
  const admin = createAdminServices({
    orgs,
    authorizer,
    audit,
    tokens,
    exchange,
    sources,
    cache,
    keys: orgKeys,
    upstreams,
    retention,
    gc,
    policies,
    signers,
  });
  const usage = new UsageService(storage.db);
  const web = webSurface({
    registry,
    orgs,
    tokens,
    exchange,
    authorizer,
    usage,
    retention,
    history,
    metrics,
    log,
    publicUrl: () => publicUrl,
    audit,
    policies,
    cache,
    sources,
    orgKeys,
    admin,
  });
  // Logins, exchanges and raw CI tokens (on both stacks) share one limit per client address.
  const loginLimiter = new RateLimiter(config.authRateLimitPerMinute);
  const exchangeRawCiToken = rawCiTokenExchange(exchange, loginLimiter);
  const app = createApp({
    edge,
    web,
    admin,
    cachePriority: config.priority,
    audit,
    policies,
    signers,
    resolveClient,
    registry,
    usage,
    exchange,
    orgs,
    tokens,
    authorizer,
    cache,
    limits: config.limits,
    publicUrl: () => publicUrl,
    sources,
    orgKeys,
    storage: { db: storage.db, upstreams, retention, history, gc, gcGraceSeconds: config.gc.graceSeconds },
    log,
    jwks: () => keyRing.current.jwks,
    metrics,
    publicMetrics: config.publicMetrics,
    metricsToken: config.metricsToken,
    processMetrics,
    loginLimiter,
    exchangeRawCiToken,
    readiness: async () =>
      connections.isDraining
        ? [{ backend: 'server', ok: false, ms: 0, error: 'shutting down: finishing the requests in flight' }]
        : Promise.all([
            probe('database', () => sql`select 1`.execute(storage.db)),
            probe('blobs', () =>
              storage.blobs.check ? storage.blobs.check() : storage.blobs.size('floe-readiness-probe'),
            ),
            probe('disk', () => checkFreeSpace(config.dataDir, config.minFreeBytes)),
          ]),
    rotateKeys: async () => {
      const kid = await rotateJwtKey(storage.db);
      await keyRing.reload(0);
      await storage.changes.notify('keys', kid).catch(() => undefined); // others also reload on an unknown kid
      return kid;
    },
  });

  const adminTokenFile = path.join(config.dataDir, 'admin-token');
  await ensureAdminToken(adminTokenFile, tokens, log);
  const api = getRequestListener(app.fetch);
  const cacheHandler = createCacheHandler({
    cache,
    orgs,
    edge,
    limits: config.limits,
    priority: config.priority,
    metrics,
    exchangeRawCiToken,
  });
  const wireMarks = new WeakMap<import('node:net').Socket, { read: number; written: number }>();
  const workerName = String(process.pid);
  handler = (req, res) => {
    connections.track(req, res);
    if (role.workerHeader) res.setHeader('X-Floe-Worker', workerName);
    bodies.watch(req, res);
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const pathname = q < 0 ? url : url.slice(0, q);
    // Bytes on the wire (heads and bodies): what the connection moved since the previous request
    // on it ended. Requests on one connection are sequential, so that is this request's share.
    const socket = req.socket;
    res.once('close', () => {
      const seen = wireMarks.get(socket);
      const { bytesRead, bytesWritten } = socket;
      const received = Math.max(0, bytesRead - (seen?.read ?? 0));
      metrics.wireBytes(areaOf(pathname), received, Math.max(0, bytesWritten - (seen?.written ?? 0)));
      if (seen) {
        seen.read = bytesRead;
        seen.written = bytesWritten;
      } else wireMarks.set(socket, { read: bytesRead, written: bytesWritten });
    });
    // Attic's substituter layout (`/<org>+<slice>/...`) is the slice URL under another name.
    const atticPath = atticSubstituterPath(pathname);
    if (pathname === '/cache' || pathname.startsWith('/cache/') || atticPath) {
      cacheHandler(req, res, atticPath ?? pathname).catch((err) => {
        log.error({ err }, 'cache handler crashed');
        res.destroy();
      });
      return;
    }
    void api(req, res);
  };

  log.info({ url: publicUrl, storage: storage.description, adminTokenFile }, 'floe is serving');
  return {
    url: publicUrl,
    storageDescription: storage.description,
    adminTokenFile,
    async close() {
      log.info({ graceSeconds: config.shutdownGraceSeconds }, 'shutting down: finishing the requests in flight');
      clearInterval(keyReload);
      if (gcTimer) clearInterval(gcTimer);
      clearInterval(uploadSweep);
      clearTimeout(snapshotFirst);
      clearTimeout(sourcesFirst);
      clearInterval(snapshotDaily);
      policies.stop();
      processMetrics.stop();
      await connections.drain(config.shutdownGraceSeconds * 1000, log);
      await history.idle();
      await readmes.close();
      await audit.close().catch((err) => log.error({ err }, 'could not write the last audit entries'));
      await storage.close();
    },
  };
}

/**
 * Brings the database to the latest schema and closes it: the supervisor of several workers runs
 * the migrations once, before forking, so the workers never race to apply them.
 */
export async function migrateStorage(config: Config): Promise<void> {
  await restrictDataDir(config.dataDir);
  const storage = await openStorage({
    dataDir: config.dataDir,
    ...(config.databaseUrl ? { databaseUrl: config.databaseUrl } : {}),
    ...(config.s3 ? { s3: config.s3 } : {}),
  });
  await storage.close();
}
