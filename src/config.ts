/** Configuration from flags and environment, with zero-configuration defaults (embedded SQLite + files). */
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { InvalidInput } from './errors.js';
import { isValidCidr } from './policy/network.js';
import { parseDuration, parseSize } from './units.js';
import { parseVerifyThreads } from './cache/verify-pool.js';

export interface Limits {
  /** Largest NAR upload body (compressed, on the wire). */
  maxUploadBytes: number;
  /** Largest NAR after decompression. */
  maxNarBytes: number;
  /** Largest narinfo, JSON or other small body. */
  maxSmallBodyBytes: number;
  /** Most store paths in one batch query. */
  maxBatchPaths: number;
}

export interface S3Config {
  bucket: string;
  prefix: string;
  endpoint?: string;
  region: string;
  forcePathStyle: boolean;
  presignSeconds: number;
  /** Ranged GETs in flight per NAR download streamed through Floe (1 = one at a time); unset: the store's default. */
  readDepth?: number;
}

export interface Config {
  dataDir: string;
  /** postgres://… for the scale-out setup; undefined = embedded SQLite. */
  databaseUrl: string | undefined;
  /** S3-compatible blob storage; undefined = local files. */
  s3: S3Config | undefined;
  listen: { host: string; port: number };
  /** The URL clients use; undefined = derived from the listen address once bound. */
  publicUrl: string | undefined;
  /** Name of the narinfo signing key; default `<public host>-1`. */
  cacheKeyName: string | undefined;
  logLevel: string;
  priority: number;
  oidc: { allowHttpIssuers: boolean; jwksCooldownMs: number };
  publicMetrics: boolean;
  /** A secret that opens /metrics and nothing else (for scrapers: not the admin token). */
  metricsToken: string | undefined;
  /** Proxies whose X-Forwarded-For is believed (addresses, CIDRs, or loopback/linklocal/uniquelocal). */
  trustedProxies: string[];
  /** Logins and identity exchanges per client address per minute (0 = unlimited). */
  authRateLimitPerMinute: number;
  /** Tests only: an STS stand-in that AWS logins are sent to. */
  testAwsStsEndpoint: string | undefined;
  limits: Limits;
  /** Garbage collection: how often `floe serve` runs it (0 = only when asked), and the grace period. */
  gc: { intervalSeconds: number; graceSeconds: number };
  /** On SIGTERM: how long requests in flight may take to finish before their connections are cut. */
  shutdownGraceSeconds: number;
  /** /readyz fails when the data directory has less free space than this (0 = no check). */
  minFreeBytes: number;
  /**
   * Concurrent NAR ingestions in all, per org and per token (the rest queue, served to orgs and,
   * within an org, to tokens in turn); per token defaults to one less than per org.
   */
  ingest: { slots: number; slotsPerOrg: number; slotsPerToken?: number };
  /** Threads that verify uploaded NARs (FLOE_VERIFY_THREADS; 0 = on the event loop). */
  verifyThreads: number;
  /** Processes sharing the port (FLOE_WORKERS, `--workers` wins; default one per core; 1 = a single process). */
  workers: number;
  /** A request body that sends nothing for this long while the server waits is answered 408 (0 = never). */
  bodyIdleSeconds: number;
  /** ...or that arrives slower than this, averaged over twice the idle time (0 = no minimum). */
  bodyMinBytesPerSecond: number;
  /** Open connections per client address (peers in trustedProxies are not capped; 0 = no cap). */
  maxConnectionsPerClient: number;
  /** How long an uploaded NAR without a narinfo stays (and counts against its org's quota) before it is collected. */
  uploadExpirySeconds: number;
}

const MAX_WORKERS = 256;

/** A number of worker processes, 1 to 256; unset or empty: one per core. */
export function parseWorkers(text: string | undefined, field: string): number {
  if (text === undefined || text === '') return availableParallelism();
  const n = /^\d+$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS)
    throw new InvalidInput(
      field,
      `expected a number of processes from 1 to ${MAX_WORKERS}, got ${JSON.stringify(text)}`,
    );
  return n;
}

