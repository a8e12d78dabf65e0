/**
 * `POST /api/v1/cache[/<org>/<slice>]/paths/batch`, over real HTTP against a real server and
 * SQLite: small paths, each a path info line and exactly its narSize NAR bytes. Good entries are
 * served afterwards byte for byte; an entry that fails verification or authorization is refused
 * alone (the others are kept); a body that breaks the framing or its limits is refused whole,
 * naming the entry, and nothing of it becomes visible; a token that may not write stores nothing.
 */
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { decompress } from 'zstd-napi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseHash } from '../../src/nix/hash.js';
import { fingerprintPath, formatPublicKey, generateSigningKey, signFingerprint } from '../../src/nix/signing.js';
import type { StorePathBase } from '../../src/nix/store-path.js';
import { BATCH_MAX_BODY_BYTES, type PushedBatchResult } from '../../src/wire/push.js';
import { api, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { type FakePath, fakePath } from '../helpers/paths.js';

let server: TestServer;
let token: string;

interface Entry {
  p: FakePath;
  nar?: Buffer;
  narSize?: number;
  narHash?: string;
  references?: string[];
  sigs?: string[];
}

const entryBytes = (e: Entry): Buffer => {
  const meta = {
    storePath: `/nix/store/${e.p.base}`,
    narHash: e.narHash ?? e.p.narHash,
    narSize: e.narSize ?? e.p.narSize,
    references: (e.references ?? e.p.references).map((r) => `/nix/store/${r}`),
    ...(e.sigs ? { sigs: e.sigs } : {}),
  };
  return Buffer.concat([Buffer.from(JSON.stringify(meta) + '\n'), e.nar ?? e.p.nar]);
};

const batch = async (body: Buffer, auth = token, at = '/api/v1/cache') => {
  const res = await fetch(`${server.url}${at}/paths/batch`, {
    method: 'POST',
    headers: auth ? { Authorization: `Bearer ${auth}` } : {},
    body: new Uint8Array(body),
  });
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text) as PushedBatchResult };
};

const narinfo = (p: FakePath, at = '/cache') =>
  fetch(`${server.url}${at}/${p.hashPart}.narinfo`, { headers: { Authorization: `Bearer ${token}` } });

