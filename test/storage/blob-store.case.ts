/** The BlobStore contract, written once and run against every implementation. */
import { randomBytes } from 'node:crypto';
import { finished } from 'node:stream/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { BlobStore } from '../../src/storage/types.js';

export interface BlobStoreFixture {
  open(): Promise<BlobStore>;
  /** Files or parts of uploads that are not committed. */
  pending(): Promise<number>;
  close(): Promise<void>;
}

async function readAll(
  store: BlobStore,
  key: string,
  range?: { start: number; end: number },
): Promise<Buffer | undefined> {
  const r = await store.get(key, range);
  if (!r) return undefined;
  const chunks: Buffer[] = [];
  for await (const c of r.body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function put(store: BlobStore, key: string, data: Buffer): Promise<void> {
  const w = await store.begin();
  w.body.write(data.subarray(0, data.length >> 1));
  w.body.end(data.subarray(data.length >> 1));
  await finished(w.body);
  await w.commit(key);
}

export function blobStoreContract(fixture: BlobStoreFixture): void {
  let store: BlobStore;
  const key = () => `${randomBytes(16).toString('hex')}.nar.zst`;
  beforeAll(async () => {
    store = await fixture.open();
  });
  afterAll(async () => {
    await fixture.close();
  });

  it('stores and reads back, with size and ranges', async () => {
    const k = key();
    const data = randomBytes(3 * 1024 * 1024 + 17);
    await put(store, k, data);
    expect(await store.size(k)).toBe(data.length);
    expect((await readAll(store, k))!.equals(data)).toBe(true);
    expect((await readAll(store, k, { start: 10, end: 99 }))!.equals(data.subarray(10, 100))).toBe(true);
    const r = await store.get(k, { start: 5, end: 6 });
    expect(r!.size).toBe(data.length);
    r!.body.resume();
  });

  it('a missing key is undefined, not an error', async () => {
    expect(await store.get(key())).toBeUndefined();
    expect(await store.size(key())).toBeUndefined();
  });

  it('nothing is visible before commit, and an aborted write leaves nothing', async () => {
    const k = key();
    const w = await store.begin();
    w.body.write(randomBytes(1000));
    expect(await store.size(k)).toBeUndefined();
    await w.abort();
    await w.abort();
    expect(await store.size(k)).toBeUndefined();
    expect(await fixture.pending()).toBe(0);
  });

  it('committing an existing key keeps the stored content (content addressing)', async () => {
    const k = key();
    const first = randomBytes(4096);
    await put(store, k, first);
    await put(store, k, randomBytes(10));
    expect((await readAll(store, k))!.equals(first)).toBe(true);
    expect(await fixture.pending()).toBe(0);
  });

  it('committing known content performs the same store operations as new content (no timing oracle), and keeps what is stored', async () => {
    const k = key();
    const first = randomBytes(64 << 10);
    const traces: string[][] = [];
    for (const data of [first, randomBytes(64 << 10)]) {
      const ops: string[] = [];
      store.traceCommits?.((op) => ops.push(op));
      await put(store, k, data);
      store.traceCommits?.(undefined);
      traces.push(ops);
    }
    expect(traces[0]!.length).toBeGreaterThan(1);
    expect(traces[1]).toEqual(traces[0]);
    expect((await readAll(store, k))!.equals(first)).toBe(true);
    expect(await fixture.pending()).toBe(0);
    // No scratch copy is left behind: the store lists the one blob under that hash.
    const listed: string[] = [];
    for await (const b of store.list()) if (b.key.startsWith(k.slice(0, 32))) listed.push(b.key);
    expect(listed).toEqual([k]);
  });

  it('deletes', async () => {
    const k = key();
    await put(store, k, randomBytes(100));
    await store.delete(k);
    expect(await store.size(k)).toBeUndefined();
  });

  it('lists committed blobs with size and time, never uncommitted or deleted ones', async () => {
    const kept = key();
    const gone = key();
    const before = Date.now() - 60_000;
    await put(store, kept, randomBytes(321));
    await put(store, gone, randomBytes(10));
    await store.delete(gone);
    const w = await store.begin();
    w.body.write(randomBytes(50));
    const listed = new Map<string, { size: number; modifiedAt: number }>();
    for await (const b of store.list()) listed.set(b.key, b);
    await w.abort();
    expect(listed.get(kept)).toMatchObject({ size: 321 });
    expect(listed.get(kept)!.modifiedAt).toBeGreaterThan(before);
    expect(listed.get(kept)!.modifiedAt).toBeLessThan(Date.now() + 60_000);
    expect(listed.has(gone)).toBe(false);
    expect([...listed.values()].every((b) => b.size > 0)).toBe(true);
  });
}
