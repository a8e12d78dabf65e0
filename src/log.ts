import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs. Request logs are built by hand from method, path, status and principal:
 * headers are never logged, and redaction is a second line of defence for tokens.
 */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'floe' },
    redact: {
      paths: ['token', '*.token', 'authorization', '*.authorization', 'headers.authorization', 'password'],
      censor: '[redacted]',
    },
  });
}