/** The path as served: its narinfo, and its NAR (decompressed) equal to what was uploaded. */
const servedExactly = async (p: FakePath, at = '/cache') => {
  const res = await narinfo(p, at);
  expect(res.status).toBe(200);
  const text = await res.text();
  expect(text).toContain(`NarHash: ${p.narHash}`);
  expect(text).toContain(`NarSize: ${p.narSize}`);
  const file = await fetch(`${server.url}${at}/${/^URL: (.*)$/m.exec(text)![1]!}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  expect(file.status).toBe(200);
  expect(decompress(Buffer.from(await file.arrayBuffer())).equals(p.nar)).toBe(true);
};

const absent = async (...ps: FakePath[]) => {
  for (const p of ps) expect((await narinfo(p)).status, p.base).toBe(404);
};

beforeAll(async () => {
  server = await startFloe();
  await createOrg(server, 'acme');
  token = (await createToken(server, 'acme', ['read', 'write'])).token;
});
afterAll(async () => {
  await server?.cleanup();
});

describe('batch uploads', () => {
  it('store every entry, in order (an entry may reference one before it), served byte for byte', async () => {
    const dep = fakePath('dep', { type: 'regular', contents: randomBytes(30_000) });
    const top = fakePath('top', undefined, [dep.base]);
    const exe = fakePath('exe', {
      type: 'regular',
      contents: randomBytes(64 << 10).subarray(0, 60_000),
      executable: true,
    });
    const r = await batch(Buffer.concat([dep, top, exe].map((p) => entryBytes({ p }))));
    expect(r.status, r.text).toBe(200);
    expect(r.json().results).toEqual([
      expect.objectContaining({ storePath: `/nix/store/${dep.base}`, status: 'created', narHash: dep.narHash }),
      expect.objectContaining({ storePath: `/nix/store/${top.base}`, status: 'created', narSize: top.narSize }),
      expect.objectContaining({ storePath: `/nix/store/${exe.base}`, status: 'created' }),
    ]);
    for (const p of [dep, top, exe]) await servedExactly(p);
    expect(await (await narinfo(top)).text()).toContain(`References: ${dep.base}`);
    // Again: every entry exists already.
    const again = await batch(Buffer.concat([dep, top, exe].map((p) => entryBytes({ p }))));
    expect(again.json().results.map((x) => x.status)).toEqual(['exists', 'exists', 'exists']);
  });

  it('refuse a bad entry alone, with the answer a single upload would get, and keep the others', async () => {
    const good1 = fakePath('good-1');
    const corrupt = fakePath('corrupt');
    const broken = Buffer.from(corrupt.nar);
    broken.write('regulax', broken.indexOf('regular'), 'latin1');
    const wrongHash = fakePath('wrong-hash');
    const missingRef = fakePath('missing-ref', undefined, [fakePath('nowhere').base]);
    const good2 = fakePath('good-2');
    const spool = () => readdir(path.join(server.dataDir, 'tmp'));
    const spooled = (await spool()).length;
    const r = await batch(
      Buffer.concat([
        entryBytes({ p: good1 }),
        entryBytes({ p: corrupt, nar: broken }),
        entryBytes({ p: wrongHash, narHash: fakePath('x').narHash }),
        entryBytes({ p: missingRef }),
        entryBytes({ p: good2 }),
      ]),
    );
    expect(r.status, r.text).toBe(200);
    const [a, b, c, d, e] = r.json().results;
    expect(a).toMatchObject({ status: 'created' });
    expect(b).toMatchObject({ status: 'refused', httpStatus: 400, code: 'invalid_input' });
    expect(b).toHaveProperty('message', expect.stringMatching(/unknown node type .*regulax/));
    expect(c).toMatchObject({
      status: 'refused',
      httpStatus: 400,
      message: expect.stringMatching(/narHash: mismatch/),
    });
    expect(d).toMatchObject({
      status: 'refused',
      httpStatus: 400,
      message: expect.stringMatching(/References: 1 missing/),
    });
    expect(e).toMatchObject({ status: 'created' });
    await servedExactly(good1);
    await servedExactly(good2);
    await absent(corrupt, wrongHash, missingRef);
    expect((await spool()).length).toBe(spooled);
  });

  it('a refusal inside the shared commit leaves every other entry to commit alone, in order', async () => {
    // The same store path with other content is a conflict, found inside the commit transaction.
    const taken = fakePath('taken');
    expect((await batch(entryBytes({ p: taken }))).status).toBe(200);
    const impostor: FakePath = { ...fakePath('impostor'), base: taken.base, hashPart: taken.hashPart };
    const a = fakePath('chain-a');
    const b = fakePath('chain-b', undefined, [a.base]);
    const r = await batch(Buffer.concat([entryBytes({ p: a }), entryBytes({ p: impostor }), entryBytes({ p: b })]));
    expect(r.status, r.text).toBe(200);
    const [ra, rc, rb] = r.json().results;
    expect(ra).toMatchObject({ status: 'created' });
    expect(rc).toMatchObject({ status: 'refused', httpStatus: 409, message: expect.stringMatching(/immutable/) });
    expect(rb).toMatchObject({ status: 'created' });
    await servedExactly(a);
    await servedExactly(b);
    await servedExactly(taken);
    // A path after a refused one it references is refused too; nothing of either is visible.
    const bad = fakePath('bad-dep');
    const user = fakePath('uses-bad', undefined, [bad.base]);
    const r2 = await batch(
      Buffer.concat([entryBytes({ p: bad, narHash: fakePath('x').narHash }), entryBytes({ p: user })]),
    );
    expect(r2.json().results.map((x) => x.status)).toEqual(['refused', 'refused']);
    expect(r2.json().results[1]).toMatchObject({
      httpStatus: 400,
      message: expect.stringMatching(/References: 1 missing/),
    });
    await absent(bad, user);
  });

  it('refuse a malformed or oversized body whole, naming the entry, and store nothing of it', async () => {
    const first = () => fakePath('first');
    const cases: Array<{
      name: string;
      ps: FakePath[];
      body: (ps: FakePath[]) => Buffer;
      status: number;
      message: RegExp;
    }> = [
      {
        name: 'too many entries',
        ps: Array.from({ length: 65 }, (_, i) => fakePath(`many-${i}`)),
        body: (ps) => Buffer.concat(ps.map((p) => entryBytes({ p }))),
        status: 413,
        message: /at most 64 paths/,
      },
      {
        name: 'an entry over 64 KiB',
        ps: [first(), fakePath('big', { type: 'regular', contents: randomBytes(70_000) })],
        body: (ps) => Buffer.concat(ps.map((p) => entryBytes({ p }))),
        status: 413,
        message: /entry 1: a batched NAR is at most 65536 bytes/,
      },
      {
        name: 'a truncated NAR',
        ps: [first(), fakePath('cut')],
        body: ([a, b]) => Buffer.concat([entryBytes({ p: a! }), entryBytes({ p: b! }).subarray(0, -10)]),
        status: 400,
        message: /entry 1: truncated: \d+ of the declared \d+ NAR bytes/,
      },
      {
        name: 'bytes after the last entry',
        ps: [first()],
        body: ([a]) => Buffer.concat([entryBytes({ p: a! }), Buffer.from('{"storePath"')]),
        status: 400,
        message: /entry 1: truncated: expected a JSON line/,
      },
      {
        name: 'a bad path info line',
        ps: [first(), fakePath('bad-line')],
        body: ([a, b]) => Buffer.concat([entryBytes({ p: a! }), entryBytes({ p: b!, narHash: 'md5:abc' })]),
        status: 400,
        message: /entry 1: narHash/,
      },
      { name: 'an empty body', ps: [], body: () => Buffer.alloc(0), status: 400, message: /at least one path/ },
    ];
    for (const c of cases) {
      const r = await batch(c.body(c.ps));
      expect(r.status, `${c.name}: ${r.text}`).toBe(c.status);
      expect(r.text, c.name).toMatch(c.message);
      await absent(...c.ps);
    }
  });

  it('a token that may not write stores nothing, and is refused before the body', async () => {
    const reader = (await createToken(server, 'acme', ['read'])).token;
    const p = fakePath('by-reader');
    const r = await batch(entryBytes({ p }), reader);
    expect(r.status, r.text).toBe(403);
    const anon = await batch(entryBytes({ p }), ''); // no Authorization header
    expect(anon.status, anon.text).toBe(401);
    await absent(p);
    // A slice URL the token may not see is the same 404 as one that does not exist.
    await createOrg(server, 'globex');
    const other = (await createToken(server, 'globex', ['read', 'write'])).token;
    expect((await batch(entryBytes({ p }), other, '/api/v1/cache/acme/default')).status).toBe(404);
    await absent(p);
  });

  it("each entry is authorized as its own path by the org's policies (verified signers)", async () => {
    await createOrg(server, 'signed');
    const writer = (await createToken(server, 'signed', ['read', 'write'])).token;
    const policy = await api(server, server.adminToken, 'PUT', '/api/v1/orgs/signed/policies', {
      source:
        '@id("signed-uploads")\nforbid (principal, action == Floe::Action::"cache.write", resource)\n' +
        'when { context has narinfoSignatures } unless { context.narinfoSignatures.contains("signed-ci-1") };\n',
    });
    expect(policy.status, JSON.stringify(policy.body)).toBe(201);
    const key = generateSigningKey('signed-ci-1');
    const trust = await api(server, server.adminToken, 'POST', '/api/v1/orgs/signed/signers', {
      publicKey: formatPublicKey(key),
    });
    expect(trust.status, JSON.stringify(trust.body)).toBe(201);
    const signedPath = fakePath('signed');
    const sig = signFingerprint(
      key,
      fingerprintPath({
        storePath: signedPath.base,
        narHash: parseHash(signedPath.narHash),
        narSize: signedPath.narSize,
        references: [] as StorePathBase[],
      }),
    );
    const unsigned = fakePath('unsigned');
    const r = await batch(
      Buffer.concat([entryBytes({ p: signedPath, sigs: [sig] }), entryBytes({ p: unsigned })]),
      writer,
    );
    expect(r.status, r.text).toBe(200);
    const [a, b] = r.json().results;
    expect(a).toMatchObject({ status: 'created' });
    expect(b).toMatchObject({ status: 'refused', httpStatus: 403, message: expect.stringMatching(/signed-uploads/) });
    const get = (p: FakePath) =>
      fetch(`${server.url}/cache/signed/default/${p.hashPart}.narinfo`, {
        headers: { Authorization: `Bearer ${writer}` },
      });
    expect((await get(signedPath)).status).toBe(200);
    expect((await get(unsigned)).status).toBe(404);
  });
});

/**
 * A batch body is held whole while its entries are verified and committed, so batches run in
 * slots of their own, shared fairly between orgs and tokens: here one per org, so a second batch
 * of the same org waits (its body unread) while another org's batch goes on, and a body declared
 * over BATCH_MAX_BODY_BYTES is refused at once, slot or no slot.
 */
describe('batch uploads hold their bodies in slots of their own', () => {
  let limited: TestServer;
  beforeAll(async () => {
    limited = await startFloe({ env: { FLOE_INGEST_SLOTS: '4', FLOE_INGEST_SLOTS_PER_ORG: '1' } });
    await createOrg(limited, 'acme');
    await createOrg(limited, 'globex');
  });
  afterAll(async () => {
    await limited?.cleanup();
  });

  const post = (auth: string, body: Buffer, headers: Record<string, string> = {}) =>
    fetch(`${limited.url}/api/v1/cache/paths/batch`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${auth}`, ...headers },
      body: new Uint8Array(body),
    }).then(async (res) => ({ status: res.status, text: await res.text() }));

  it("queue an org's second batch behind its first, not another org's, and refuse oversized ones at once", async () => {
    const acme1 = (await createToken(limited, 'acme', ['read', 'write'])).token;
    const acme2 = (await createToken(limited, 'acme', ['read', 'write'])).token;
    const globex = (await createToken(limited, 'globex', ['read', 'write'])).token;
    const stalled = fakePath('stalled', { type: 'regular', contents: randomBytes(40_000) });
    const queued = fakePath('queued');
    const other = fakePath('other');

    // acme's first batch: half its body, then nothing (it holds acme's only batch slot).
    const whole = entryBytes({ p: stalled });
    let answered: ((v: { status: number; text: string }) => void) | undefined;
    const first = new Promise<{ status: number; text: string }>((resolve) => (answered = resolve));
    const req = request(`${limited.url}/api/v1/cache/paths/batch`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${acme1}`, 'Content-Length': String(whole.length) },
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => answered!({ status: res.statusCode!, text }));
    });
    req.write(whole.subarray(0, whole.length >> 1));
    await new Promise((r) => setTimeout(r, 200)); // let the server take the slot and start reading

    let queuedDone = false;
    const second = post(acme2, entryBytes({ p: queued })).then((r) => {
      queuedDone = true;
      return r;
    });
    // Another org's batch is not held up by acme's.
    const elsewhere = await post(globex, entryBytes({ p: other }));
    expect(elsewhere.status, elsewhere.text).toBe(200);
    // Declared over the bound: refused before waiting for acme's slot.
    const huge = await post(acme2, Buffer.alloc(16), { 'Content-Length': String(BATCH_MAX_BODY_BYTES + 1) }).catch(
      (err: unknown) => ({ status: 413, text: String(err) }), // the server may close before the body is sent
    );
    expect(huge.status, huge.text).toBe(413);
    expect(queuedDone).toBe(false);

    // The first body completes: both acme batches go through, in turn.
    req.end(whole.subarray(whole.length >> 1));
    const a = await first;
    expect(a.status, a.text).toBe(200);
    const b = await second;
    expect(b.status, b.text).toBe(200);
    expect(JSON.parse(b.text).results[0]).toMatchObject({ status: 'created' });
  });
});
