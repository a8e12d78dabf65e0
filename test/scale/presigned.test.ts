/** Optional direct downloads: authorized NAR requests are redirected to short-lived presigned S3 URLs. */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuth, createOrg, createToken, type TestServer } from '../helpers/server.js';
import { postgresAvailable } from '../helpers/postgres.js';
import { postgresS3 } from '../helpers/backends.js';
import { buildClosure, fixtureDir, hostNix, requireNix, writeClosureExpr, writeNetrc } from '../helpers/nix.js';
import { fakePath, nixStyleUpload } from '../helpers/paths.js';
import { parseNarInfo } from '../../src/nix/narinfo.js';

const nixVersion = await requireNix(hostNix);
// The bucket on another host name, as in production: Nix's netrc credentials for Floe are then not
// sent to S3 (S3 refuses a request with both a presigned URL and an Authorization header).
const backend = postgresS3({ s3Host: 'localhost' });

describe.skipIf(!postgresAvailable() && !process.env.CI)('presigned NAR downloads (FLOE_S3_PRESIGN_SECONDS)', () => {
  let server: TestServer;
  let rw: string;
  let read: string;
  beforeAll(async () => {
    await backend.setup();
    server = await backend.start({ FLOE_S3_PRESIGN_SECONDS: '60' });
    await createOrg(server, 'acme');
    rw = (await createToken(server, 'acme', ['read', 'write'])).token;
    read = (await createToken(server, 'acme', ['read'])).token;
  });
  afterAll(async () => {
    await server?.cleanup();
    await backend.teardown();
  });

  it('redirects authorized readers only, to a URL that serves the exact NAR file', async () => {
    const p = fakePath('presigned');
    expect(await nixStyleUpload(`${server.url}/cache`, basicAuth(rw), p)).toMatchObject({ narinfo: 201 });
    const info = parseNarInfo(
      await (
        await fetch(`${server.url}/cache/${p.hashPart}.narinfo`, { headers: { Authorization: basicAuth(read) } })
      ).text(),
    );
    const res = await fetch(`${server.url}/cache/${info.url}`, {
      headers: { Authorization: basicAuth(read) },
      redirect: 'manual',
    });
    expect(res.status).toBe(302);
    const location = res.headers.get('location')!;
    expect(location).toMatch(/X-Amz-Signature=/);
    const direct = Buffer.from(await (await fetch(location)).arrayBuffer());
    expect(createHash('sha256').update(direct).digest()).toEqual(Buffer.from(info.fileHash!.digest));
    expect((await fetch(`${server.url}/cache/${info.url}`, { redirect: 'manual' })).status).toBe(404);
  });

  it.skipIf(!nixVersion)('Nix follows the redirect when substituting', async () => {
    const dir = await fixtureDir('presigned');
    const out = await buildClosure(hostNix, await writeClosureExpr(dir), `pre${Date.now()}`, path.join(dir, 'm0'));
    const pushed = await hostNix.run(
      ['nix', 'copy', '--option', 'netrc-file', await writeNetrc(dir, 'rw', rw), '--to', `${server.url}/cache`, out],
      { cacheHome: path.join(dir, 'm1') },
    );
    expect(pushed.code, pushed.stderr).toBe(0);
    const key = (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=acme`)).text()).trim();
    const got = await hostNix.run(
      [
        'nix',
        'copy',
        '--option',
        'trusted-public-keys',
        key,
        '--option',
        'netrc-file',
        await writeNetrc(dir, 'r', read),
        '--from',
        `${server.url}/cache`,
        '--to',
        path.join(dir, 'store'),
        out,
      ],
      { cacheHome: path.join(dir, 'm2') },
    );
    expect(got.code, got.stderr).toBe(0);
  });
});
