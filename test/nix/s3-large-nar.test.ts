/**
 * Real Nix substituting a NAR of several 8 MiB parts from the PostgreSQL + S3 backend: S3BlobStore
 * reads more than one part as ranged GETs in flight (storage/blob/ranged-read.ts), and Nix must
 * get exactly the bytes it pushed. The file is random, so it stays over 20 MiB after zstd.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseNarInfo } from '../../src/nix/narinfo.js';
import { copyFromCacheArgs, fixtureDir, hostNix, requireNix, writeNetrc } from '../helpers/nix.js';
import { postgresAvailable, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { startS3, type TestS3 } from '../helpers/s3.js';
import { api, basicAuth, createToken, startFloe, type TestServer } from '../helpers/server.js';

const nixVersion = await requireNix(hostNix);
const enabled = Boolean(nixVersion) && (postgresAvailable() || Boolean(process.env.CI));
const PART = 8 << 20;
const SIZE = 24 << 20;

describe.skipIf(!enabled)(`a NAR of several S3 parts through real Nix (${nixVersion ?? 'Nix missing'})`, () => {
  let pg: TestPostgres;
  let s3: TestS3;
  let server: TestServer;
  let rw: string;
  let read: string;

  beforeAll(async () => {
    pg = await startPostgres();
    s3 = await startS3();
    server = await startFloe({ env: { FLOE_DATABASE_URL: await pg.createDatabase('large'), ...s3.env('large/') } });
    expect((await api(server, server.adminToken, 'POST', '/api/v1/orgs', { name: 'acme' })).status).toBe(201);
    rw = (await createToken(server, 'acme', ['read', 'write'])).token;
    read = (await createToken(server, 'acme', ['read'])).token;
  }, 60_000);

  afterAll(async () => {
    await server?.cleanup();
    await s3?.stop();
    await pg?.stop();
  });

  it('nix copy --to, then substitutes it into a fresh store byte for byte', async () => {
    const dir = await fixtureDir('s3-large');
    const file = path.join(dir, 'big.bin');
    const bytes = randomBytes(SIZE);
    await writeFile(file, bytes);
    const added = await hostNix.run(['nix-store', '--add', file], { cacheHome: path.join(dir, 'm0') });
    expect(added.code, added.stderr).toBe(0);
    const storePath = added.stdout.trim();

    const netrcRW = await writeNetrc(dir, 'rw', rw);
    const pushed = await hostNix.run(
      ['nix', 'copy', '--option', 'netrc-file', netrcRW, '--to', `${server.url}/cache?compression=none`, storePath],
      { cacheHome: path.join(dir, 'm1') },
    );
    expect(pushed.code, pushed.stderr).toBe(0);

    // Stored as zstd of random bytes: still several parts, so the download is ranged.
    const hashPart = path.basename(storePath).slice(0, 32);
    const res = await fetch(`${server.url}/cache/${hashPart}.narinfo`, { headers: { Authorization: basicAuth(read) } });
    expect(res.status).toBe(200);
    const info = parseNarInfo(await res.text());
    expect(info.fileSize!).toBeGreaterThan(2 * PART);

    const key = (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=acme`)).text()).trim();
    const store = path.join(dir, 'store');
    const got = await hostNix.run(
      copyFromCacheArgs(
        { key, netrc: await writeNetrc(dir, 'r', read), from: `${server.url}/cache`, to: store },
        storePath,
      ),
      { cacheHome: path.join(dir, 'm2') },
    );
    expect(got.code, got.stderr).toBe(0);
    // Streamed by Floe from S3 (no presigned redirect: that would skip the ranged reads).
    expect(server.logs()).toMatch(/"method":"GET","path":"\/cache\/nar\/[0-9a-z]+\.nar\.zst","status":200/);
    const copied = await readFile(path.join(store, storePath));
    expect(copied.length).toBe(SIZE);
    expect(createHash('sha256').update(copied).digest('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
    // Nix checked the NAR hash itself; the fresh store agrees on it too.
    const verified = await hostNix.run(['nix', 'store', 'verify', '--store', store, '--no-trust', storePath], {
      cacheHome: path.join(dir, 'm3'),
    });
    expect(verified.code, verified.stderr).toBe(0);
  }, 180_000);
});
