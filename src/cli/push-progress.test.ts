import { describe, expect, it } from 'vitest';
import { formatDuration } from '../units.js';
import { PushProgress } from './push-progress.js';

describe('push progress', () => {
  it('reports bytes, percent, rate and ETA from the first byte, and throttles its lines', () => {
    const p = new PushProgress(100 * 2 ** 20, 2, 5000);
    expect(p.line(0)).toBe('0 KiB of 100.0 MiB (0%), 0 KiB/s, ETA unknown, 0/2 paths');
    p.read(10 * 2 ** 20, 1000);
    p.read(10 * 2 ** 20, 3000);
    // 20 MiB in the 2 s since the first byte: 10 MiB/s, 80 MiB left = 8 s.
    expect(p.line(3000)).toBe('20.0 MiB of 100.0 MiB (20%), 10.0 MiB/s, ETA 8s, 0/2 paths');
    // The first line an interval after the first byte, then one per interval.
    expect(p.due(3000)).toBe(false);
    expect(p.due(6000)).toBe(true);
    expect(p.due(10_999)).toBe(false);
    expect(p.due(11_000)).toBe(true);
  });

  it('formats durations', () => {
    expect(formatDuration(59.4)).toBe('59s');
    expect(formatDuration(61)).toBe('1m01s');
    expect(formatDuration(3 * 3600 + 5 * 60)).toBe('3h05m');
  });
});
