/**
 * Opening the filesystem blob store drops old spool files only: with `floe serve --workers N` a worker
 * that starts (or restarts) while another is receiving an upload must not delete that upload's file.
 * (Found by test/deploy/container.test.ts: the image's two workers lost the first `nix copy` NAR to a 500.)
 */
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { FsBlobStore } from '../../src/storage/blob/fs.js';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('keeps a spool file being written by another process and drops one left hours ago', async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'floe-spool-sweep-'));
  await FsBlobStore.open(dir, { sharedSpool: true });
  const live = path.join(dir, 'tmp', 'live-upload');
  const stale = path.join(dir, 'tmp', 'crashed-upload');
  await writeFile(live, 'in flight');
  await writeFile(stale, 'left behind');
  const hoursAgo = new Date(Date.now() - 3 * 3600_000);
  await utimes(stale, hoursAgo, hoursAgo);

  const second = await FsBlobStore.open(dir, { sharedSpool: true }); // a second worker on the same data directory
  expect(await readdir(path.join(dir, 'tmp'))).toEqual(['live-upload']);
  const w = await second.begin(); // and spools new uploads beside it
  w.body.end('x');
  await w.commit('some-key');
  expect(await readdir(path.join(dir, 'tmp'))).toEqual(['live-upload']);
});

it('a single process owns its spool: at start everything there is a dead upload and goes', async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'floe-spool-sweep-'));
  await FsBlobStore.open(dir, { sharedSpool: false });
  await writeFile(path.join(dir, 'tmp', 'killed-just-now'), 'partial');
  await FsBlobStore.open(dir, { sharedSpool: false });
  expect(await readdir(path.join(dir, 'tmp'))).toEqual([]);
});
