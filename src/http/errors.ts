/** The only place an error becomes an HTTP status. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FloeError, InsufficientStorage, TooManyRequests, Unavailable, type ErrorCode } from '../errors.js';
import { isNetworkFailure, isStorageFull } from '../storage/failures.js';
import type { Logger } from '../log.js';

export const STATUS = {
  invalid_input: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  rate_limited: 429,
  unavailable: 503,
  insufficient_storage: 507,
  internal: 500,
} as const satisfies Record<ErrorCode, number>;

export interface ErrorBody {
  status: number;
  code: ErrorCode;
  message: string;
  /** For 429 and 503: when the client may try again (the Retry-After header). */
  retryAfterSeconds?: number;
}

/** Seconds a client should wait after a 503 that names no backend. */
const RETRY_AFTER_UNAVAILABLE = 5;

/**
 * Errors that are not Floe's own but say what happened: a full disk (507, not "bad input" and not a
 * bug) and a backend the network cannot reach (503, retry). Anything else stays an internal error.
 */
function fromSystemError(err: unknown): FloeError | undefined {
  if (isStorageFull(err)) return new InsufficientStorage({ cause: err });
  if (isNetworkFailure(err))
    return new FloeError(
      'unavailable',
      'a service this request needs is unavailable right now; try again in a few seconds',
      { cause: err },
    );
  return undefined;
}

/**
 * Client errors keep their message (it says what to fix), and so do 503 and 507 (ours, written to
 * say which part of the server is missing, never a driver's text); other server errors expose only
 * a request id.
 */
export function errorBody(err: unknown, requestId: string): ErrorBody {
  const known = err instanceof FloeError ? err : fromSystemError(err);
  if (!known) return { status: 500, code: 'internal', message: `internal error (request ${requestId})` };
  const status = STATUS[known.code];
  const explained = status < 500 || known.code === 'unavailable' || known.code === 'insufficient_storage';
  const body: ErrorBody = {
    status,
    code: known.code,
    message: explained ? known.message : `internal error (request ${requestId})`,
  };
  if (known instanceof TooManyRequests || known instanceof Unavailable)
    body.retryAfterSeconds = known.retryAfterSeconds;
  else if (known.code === 'unavailable') body.retryAfterSeconds = RETRY_AFTER_UNAVAILABLE;
  return body;
}

/**
 * One log line per failed request: bugs at error level with the stack; an unreachable backend or a
 * full disk at warn (the operator must act, but every request during an outage would otherwise
 * print a stack trace); client errors at debug.
 */
export function logFailure(log: Logger, requestId: string, body: ErrorBody, err: unknown): void {
  if (body.code === 'unavailable' || body.code === 'insufficient_storage') {
    const cause = (err as Error).cause ?? err;
    log.warn(
      { reqId: requestId, code: body.code, cause: String((cause as Error)?.message ?? cause).slice(0, 300) },
      'request failed',
    );
  } else if (body.status >= 500) log.error({ reqId: requestId, err }, 'request failed');
  else log.debug({ reqId: requestId, code: body.code, msg: (err as Error).message }, 'client error');
}

/**
 * The one answer for "missing" and for "denied read", byte-identical wherever it comes from.
 * Returned directly on hot paths (no exception, no stack trace), and by the error handler for NotFound.
 */
export const MISS_BODY = 'not found\n';
export const MISS_HEADERS = { 'Content-Type': 'text/plain; charset=UTF-8', 'Cache-Control': 'no-store' } as const;

export function missResponse(): Response {
  return new Response(MISS_BODY, { status: 404, headers: MISS_HEADERS });
}

/**
 * The status recorded (metrics, access log) for a request whose client went away before the
 * answer was complete: nginx's 499. Not an error of the server, and never sent to anyone.
 */
export const CLIENT_CLOSED = 499;

/** The client closed the connection before the response was fully sent (upload cancelled, download cut). */
export function clientWentAway(req: IncomingMessage, res: ServerResponse): boolean {
  return !res.writableEnded && (res.destroyed || req.socket.destroyed);
}
