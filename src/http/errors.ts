/** The only place an error becomes an HTTP status. */
import { FloeError, type ErrorCode } from '../errors.js';

export const STATUS = {
  invalid_input: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
} as const satisfies Record<ErrorCode, number>;

export interface ErrorBody {
  status: number;
  code: ErrorCode;
  message: string;
}

/** Client errors keep their message (it says what to fix); server errors expose only a request id. */
export function errorBody(err: unknown, requestId: string): ErrorBody {
  if (err instanceof FloeError) {
    const status = STATUS[err.code];
    return { status, code: err.code, message: status >= 500 ? `internal error (request ${requestId})` : err.message };
  }
  return { status: 500, code: 'internal', message: `internal error (request ${requestId})` };
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
