/**
 * PURE: the units Floe writes and reads, so that the CLI, the server and the web print a size or
 * accept a duration the same way: byte sizes in binary units, durations as a number and a unit.
 */
import { InvalidInput } from './errors.js';

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/**
 * `512 B`, `2.0 KiB`, `1.5 MiB`, `3.00 GiB`: one decimal up to MiB, two from GiB up (messages that
 * compare sizes, such as quotas). `short`: at most one decimal, none from 100 up (`5.0 GiB`, `123
 * MiB`), for pages. `wholeKiB`: everything under 1 MiB in whole KiB (`0 KiB`), for progress lines
 * that never show bytes.
 */
export function formatBytes(n: number, opts: { short?: boolean; wholeKiB?: boolean } = {}): string {
  let v = n;
  let i = 0;
  while (v >= 1024 && i < BYTE_UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  if (opts.wholeKiB && i < 2) return `${(n / 1024).toFixed(0)} KiB`;
  if (i === 0) return `${n} B`;
  return `${v.toFixed(opts.short ? (v >= 100 ? 0 : 1) : i >= 3 ? 2 : 1)} ${BYTE_UNITS[i]}`;
}

/** `512`, `512M`, `64GiB`, `1 t` -> bytes (binary multiples). */
export function parseSize(text: string, field: string): number {
  const m = /^(\d+)\s*([kmgt]?)(i?b)?$/i.exec(text.trim());
  if (!m) throw new InvalidInput(field, `expected a size like 512M or 64G, got ${JSON.stringify(text)}`);
  const mult = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[
    m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'
  ];
  return Number(m[1]) * mult;
}

export type DurationUnit = 'ms' | 's' | 'm' | 'h' | 'd' | 'w';
const UNIT_MS: Record<DurationUnit, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** Which durations a setting accepts, and the examples its error names. */
export interface DurationGrammar {
  units: readonly DurationUnit[];
  /** Whether bare digits count as seconds. */
  bareSeconds: boolean;
  /** Whether 0 is a valid duration. */
  zero: boolean;
  examples: string;
}

/** Server settings, retention, pins, token lifetimes: `90`, `30s`, `15m`, `6h`, `30d`, `2w`. */
export const SETTING_DURATION: DurationGrammar = {
  units: ['s', 'm', 'h', 'd', 'w'],
  bareSeconds: true,
  zero: true,
  examples: '90s, 15m, 6h, 30d',
};
/** CLI waits and margins: `90s`, `10m`, `1h`. */
export const CLI_DURATION: DurationGrammar = {
  units: ['s', 'm', 'h'],
  bareSeconds: false,
  zero: true,
  examples: '90s, 10m or 1h',
};
/** Store watchers' timings, which go below a second: `250ms`, `1s`, `10m`; never 0. */
export const WATCH_DURATION: DurationGrammar = {
  units: ['ms', 's', 'm', 'h'],
  bareSeconds: false,
  zero: false,
  examples: '500ms, 90s, 10m or 1h',
};

/** `text` in milliseconds, or an InvalidInput naming `field` and the grammar's examples. */
export function parseDurationMs(text: string, field: string, grammar: DurationGrammar): number {
  const m = /^(\d{1,10})\s*([a-z]*)$/.exec(text.trim());
  const unit = !m ? undefined : m[2] ? grammar.units.find((u) => u === m[2]) : grammar.bareSeconds ? 's' : undefined;
  const ms = m && unit ? Number(m[1]) * UNIT_MS[unit] : Number.NaN;
  if (Number.isNaN(ms) || (ms === 0 && !grammar.zero))
    throw new InvalidInput(field, `expected a duration like ${grammar.examples}, got ${JSON.stringify(text)}`);
  return ms;
}

/** A setting's duration (SETTING_DURATION) in whole seconds; 0 allowed. */
export function parseDuration(text: string, field: string): number {
  return parseDurationMs(text, field, SETTING_DURATION) / 1000;
}

/** `59s`, `1m01s`, `3h05m`: an elapsed time or an ETA, to the second. */
export function formatDuration(secs: number): string {
  const s = Math.max(0, Math.round(secs));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
