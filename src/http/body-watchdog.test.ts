import { describe, expect, it } from 'vitest';
import { type BodySample, bodyStall } from './body-watchdog.js';

const opts = { idleMs: 30_000, minBytesPerSecond: 100, windowMs: 10_000, tickMs: 1000 };
const samples = (n: number, s: BodySample) => Array.from({ length: n }, () => s);

describe('bodyStall', () => {
  it('is idle once the server waited the idle time without a byte', () => {
    expect(bodyStall([], 29_000, opts)).toBeUndefined();
    expect(bodyStall([], 30_000, opts)).toEqual({ kind: 'idle', ms: 30_000 });
  });

  it('is slow when a window spent waiting brought fewer bytes than the minimum rate', () => {
    expect(bodyStall(samples(10, { waiting: true, bytes: 50 }), 0, opts)).toEqual({ kind: 'slow', bytesPerSecond: 50 });
    expect(bodyStall(samples(10, { waiting: true, bytes: 100 }), 0, opts)).toBeUndefined();
    expect(bodyStall(samples(9, { waiting: true, bytes: 1 }), 0, opts)).toBeUndefined(); // not a full window yet
  });

  it('never blames the client for time the server was not reading (queued, or busy)', () => {
    const window = [...samples(9, { waiting: true, bytes: 0 }), { waiting: false, bytes: 0 }];
    expect(bodyStall(window, 0, opts)).toBeUndefined();
    expect(bodyStall(samples(10, { waiting: true, bytes: 0 }), 0, { ...opts, minBytesPerSecond: 0 })).toBeUndefined();
  });
});
