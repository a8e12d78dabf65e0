/**
 * Domain errors. No HTTP here: `src/http/errors.ts` is the only place that maps a code to a status.
 * Messages of client errors say what to fix; they must never contain secrets.
 */
export type ErrorCode =
  | 'invalid_input'
  | 'not_found'
  | 'unauthenticated'
  | 'forbidden'
  | 'conflict'
  | 'too_large'
  | 'rate_limited'
  | 'unavailable'
  | 'insufficient_storage'
  | 'internal';

export class FloeError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'FloeError';
  }
}

export class InvalidInput extends FloeError {
  constructor(
    readonly field: string,
    detail: string,
  ) {
    super('invalid_input', `${field}: ${detail}`);
  }
}

/** The one value for "missing" and for "denied read": callers cannot tell them apart. */
export class NotFound extends FloeError {
  constructor() {
    super('not_found', 'not found');
  }
}

/**
 * A 404 that explains itself (API routes only): used once the caller may know what exists (a
 * flake it may see, `noSliceNamed` for an org's own members).
 */
export class NotFoundWithReason extends FloeError {
  constructor(message: string) {
    super('not_found', message);
  }
}

export class Unauthenticated extends FloeError {
  constructor(message: string) {
    super('unauthenticated', message);
  }
}

export class Forbidden extends FloeError {
  constructor(message: string) {
    super('forbidden', message);
  }
}

export class Conflict extends FloeError {
  constructor(message: string) {
    super('conflict', message);
  }
}

/** Too many attempts from one client; `retryAfterSeconds` says when to try again. */
export class TooManyRequests extends FloeError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super('rate_limited', message);
  }
}

export class TooLarge extends FloeError {
  constructor(message: string) {
    super('too_large', message);
  }
}

/** A backend Floe needs for this request cannot be reached right now (an outage, a failover). */
export type Backend = 'database' | 'blob store';

/**
 * The request needs a backend that is unavailable; the client may retry after `retryAfterSeconds`.
 * The message is ours (never the driver's, which can name internal hosts) and says what is missing.
 */
export class Unavailable extends FloeError {
  constructor(
    readonly backend: Backend,
    options?: { cause?: unknown },
    readonly retryAfterSeconds = 5,
  ) {
    super(
      'unavailable',
      `this request needs the ${backend}, which is unavailable right now; try again in a few seconds`,
      options,
    );
  }
}

/** The server's own storage is full: not the client's fault, and nothing was stored. */
export class InsufficientStorage extends FloeError {
  constructor(options?: { cause?: unknown }) {
    super(
      'insufficient_storage',
      "the server's storage is full (no space left on its data directory); nothing was stored. Try again later; the operator has to free space",
      options,
    );
  }
}

/** An error the user can fix (4xx), as opposed to the server's side of things: bugs, outages, a full disk. */
export function isClientError(err: unknown): err is FloeError {
  return (
    err instanceof FloeError &&
    err.code !== 'internal' &&
    err.code !== 'unavailable' &&
    err.code !== 'insufficient_storage'
  );
}
