/**
 * PURE: which errors of drivers and the OS mean "a backend is unreachable" or "the disk is full",
 * as opposed to a bad query or a bug. Backends wrap the first kind into `Unavailable` and the error
 * table maps the second to 507, so neither ends up as a 500 or, worse, as the client's fault.
 */

/** Socket-level failures: the peer refused, reset, or never answered. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * PostgreSQL SQLSTATEs of a server that went away or will not take us now: class 08 (connection
 * exception), 57P01 admin_shutdown (pg_terminate_backend, a fast shutdown), 57P02 crash_shutdown,
 * 57P03 cannot_connect_now (starting up, in recovery), 53300 too_many_connections.
 */
const PG_UNAVAILABLE = /^(08...|57P0[123]|53300)$/;

/** node-postgres reports a lost or never-made connection with plain messages, not codes. */
const PG_CONNECTION_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|connection error and is not queryable|Client was closed and is not queryable|Query read timeout/i;

interface ErrorLike {
  code?: unknown;
  name?: unknown;
  message?: unknown;
  cause?: unknown;
  errors?: unknown;
  $metadata?: { httpStatusCode?: number };
}

function codeOf(err: ErrorLike): string {
  return typeof err.code === 'string' ? err.code : '';
}

/** Walks `cause` chains and AggregateErrors (Node's happy-eyeballs connect reports one). */
function some(err: unknown, test: (e: ErrorLike) => boolean, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > 4) return false;
  const e = err as ErrorLike;
  if (test(e)) return true;
  if (Array.isArray(e.errors) && e.errors.some((x) => some(x, test, depth + 1))) return true;
  return some(e.cause, test, depth + 1);
}

export function isNetworkFailure(err: unknown): boolean {
  return some(err, (e) => NETWORK_CODES.has(codeOf(e)));
}

/** The database connection failed, was cut, or timed out (not: the query was wrong). */
export function isDatabaseUnavailable(err: unknown): boolean {
  return some(
    err,
    (e) =>
      NETWORK_CODES.has(codeOf(e)) ||
      PG_UNAVAILABLE.test(codeOf(e)) ||
      (typeof e.message === 'string' && PG_CONNECTION_MESSAGES.test(e.message)),
  );
}

/** S3 (AWS SDK v3) could not be reached, timed out, or answered with a server-side 5xx. */
export function isObjectStoreUnavailable(err: unknown): boolean {
  return some(err, (e) => {
    if (NETWORK_CODES.has(codeOf(e))) return true;
    if (
      e.name === 'TimeoutError' ||
      e.name === 'RequestTimeout' ||
      e.name === 'ServiceUnavailable' ||
      e.name === 'SlowDown'
    )
      return true;
    const status = e.$metadata?.httpStatusCode;
    return typeof status === 'number' && status >= 500;
  });
}

/** No space (or quota) left where Floe writes: local files, the S3 spool, SQLite. */
export function isStorageFull(err: unknown): boolean {
  return some(err, (e) => {
    const code = codeOf(e);
    return code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL';
  });
}
