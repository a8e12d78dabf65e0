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

/** The access log's fields: a closed set of names, each a string or a number (never an object). */
export type AccessFields = Record<string, string | number | undefined>;

interface PinoInternals {
  [pino.symbols.streamSym]: { write(line: string): unknown };
  [pino.symbols.chindingsSym]: string;
}

/**
 * Writes one info line the way `log.info(fields, msg)` would (same JSON, same stream), without
 * pino's generic serializer and its redaction walk, which cost more than the rest of a narinfo
 * hit. Only for fields that cannot hold a secret (the access log's: ids, method, path, status,
 * principal description, address). The caller checks `isLevelEnabled('info')`.
 */
export function infoLineWriter(log: Logger): (fields: AccessFields, msg: string) => void {
  const internals = log as unknown as PinoInternals;
  const stream = internals[pino.symbols.streamSym];
  const bindings = internals[pino.symbols.chindingsSym];
  const level = log.levels.values.info;
  return (fields, msg) => {
    let line = `{"level":${level},"time":${Date.now()}${bindings}`;
    for (const key in fields) {
      const v = fields[key];
      if (v === undefined) continue;
      line += `,${JSON.stringify(key)}:${typeof v === 'number' ? (Number.isFinite(v) ? v : 'null') : JSON.stringify(v)}`;
    }
    stream.write(`${line},"msg":${JSON.stringify(msg)}}\n`);
  };
}
