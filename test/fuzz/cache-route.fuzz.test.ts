/**
 * Request routing on /cache (src/http/cache-handler.ts): the route template used as a metrics
 * label, Range headers, and the path parsing itself against a real `floe serve`. Any path, method,
 * credential, Range and body gets a 2xx/3xx/4xx answer (never a 5xx, never a dropped connection),
 * the server stays up, and metrics labels stay a closed set whatever the path.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheRouteOf, parseRange } from '../../src/http/cache-handler.js';
import { type TestServer, createOrg, createToken, startFloe } from '../helpers/server.js';
import { arbNarInfo, arbStorePathHash } from './arbitraries.js';
import { formatNarInfo } from '../../src/nix/narinfo.js';
import { serializeNar } from '../../src/nix/nar.js';
import { corpus, fc, fuzzParams, fuzzTimeout, mutated } from './fuzz.js';

const TEMPLATES = new Set(
  ['/cache', '/cache/:org/:slice'].flatMap((p) => [
    `${p}/nix-cache-info`,
    `${p}/:hash.narinfo`,
    `${p}/:hash.ls`,
    `${p}/nar/:file`,
    `${p}/realisations/:id.doi`,
    `${p}/log/:drv`,
    `${p}/debuginfo/:id`,
    `${p}/*`,
  ]),
);

/** Path segments that reach each branch of the router, and ones that confuse it. */
const arbSegment = fc.oneof(
  fc.constantFrom(
    'nar',
    'nix-cache-info',
    'acme',
    'default',
    'other',
    'log',
    'realisations',
    'debuginfo',
    '',
    '.',
    '..',
    '%2e%2e',
    '%2F',
    '%00',
    '%ff',
    '~',
    'x.narinfo',
    '.narinfo',
    '.ls',
    'nar.xz',
  ),
  arbStorePathHash.map((h) => `${h}.narinfo`),
  arbStorePathHash.map((h) => `${h}.ls`),
  arbStorePathHash.map((h) => `${h}.nar.xz`),
  fc.string({ unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789-._~%!$&'()*+,;=:@"), maxLength: 40 }),
);
const arbCachePath = fc
  .array(arbSegment, { maxLength: 5 })
  .chain((segs) => fc.tuple(fc.constant(segs), fc.constantFrom('', '/', '?x=1', '//')))
  .map(([segs, tail]) => `/cache${segs.length ? '/' : ''}${segs.join('/')}${tail}`);

describe('cache route fuzz (pure)', () => {
  it.each(corpus('cache-route').flatMap((e) => e.bytes.toString('utf8').split('\n').filter(Boolean)))(
    'corpus %s',
    (p) => {
      expect(TEMPLATES).toContain(cacheRouteOf(p));
    },
  );

  it(
    'every path under /cache maps to one of the closed set of route templates',
    () => {
      fc.assert(
        fc.property(
          fc.oneof(
            arbCachePath,
            fc.string({ unit: 'binary', maxLength: 80 }).map((s) => `/cache${s}`),
          ),
          (p) => {
            expect(TEMPLATES).toContain(cacheRouteOf(p));
          },
        ),
        fuzzParams(),
      );
    },
    fuzzTimeout(),
  );

  it(
    'Range headers: undefined, invalid, or a range inside the file',
    () => {
      fc.assert(
        fc.property(
          fc.oneof(
            fc.string({ maxLength: 30 }),
            fc
              .tuple(
                fc.option(fc.nat()),
                fc.option(fc.nat()),
                fc.constantFrom('bytes=', 'bytes= ', 'Bytes=', ''),
                fc.constantFrom('', ',0-1', ' '),
              )
              .map(([a, b, p, s]) => `${p}${a ?? ''}-${b ?? ''}${s}`),
            fc.constantFrom('bytes=99999999999999999999-', 'bytes=-0', 'bytes=0-0'),
          ),
          fc.nat({ max: 1 << 20 }),
          (header, size) => {
            const r = parseRange(header, size);
            if (r === undefined || r === 'invalid') return;
            expect(Number.isSafeInteger(r.start) && Number.isSafeInteger(r.end)).toBe(true);
            expect(r.start).toBeGreaterThanOrEqual(0);
            expect(r.start).toBeLessThanOrEqual(r.end);
            expect(r.end).toBeLessThan(size);
          },
        ),
        fuzzParams(),
      );
    },
    fuzzTimeout(),
  );
});

describe('cache route fuzz (real floe serve)', () => {
  let server: TestServer;
  let agent: http.Agent;
  let tokens: string[];
  beforeAll(async () => {
    server = await startFloe({ env: { FLOE_LOG_LEVEL: 'warn' } });
    await createOrg(server, 'acme');
    tokens = [server.adminToken, (await createToken(server, 'acme', ['read', 'write'])).token];
    agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  });
  afterAll(async () => {
    agent?.destroy();
    await server?.cleanup();
  });

  function request(method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: server.port,
          method,
          path,
          headers: { ...headers, ...(body ? { 'Content-Length': String(body.length) } : {}) },
          agent,
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode!));
          res.on('error', reject);
        },
      );
      req.setTimeout(20_000, () => req.destroy(new Error(`${method} ${path} did not answer within 20 s`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  const arbAuth = fc.oneof(
    fc.constant(undefined),
    fc.constantFrom(0, 1).map((i) => `Bearer ${tokens[i]}`),
    fc.constantFrom(0, 1).map((i) => `Basic ${Buffer.from(`nix:${tokens[i]}`).toString('base64')}`),
    fc.constantFrom(
      'Bearer floe_x',
      'Bearer x.y.z',
      `Basic ${Buffer.from('floe_abcdefgh:').toString('base64')}`,
      'Basic !!!',
      'Negotiate x',
    ),
  );
  const arbBody = fc.oneof(
    fc.constant(undefined),
    fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
    arbNarInfo.map((i) => Buffer.from(formatNarInfo(i))),
    mutated(arbNarInfo.map((i) => new Uint8Array(Buffer.from(formatNarInfo(i))))),
    fc.constant(serializeNar({ type: 'regular', contents: 'hello' })),
    fc.constantFrom(...corpus('narinfo').map((e) => e.bytes)),
  );

  it(
    'any method, path, credential, Range and body: an answer below 500, and the server stays up',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom('GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'OPTIONS'),
          arbCachePath,
          arbAuth,
          fc.option(fc.constantFrom('bytes=0-10', 'bytes=-5', 'bytes=5-1', 'bytes=x', 'bytes=0-99999999999999999999')),
          arbBody,
          async (method, p, auth, range, body) => {
            const headers: Record<string, string> = {
              ...(auth ? { Authorization: auth } : {}),
              ...(range ? { Range: range } : {}),
            };
            const status = await request(method, p, headers, method === 'PUT' || method === 'POST' ? body : undefined);
            expect(status, `${method} ${p} -> ${status}\n${server.logs().slice(-2000)}`).toBeLessThan(500);
          },
        ),
        fuzzParams(10),
      );
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      // Metrics labels for /cache stay the route templates, whatever the paths were.
      const metrics = await (
        await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${server.adminToken}` } })
      ).text();
      const routes = [...metrics.matchAll(/route="(\/cache[^"]*)"/g)].map((m) => m[1]);
      expect(routes.length).toBeGreaterThan(0);
      for (const r of routes) expect(TEMPLATES).toContain(r);
    },
    fuzzTimeout(200),
  );
});