export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535)
    throw new InvalidInput('listen', `expected HOST:PORT (e.g. 127.0.0.1:8080), got ${JSON.stringify(text)}`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

function parseCount(text: string, field: string): number {
  if (!/^\d{1,9}$/.test(text.trim()))
    throw new InvalidInput(field, `expected a whole number, got ${JSON.stringify(text)}`);
  return Number(text.trim());
}

function positive(text: string, field: string): number {
  const n = parseCount(text, field);
  if (n < 1) throw new InvalidInput(field, 'must be at least 1');
  return n;
}

export function parseTrustedProxies(text: string): string[] {
  const items = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const item of items) {
    if (['loopback', 'linklocal', 'uniquelocal'].includes(item)) continue;
    if (!isValidCidr(item))
      throw new InvalidInput(
        'FLOE_TRUSTED_PROXIES',
        `${JSON.stringify(item)} is not an address, a CIDR, or one of loopback, linklocal, uniquelocal`,
      );
  }
  return items;
}

export function loadConfig(
  flags: { dataDir?: string; listen?: string; publicUrl?: string },
  env: NodeJS.ProcessEnv = process.env,
): Config {
  const publicUrl = flags.publicUrl ?? env.FLOE_PUBLIC_URL;
  if (publicUrl !== undefined && !/^https?:\/\/[^/\s]+(\/[^\s]*)?$/.test(publicUrl)) {
    throw new InvalidInput('FLOE_PUBLIC_URL', `expected an http(s) URL, got ${JSON.stringify(publicUrl)}`);
  }
  const maxNar = env.FLOE_MAX_NAR_SIZE ? parseSize(env.FLOE_MAX_NAR_SIZE, 'FLOE_MAX_NAR_SIZE') : 64 * 2 ** 30;
  const databaseUrl = env.FLOE_DATABASE_URL || undefined;
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new InvalidInput('FLOE_DATABASE_URL', 'expected a postgres:// or postgresql:// URL');
  }
  return {
    dataDir: path.resolve(flags.dataDir ?? env.FLOE_DATA_DIR ?? './floe-data'),
    databaseUrl,
    s3: loadS3Config(env),
    listen: parseListen(flags.listen ?? env.FLOE_LISTEN ?? '127.0.0.1:8080'),
    publicUrl: publicUrl?.replace(/\/+$/, ''),
    cacheKeyName: env.FLOE_CACHE_KEY_NAME,
    logLevel: env.FLOE_LOG_LEVEL ?? 'info',
    testAwsStsEndpoint: env.FLOE_TEST_AWS_STS_ENDPOINT || undefined,
    publicMetrics: /^(1|true|yes)$/i.test(env.FLOE_METRICS_PUBLIC ?? ''),
    metricsToken: metricsToken(env.FLOE_METRICS_TOKEN),
    trustedProxies: parseTrustedProxies(env.FLOE_TRUSTED_PROXIES ?? ''),
    authRateLimitPerMinute: parseCount(env.FLOE_AUTH_RATE_LIMIT ?? '120', 'FLOE_AUTH_RATE_LIMIT'),
    oidc: {
      // Development and tests only: production issuers are https.
      allowHttpIssuers: /^(1|true|yes)$/i.test(env.FLOE_OIDC_ALLOW_HTTP_ISSUERS ?? ''),
      jwksCooldownMs: env.FLOE_OIDC_JWKS_COOLDOWN_MS ? Number(env.FLOE_OIDC_JWKS_COOLDOWN_MS) : 30_000,
    },
    gc: {
      intervalSeconds: env.FLOE_GC_INTERVAL ? parseDuration(env.FLOE_GC_INTERVAL, 'FLOE_GC_INTERVAL') : 0,
      graceSeconds: env.FLOE_GC_GRACE ? parseDuration(env.FLOE_GC_GRACE, 'FLOE_GC_GRACE') : 3600,
    },
    shutdownGraceSeconds: env.FLOE_SHUTDOWN_GRACE_SECONDS
      ? parseDuration(env.FLOE_SHUTDOWN_GRACE_SECONDS, 'FLOE_SHUTDOWN_GRACE_SECONDS')
      : 25,
    minFreeBytes: env.FLOE_MIN_FREE_BYTES ? parseSize(env.FLOE_MIN_FREE_BYTES, 'FLOE_MIN_FREE_BYTES') : 256 * 2 ** 20,
    ingest: {
      slots: positive(env.FLOE_INGEST_SLOTS ?? '16', 'FLOE_INGEST_SLOTS'),
      slotsPerOrg: positive(env.FLOE_INGEST_SLOTS_PER_ORG ?? '4', 'FLOE_INGEST_SLOTS_PER_ORG'),
      ...(env.FLOE_INGEST_SLOTS_PER_TOKEN
        ? { slotsPerToken: positive(env.FLOE_INGEST_SLOTS_PER_TOKEN, 'FLOE_INGEST_SLOTS_PER_TOKEN') }
        : {}),
    },
    verifyThreads: parseVerifyThreads(env.FLOE_VERIFY_THREADS),
    workers: parseWorkers(env.FLOE_WORKERS, 'FLOE_WORKERS'),
    bodyIdleSeconds: parseDuration(env.FLOE_BODY_IDLE_SECONDS ?? '30', 'FLOE_BODY_IDLE_SECONDS'),
    bodyMinBytesPerSecond: env.FLOE_BODY_MIN_RATE ? parseSize(env.FLOE_BODY_MIN_RATE, 'FLOE_BODY_MIN_RATE') : 512,
    maxConnectionsPerClient: parseCount(env.FLOE_MAX_CONNECTIONS_PER_CLIENT ?? '64', 'FLOE_MAX_CONNECTIONS_PER_CLIENT'),
    uploadExpirySeconds: positive(
      String(env.FLOE_UPLOAD_EXPIRY ? parseDuration(env.FLOE_UPLOAD_EXPIRY, 'FLOE_UPLOAD_EXPIRY') : 86_400),
      'FLOE_UPLOAD_EXPIRY',
    ),
    priority: env.FLOE_CACHE_PRIORITY ? Number(env.FLOE_CACHE_PRIORITY) : 30,
    limits: {
      maxUploadBytes: env.FLOE_MAX_UPLOAD_SIZE ? parseSize(env.FLOE_MAX_UPLOAD_SIZE, 'FLOE_MAX_UPLOAD_SIZE') : maxNar,
      maxNarBytes: maxNar,
      maxSmallBodyBytes: 1 << 20,
      maxBatchPaths: 10_000,
    },
  };
}

