/**
 * Hostile request bodies against a real server: found in a security review. Any Content-Encoding
 * was decoded on many routes before the caller was known, and bzip2 synchronously: a 79-byte body
 * (64 MiB of zeros) held the event loop for seconds and added ~1 GiB of memory. Now JSON, form and
 * tarball bodies take no Content-Encoding; only narinfo uploads on /cache decode, after
 * authorization and within a cap; routes that can authenticate do so before reading a byte.
 */
import { createHash, randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendTolerant } from '../helpers/early-answer.js';
import { rssBytesOf, slowestHealthzDuring as watchHealthz } from '../helpers/responsiveness.js';
import { basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { compressParts, fakePath, narInfoFor } from '../helpers/paths.js';

let server: TestServer;
let writer: string;
let publisher: string;
let bzip2Bomb: Buffer;
let zstdBomb: Buffer;

beforeAll(async () => {
  server = await startFloe();
  await createOrg(server, 'acme');
  writer = (await createToken(server, 'acme', ['read', 'write'])).token;
  publisher = (await createToken(server, 'acme', ['publish'])).token;
  bzip2Bomb = await compressParts('bzip2', [64 << 20]);
  zstdBomb = await compressParts('zstd', [256 << 20]);
});
afterAll(async () => {
  await server?.cleanup();
});

const rssBytes = () => rssBytesOf(server.process.pid!);

const slowestHealthzDuring = (attack: () => Promise<unknown>) => watchHealthz(server.url, attack, 10_000);

const send = (method: string, path: string, body: Buffer | string, headers: Record<string, string>) =>
  sendTolerant(`${server.url}${path}`, { method, headers, body });

/**
 * Declares a body of `declared` bytes but sends only a few: an answer can only come from a server
 * that decided before reading the body.
 */
function answerBeforeBody(
  method: string,
  path: string,
  declared: number,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${server.url}${path}`, {
      method,
      headers: { 'Content-Type': 'application/json', ...headers, 'Content-Length': String(declared) },
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`${method} ${path}: no answer while the body was still missing (the server waited to read it)`));
    }, 5000);
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        clearTimeout(timer);
        req.destroy();
        resolve({ status: res.statusCode!, text });
      });
    });
    req.on('error', () => undefined);
    req.write('{"a":');
  });
}

async function stage(flake: string): Promise<string> {
  const sha = createHash('sha256').update('x').digest('base64');
  const res = await fetch(`${server.url}/upload/acme/${flake}/1.0.0/100/${sha}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${publisher}`, 'Content-Type': 'application/json' },
    body: '{"visibility":"public"}',
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { uuid: string }).uuid;
}

describe('no route decodes a body before it knows who sent it', () => {
  it('a 79-byte bzip2 bomb sent anonymously to every body-reading route is a 4xx at once; the server stays responsive and small', async () => {
    expect(bzip2Bomb.length).toBeLessThan(200);
    const staged = await stage('bombed');
    const sha = createHash('sha256').update('x').digest('base64');
    const routes: Array<[string, string]> = [
      ['POST', '/api/v1/auth/exchange'],
      ['POST', '/api/v1/auth/aws'],
      ['POST', '/api/v1/tokens'],
      ['POST', '/api/v1/cache/missing'],
      ['POST', '/api/v1/cache/acme/default/missing'],
      ['PUT', '/api/v1/cache/paths'],
      ['POST', `/upload/acme/bombed/1.0.1/100/${sha}`],
      ['PUT', `/api/v1/release-uploads/${staged}`],
      ['POST', '/login/start'],
      ['PUT', '/cache/nix-cache-info'],
    ];
    const rssBefore = rssBytes();
    const results: Array<{ route: string; status: number; text: string }> = [];
    const slowest = await slowestHealthzDuring(() =>
      Promise.all(
        routes.flatMap(([method, path]) =>
          [1, 2, 3, 4].map(async () => {
            const r = await send(method, path, bzip2Bomb, {
              'Content-Encoding': 'bzip2',
              'Content-Type': path === '/login/start' ? 'application/x-www-form-urlencoded' : 'application/json',
            });
            results.push({ route: `${method} ${path}`, ...r });
          }),
        ),
      ),
    );
    for (const r of results) {
      expect(r.status, `${r.route}: ${r.text}`).toBeGreaterThanOrEqual(400);
      expect(r.status, `${r.route}: ${r.text}`).toBeLessThan(500);
    }
    // The JSON routes say what was wrong.
    expect(results.find((r) => r.route === 'POST /api/v1/auth/exchange')!.text).toMatch(
      /Content-Encoding: .*bzip2.* is not accepted here: send the body uncompressed/,
    );
    expect(slowest).toBeLessThan(1000);
    expect(rssBytes() - rssBefore).toBeLessThan(200 << 20);
  });

  it('an authorized JSON route refuses a compressed body with a 400 naming Content-Encoding', async () => {
    const r = await send('POST', '/api/v1/orgs', gzipSync('{"name":"zipped"}'), {
      Authorization: `Bearer ${server.adminToken}`,
      'Content-Type': 'application/json',
      'Content-Encoding': 'gzip',
    });
    expect(r.status).toBe(400);
    expect(r.text).toMatch(/Content-Encoding/);
  });
});

describe('routes that can authenticate first do so before reading the body', () => {
  const cases: Array<[string, string, string, number, Record<string, string>, number[]]> = [
    ['anonymous token creation', 'POST', '/api/v1/tokens', 512 << 10, {}, [401]],
    ['anonymous push planning', 'POST', '/api/v1/cache/missing', 8 << 20, {}, [401]],
    // A slice the caller may neither read nor write does not exist for it: the one miss, at once.
    ['push planning into a slice one may not write', 'POST', '/api/v1/cache/acme/default/missing', 8 << 20, {}, [404]],
    [
      'anonymous staging of a release',
      'POST',
      `/upload/acme/x/1.0.0/100/${createHash('sha256').update('x').digest('base64')}`,
      1 << 20,
      {},
      [401, 403],
    ],
    [
      'a tarball for an upload id nobody staged',
      'PUT',
      `/api/v1/release-uploads/${randomUUID()}`,
      100 << 20,
      {},
      [404],
    ],
    [
      'anonymous narinfo upload',
      'PUT',
      `/cache/${'a'.repeat(32)}.narinfo`,
      512 << 10,
      { 'Content-Encoding': 'gzip' },
      [401],
    ],
  ];
  for (const [name, method, path, declared, headers, statuses] of cases) {
    it(`${name}: answered without waiting for the body`, async () => {
      const r = await answerBeforeBody(method, path, declared, headers);
      expect(statuses, r.text).toContain(r.status);
    });
  }

  it('a staged upload takes no more than the size it staged', async () => {
    const id = await stage('sized');
    const r = await answerBeforeBody('PUT', `/api/v1/release-uploads/${id}`, 100 << 20);
    expect(r.status).toBe(413);
    expect(r.text).toMatch(/larger than 100 bytes/);
  });
});

describe('narinfo uploads on /cache', () => {
  const narinfoPath = async () => {
    const p = fakePath('encoded');
    const fileName = `${p.hashPart}.nar`;
    const nar = await fetch(`${server.url}/cache/acme/default/nar/${fileName}`, {
      method: 'PUT',
      headers: { Authorization: basicAuth(writer) },
      body: new Uint8Array(p.nar),
    });
    expect(nar.status).toBe(201);
    return { p, narinfo: narInfoFor(p, `nar/${fileName}`) };
  };

  it('still accept a compressed narinfo (Nix >= 2.32 narinfo-compression) once authorized', async () => {
    const { p, narinfo } = await narinfoPath();
    const r = await send('PUT', `/cache/acme/default/${p.hashPart}.narinfo`, gzipSync(narinfo), {
      Authorization: basicAuth(writer),
      'Content-Encoding': 'gzip',
    });
    expect(r.status).toBe(201);
    const got = await fetch(`${server.url}/cache/acme/default/${p.hashPart}.narinfo`, {
      headers: { Authorization: basicAuth(writer) },
    });
    expect(got.status).toBe(200);
    expect(await got.text()).toContain(`StorePath: /nix/store/${p.base}`);
  });

  for (const codec of ['bzip2', 'zstd'] as const) {
    it(`refuse a ${codec} bomb as narinfo with a 413 naming the cap, decoding no further, while the server stays responsive`, async () => {
      const { p } = await narinfoPath();
      const bomb = codec === 'bzip2' ? bzip2Bomb : zstdBomb;
      const rssBefore = rssBytes();
      let r!: { status: number; text: string };
      const slowest = await slowestHealthzDuring(async () => {
        const started = performance.now();
        r = await send('PUT', `/cache/acme/default/${p.hashPart}.narinfo`, bomb, {
          Authorization: basicAuth(writer),
          'Content-Encoding': codec,
        });
        expect(performance.now() - started).toBeLessThan(5000);
      });
      expect(r.status).toBe(413);
      expect(r.text).toMatch(/decoded body larger than 1048576 bytes/);
      expect(slowest).toBeLessThan(1000);
      expect(rssBytes() - rssBefore).toBeLessThan(200 << 20);
    });
  }

  it('NAR listings are accepted and dropped, never decoded', async () => {
    const r = await send('PUT', `/cache/acme/default/${'b'.repeat(32)}.ls`, zstdBomb, {
      Authorization: basicAuth(writer),
      'Content-Encoding': 'zstd',
    });
    expect(r.status).toBe(204);
  });
});
