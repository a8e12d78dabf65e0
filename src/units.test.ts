import { describe, expect, it } from 'vitest';
import {
  CLI_DURATION,
  SETTING_DURATION,
  WATCH_DURATION,
  formatBytes,
  formatDuration,
  parseDuration,
  parseDurationMs,
  parseSize,
} from './units.js';

describe('units', () => {
  it('writes sizes in binary units: one decimal up to MiB, two from GiB up', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(64 * 2 ** 20)).toBe('64.0 MiB');
    expect(formatBytes(5 * 2 ** 30)).toBe('5.00 GiB');
    expect(formatBytes(3 * 2 ** 40)).toBe('3.00 TiB');
    expect(formatBytes(2 ** 60)).toBe('1024.00 PiB');
  });

  it('writes short sizes for pages: one decimal, none from 100 up', () => {
    expect(formatBytes(512, { short: true })).toBe('512 B');
    expect(formatBytes(64 * 2 ** 20, { short: true })).toBe('64.0 MiB');
    expect(formatBytes(123.4 * 2 ** 20, { short: true })).toBe('123 MiB');
    expect(formatBytes(5 * 2 ** 30, { short: true })).toBe('5.0 GiB');
  });

  it('writes progress sizes in whole KiB under 1 MiB, never bytes', () => {
    expect(formatBytes(0, { wholeKiB: true })).toBe('0 KiB');
    expect(formatBytes(700, { wholeKiB: true })).toBe('1 KiB');
    expect(formatBytes(300 * 1024, { wholeKiB: true })).toBe('300 KiB');
    expect(formatBytes(12 * 2 ** 20, { wholeKiB: true })).toBe('12.0 MiB');
  });

  it('reads sizes with or without a binary unit', () => {
    expect(parseSize('512', 'x')).toBe(512);
    expect(parseSize('512M', 'x')).toBe(512 * 2 ** 20);
    expect(parseSize('64GiB', 'x')).toBe(64 * 2 ** 30);
    expect(parseSize(' 1 t ', 'x')).toBe(2 ** 40);
    expect(() => parseSize('12 parsecs', 'quota')).toThrow(
      /^quota: expected a size like 512M or 64G, got "12 parsecs"$/,
    );
  });

  it('reads setting durations in seconds: bare digits are seconds, 0 is allowed, no milliseconds', () => {
    expect(parseDuration('90', 'x')).toBe(90);
    expect(parseDuration('0', 'x')).toBe(0);
    expect(parseDuration('15m', 'x')).toBe(900);
    expect(parseDuration('6 h', 'x')).toBe(21_600);
    expect(parseDuration('30d', 'x')).toBe(2_592_000);
    expect(parseDuration('2w', 'x')).toBe(1_209_600);
    expect(() => parseDuration('250ms', 'retention')).toThrow(
      /^retention: expected a duration like 90s, 15m, 6h, 30d, got "250ms"$/,
    );
    expect(() => parseDuration('-5s', 'ttl')).toThrow(/^ttl: expected a duration/);
    expect(() => parseDuration('1y', 'ttl')).toThrow(/^ttl: expected a duration/);
  });

  it('reads CLI and watcher durations in milliseconds, each with its own units', () => {
    expect(parseDurationMs('10m', '--refresh-before', CLI_DURATION)).toBe(600_000);
    expect(() => parseDurationMs('10', '--refresh-before', CLI_DURATION)).toThrow(
      /^--refresh-before: expected a duration like 90s, 10m or 1h, got "10"$/,
    );
    expect(() => parseDurationMs('2d', '--refresh-before', CLI_DURATION)).toThrow(/expected a duration/);
    expect(parseDurationMs('250ms', '--interval', WATCH_DURATION)).toBe(250);
    expect(() => parseDurationMs('0s', '--interval', WATCH_DURATION)).toThrow(/--interval: expected a duration/);
    expect(parseDurationMs('0s', 'x', SETTING_DURATION)).toBe(0);
  });

  it('writes elapsed times to the second', () => {
    expect(formatDuration(-3)).toBe('0s');
    expect(formatDuration(59.4)).toBe('59s');
    expect(formatDuration(61)).toBe('1m01s');
    expect(formatDuration(3 * 3600 + 5 * 60)).toBe('3h05m');
  });
});
