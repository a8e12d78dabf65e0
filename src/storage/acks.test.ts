import { describe, expect, it } from 'vitest';
import {
  AckBatch,
  AckWaits,
  ackChannel,
  ackRequest,
  encodeAcks,
  feedApplicationName,
  feedIdOf,
  parseAckRequest,
  parseAcks,
} from './acks.js';

const A = 'aaaaaaaaaaaaaaaa';
const B = 'bbbbbbbbbbbbbbbb';
const C = 'cccccccccccccccc';

describe('ack wire format', () => {
  it('names feeds in application_name and reads only well-formed names back', () => {
    expect(feedIdOf(feedApplicationName(A))).toBe(A);
    expect(feedIdOf('psql')).toBeUndefined();
    expect(feedIdOf(null)).toBeUndefined();
    expect(feedIdOf('floe-feed not-hex')).toBeUndefined();
    expect(ackChannel(A)).toMatch(/^[a-z0-9_]+$/);
  });

  it('round-trips an ack request and refuses malformed ones', () => {
    const req = ackRequest(A, 42);
    expect(req.startsWith('ack?:')).toBe(true);
    expect(parseAckRequest(req.slice('ack?:'.length))).toEqual({ writer: A, seq: 42 });
    expect(parseAckRequest('nope')).toBeUndefined();
    expect(parseAckRequest(`${A}:x`)).toBeUndefined();
    expect(parseAckRequest(`zz:1`)).toBeUndefined();
  });

  it('splits a long burst of answers below the NOTIFY payload limit', () => {
    const seqs = Array.from({ length: 5000 }, (_, i) => 1_000_000 + i);
    const payloads = encodeAcks(B, seqs, 7000);
    expect(payloads.length).toBeGreaterThan(1);
    for (const p of payloads) expect(Buffer.byteLength(p)).toBeLessThanOrEqual(7000);
    const back = payloads.map((p) => parseAcks(p)!);
    expect(back.every((a) => a.listener === B)).toBe(true);
    expect(back.flatMap((a) => a.seqs)).toEqual(seqs);
    expect(encodeAcks(B, [])).toEqual([]);
    expect(parseAcks('garbage')).toBeUndefined();
  });

  it('batches a listener’s answers by writer', () => {
    const batch = new AckBatch();
    batch.add(A, 1);
    batch.add(C, 7);
    batch.add(A, 2);
    const out = batch.take(B);
    expect(out).toEqual([
      { channel: ackChannel(A), payload: `${B}:1,2` },
      { channel: ackChannel(C), payload: `${B}:7` },
    ]);
    expect(batch.size).toBe(0);
  });
});

describe('AckWaits', () => {
  it('resolves once every expected listener answered, counting answers that came before the wait', async () => {
    const waits = new AckWaits();
    waits.open(1);
    waits.acked(B, [1]); // a fast listener, before the writer knew whom to expect
    let done = false;
    const p = waits.wait(1, [B, C], 5_000).then((missing) => {
      done = true;
      return missing;
    });
    await Promise.resolve();
    expect(done).toBe(false);
    waits.acked(C, [2, 1]);
    expect(await p).toEqual([]);
    expect(waits.size).toBe(0);
  });

  it('resolves at once when nobody else listens or all answered already', async () => {
    const waits = new AckWaits();
    waits.open(1);
    expect(await waits.wait(1, [], 5_000)).toEqual([]);
    waits.open(2);
    waits.acked(B, [2]);
    expect(await waits.wait(2, [B], 5_000)).toEqual([]);
    expect(waits.size).toBe(0);
  });

  it('gives up on a listener that never answers after the bound, naming it', async () => {
    const waits = new AckWaits();
    waits.open(3);
    const started = Date.now();
    const missing = waits.wait(3, [B, C], 50);
    waits.acked(B, [3]);
    expect(await missing).toEqual([C]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(waits.size).toBe(0);
  });

  it('ignores answers from unexpected listeners and for unknown notices', async () => {
    const waits = new AckWaits();
    waits.open(4);
    waits.acked(A, [4, 99]);
    const p = waits.wait(4, [B], 30);
    expect(await p).toEqual([B]);
  });

  it('cancel and closeAll resolve pending waits', async () => {
    const waits = new AckWaits();
    waits.open(5);
    waits.open(6);
    const five = waits.wait(5, [B], 60_000);
    const six = waits.wait(6, [C], 60_000);
    waits.cancel(5);
    expect(await five).toEqual([B]);
    waits.closeAll();
    expect(await six).toEqual([C]);
    expect(waits.size).toBe(0);
    waits.open(7);
    waits.cancel(7); // never waited for: just forgotten
    expect(waits.size).toBe(0);
  });
});
