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
