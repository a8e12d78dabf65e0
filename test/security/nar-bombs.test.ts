/**
 * Compressed NAR uploads that expand without bound, against a real server: found in a security
 * review. A 289-byte bzip2 NAR of 256 MiB held the event loop for 20 s (the pure-JS decoder decodes
 * whole blocks synchronously); a 32 KB zstd upload of a valid 1 GiB NAR froze it for 26-32 s, and
 * the batch API compared the claimed narSize only after expanding everything. Now decoding follows
 * the consumer, yields to the event loop, and stops as soon as the NAR passes its declared size
 * (batch), the expansion cap (`PUT nar/`, which declares none) or the server's limit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rssBytesOf, slowestHealthzDuring as watchHealthz } from '../helpers/responsiveness.js';
import { basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { type BombCodec, compressParts, fakePath, zeroNar } from '../helpers/paths.js';

let server: TestServer;
let writer: string;

beforeAll(async () => {
  server = await startFloe({ env: { FLOE_MAX_NAR_SIZE: '512MiB' } });
  await createOrg(server, 'acme');
  writer = (await createToken(server, 'acme', ['read', 'write'])).token;
});
afterAll(async () => {
  await server?.cleanup();
});

const rssBytes = () => rssBytesOf(server.process.pid!);

const slowestHealthzDuring = (attack: () => Promise<unknown>) => watchHealthz(server.url, attack, 30_000);

/** Runs an upload while watching /healthz and the server's memory. */
async function underWatch(upload: () => Promise<Response>) {
  const rssBefore = rssBytes();
  let peakGrowth = 0;
  const sampler = setInterval(() => (peakGrowth = Math.max(peakGrowth, rssBytes() - rssBefore)), 25);
  let res!: Response;
  let text = '';
  const started = performance.now();
  const slowestHealthz = await slowestHealthzDuring(async () => {
    res = await upload();
    text = await res.text();
  });
  clearInterval(sampler);
  if (process.env.FLOE_TEST_VERBOSE)
    console.log({ status: res.status, slowestHealthz, ms: performance.now() - started, peakGrowth });
  return { status: res.status, text, slowestHealthz, ms: performance.now() - started, peakGrowth };
}

const putNar = (body: Buffer, ext: string) => () =>
  fetch(`${server.url}/cache/acme/default/nar/${fakePath('bomb').hashPart}.nar.${ext}`, {
    method: 'PUT',
    headers: { Authorization: basicAuth(writer) },
    body: new Uint8Array(body),
  });

const batch = (body: Buffer, meta: { narHash: string; narSize: number }) => () => {
  const line =
    JSON.stringify({
      storePath: `/nix/store/${fakePath('bomb').base}`,
      narHash: meta.narHash,
      narSize: meta.narSize,
      references: [],
    }) + '\n';
  return fetch(`${server.url}/api/v1/cache/acme/default/paths`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${writer}` },
    body: new Uint8Array(Buffer.concat([Buffer.from(line), body])),
  });
};

describe('NAR decompression bombs', () => {
  const EXT: Record<BombCodec, string> = { bzip2: 'bz2', zstd: 'zst', xz: 'xz', gzip: 'gz', lz4: 'lz4' };
  const big = zeroNar(256 << 20);
  for (const codec of ['bzip2', 'zstd', 'xz'] as const) {
    it(`PUT nar/: a tiny ${codec} NAR of 256 MiB is refused at the expansion cap; /healthz answers throughout`, async () => {
      const body = await compressParts(codec, big.parts);
      expect(body.length).toBeLessThan(64 << 10);
      const r = await underWatch(putNar(body, EXT[codec]));
      expect(r.status, r.text).toBe(413);
      expect(r.text).toMatch(
        /NAR expands to more than 1000 times the \d+ compressed bytes received .*decompression bomb/,
      );
      expect(r.slowestHealthz).toBeLessThan(1000);
      expect(r.peakGrowth).toBeLessThan(300 << 20);
    });
  }

  it("PUT nar/: lz4 (at most ~255:1, under the expansion cap) stops at the server's NAR limit; /healthz answers throughout", async () => {
    const huge = zeroNar(1 << 30);
    const body = await compressParts('lz4', huge.parts);
    expect(body.length).toBeLessThan(8 << 20);
    const r = await underWatch(putNar(body, 'lz4'));
    expect(r.status, r.text).toBe(413);
    expect(r.text).toMatch(/NAR is larger than the limit of 536870912 bytes/);
    expect(r.slowestHealthz).toBeLessThan(1000);
    expect(r.peakGrowth).toBeLessThan(300 << 20);
  });

  it('batch: a NAR larger than its claimed narSize is refused as soon as it passes the claim', async () => {
    const body = await compressParts('zstd', big.parts);
    const r = await underWatch(batch(body, { narHash: big.narHash, narSize: 1000 }));
    expect(r.status, r.text).toBe(400);
    expect(r.text).toMatch(/narSize: mismatch: the NAR is larger than the declared 1000 bytes/);
    expect(r.ms).toBeLessThan(5000);
  });

  it("batch: a valid NAR over the server's limit stops at the limit, whatever it claims", async () => {
    const huge = zeroNar(1 << 30);
    const body = await compressParts('zstd', huge.parts);
    expect(body.length).toBeLessThan(64 << 10);
    const r = await underWatch(batch(body, { narHash: huge.narHash, narSize: huge.narSize }));
    expect(r.status, r.text).toBe(413);
    expect(r.text).toMatch(/NAR is larger than the limit of 536870912 bytes/);
    expect(r.slowestHealthz).toBeLessThan(1000);
    expect(r.peakGrowth).toBeLessThan(300 << 20);
  });

  it('batch: an honest, highly compressible NAR within the limit is still accepted, and the event loop keeps running while it decodes', async () => {
    const honest = zeroNar(480 << 20);
    const body = await compressParts('zstd', honest.parts);
    const r = await underWatch(batch(body, honest));
    expect(r.status, r.text).toBe(201);
    expect(JSON.parse(r.text)).toMatchObject({ narSize: honest.narSize, narHash: honest.narHash });
    expect(r.slowestHealthz).toBeLessThan(1000);
  });

  it('PUT nar/: an honest compressed NAR below the cap is accepted', async () => {
    const small = zeroNar(8 << 20);
    for (const codec of ['bzip2', 'zstd', 'xz', 'gzip', 'lz4'] as const) {
      const r = await underWatch(putNar(await compressParts(codec, small.parts), EXT[codec]));
      expect(r.status, `${codec}: ${r.text}`).toBe(201);
    }
  });
});