function metricsToken(text: string | undefined): string | undefined {
  if (!text) return undefined;
  // A guessable secret would open the metrics to anyone who tries a few.
  if (text.length < 24 || /\s/.test(text))
    throw new InvalidInput(
      'FLOE_METRICS_TOKEN',
      'use at least 24 characters without spaces (e.g. openssl rand -hex 32)',
    );
  return text;
}

function loadS3Config(env: NodeJS.ProcessEnv): S3Config | undefined {
  const bucket = env.FLOE_S3_BUCKET;
  if (!bucket) {
    const stray = Object.keys(env).filter((k) => k.startsWith('FLOE_S3_') && env[k]);
    if (stray.length)
      throw new InvalidInput(
        'FLOE_S3_BUCKET',
        `must be set when ${stray.join(', ')} ${stray.length > 1 ? 'are' : 'is'} set`,
      );
    return undefined;
  }
  const endpoint = env.FLOE_S3_ENDPOINT || undefined;
  if (endpoint !== undefined && !/^https?:\/\//.test(endpoint))
    throw new InvalidInput('FLOE_S3_ENDPOINT', `expected an http(s) URL, got ${JSON.stringify(endpoint)}`);
  const prefix = env.FLOE_S3_PREFIX ?? '';
  if (prefix && !/^[A-Za-z0-9._/-]+\/$/.test(prefix))
    throw new InvalidInput('FLOE_S3_PREFIX', 'use letters, digits, ".", "_", "-" and "/", ending with "/"');
  const presign = env.FLOE_S3_PRESIGN_SECONDS ? Number(env.FLOE_S3_PRESIGN_SECONDS) : 0;
  if (!Number.isInteger(presign) || presign < 0 || presign > 7 * 86400)
    throw new InvalidInput('FLOE_S3_PRESIGN_SECONDS', 'expected 0 (stream through Floe) up to 604800');
  const readDepth = env.FLOE_S3_READ_DEPTH ? Number(env.FLOE_S3_READ_DEPTH) : undefined;
  if (readDepth !== undefined && (!Number.isInteger(readDepth) || readDepth < 1 || readDepth > 32))
    throw new InvalidInput('FLOE_S3_READ_DEPTH', 'expected 1 (one ranged GET at a time) up to 32');
  return {
    bucket,
    prefix,
    ...(endpoint ? { endpoint } : {}),
    region: env.FLOE_S3_REGION ?? env.AWS_REGION ?? 'us-east-1',
    forcePathStyle: /^(1|true|yes)$/i.test(env.FLOE_S3_FORCE_PATH_STYLE ?? (endpoint ? 'true' : 'false')),
    presignSeconds: presign,
    ...(readDepth !== undefined ? { readDepth } : {}),
  };
}
