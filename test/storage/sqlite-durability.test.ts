/**
 * SQLite writes are durable when they resolve, without an fsync on the event loop
 * (src/storage/sql/sqlite.ts): `synchronous = NORMAL`, and every write (statement or transaction)
 * waits for an fdatasync of the WAL that started after it ran, shared by the writes that arrive
 * while one runs (group commit). Reads never wait for one. The real WAL file and its real
 * fdatasync are used; only their timing is observed (FileHandle.prototype.datasync, wrapped).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqlite } from '../../src/storage/sql/sqlite.js';

let dir: string;
let opened: ReturnType<typeof openSqlite>;
const syncs: Array<{ started: number; ended: number }> = [];
let restore: () => void;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'floe-sqlite-sync-'));
  const probe = await open(path.join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as FileHandle;
  await probe.close();
  const datasync = proto.datasync;
  // Slower than a real disk often is, so a write that did not wait would show.
  proto.datasync = async function (this: FileHandle) {
    const started = performance.now();
    await new Promise((r) => setTimeout(r, 150));
    await datasync.call(this);
    syncs.push({ started, ended: performance.now() });
  };
  restore = () => (proto.datasync = datasync);
  opened = openSqlite(path.join(dir, 'floe.sqlite'));
  await sql`create table t (k text primary key, v text)`.execute(opened.db);
});
afterAll(async () => {
  restore?.();
  await opened?.db.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('SQLite durability', () => {
  it('runs in WAL mode with synchronous = NORMAL (no fsync inside a commit)', () => {
    expect(opened.raw.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(opened.raw.pragma('synchronous', { simple: true })).toBe(1);
  });

  it('a write resolves only after a WAL sync that started after it ran; a read waits for none', async () => {
    syncs.length = 0;
    await opened.db
      .insertInto('t' as never)
      .values({ k: 'a', v: '1' } as never)
      .execute();
    const resolved = performance.now();
    expect(syncs).toHaveLength(1);
    expect(syncs[0]!.ended).toBeLessThanOrEqual(resolved);

    const before = syncs.length;
    const t = performance.now();
    await opened.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('t' as never)
        .values({ k: 'b', v: '2' } as never)
        .execute();
      await trx
        .insertInto('t' as never)
        .values({ k: 'c', v: '3' } as never)
        .execute();
    });
    // One sync for the transaction, after its commit, not one per statement inside it.
    expect(syncs.length - before).toBe(1);
    expect(syncs.at(-1)!.started).toBeGreaterThanOrEqual(t);

    const reads = syncs.length;
    const rows = await opened.db
      .selectFrom('t' as never)
      .selectAll()
      .execute();
    expect(rows).toHaveLength(3);
    expect(syncs.length).toBe(reads);
  });

  it('concurrent writes share syncs, each waiting for one that began after it, and reads go on meanwhile', async () => {
    syncs.length = 0;
    const finished: Array<{ issued: number; resolved: number }> = [];
    const writes = Array.from({ length: 20 }, async (_, i) => {
      const issued = performance.now();
      await opened.db
        .insertInto('t' as never)
        .values({ k: `w${i}`, v: 'x' } as never)
        .execute();
      finished.push({ issued, resolved: performance.now() });
    });
    // A read issued while the syncs run is answered before the first one ends.
    await opened.db
      .selectFrom('t' as never)
      .selectAll()
      .execute();
    const readDone = performance.now();
    await Promise.all(writes);
    expect(syncs.length).toBeGreaterThanOrEqual(1);
    expect(syncs.length).toBeLessThanOrEqual(3);
    for (const f of finished) expect(syncs.some((s) => s.started >= f.issued && s.ended <= f.resolved)).toBe(true);
    expect(readDone).toBeLessThan(syncs[0]!.ended);
  });
});
