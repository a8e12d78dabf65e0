import { describe, expect, it } from 'vitest';
import { transferable } from './verify-pool.js';

describe('transferable', () => {
  it('moves a chunk that is the only view of its memory, without a copy', () => {
    const chunk = Buffer.from(new ArrayBuffer(64 << 10));
    chunk.fill(7);
    const data = transferable(chunk);
    expect(data.buffer).toBe(chunk.buffer);
    const moved = structuredClone(data, { transfer: [data.buffer] });
    expect(moved[100]).toBe(7);
    expect(chunk.buffer.byteLength).toBe(0); // detached: the caller gave it up
  });

  it('copies a view into a larger or pooled buffer, leaving the other bytes alone', () => {
    const backing = Buffer.from(new ArrayBuffer(1024)).fill(1);
    const view = backing.subarray(100, 200).fill(9);
    const data = transferable(view);
    expect(data.buffer).not.toBe(backing.buffer);
    expect([data.byteLength, data[0]]).toEqual([100, 9]);
    structuredClone(data, { transfer: [data.buffer] });
    expect([backing.byteLength, backing[0], backing[150]]).toEqual([1024, 1, 9]);
    const pooled = Buffer.from('small');
    expect(transferable(pooled).buffer).not.toBe(pooled.buffer);
  });
});
