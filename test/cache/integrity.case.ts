/**
 * Tenant integrity over real HTTP, as an attacker with an org of their own would try it: no org
 * (or low-trust slice) can put content in front of another. Paths are crafted by hand (same
 * store path, different content); test/nix/integrity.test.ts runs the same attacks with real Nix.
 * Written once, run on every storage backend.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, basicAuth, createToken, type TestServer } from '../helpers/server.js';
import type { Backend } from '../helpers/backends.js';
import { setupTenants } from '../helpers/tenants.js';
import { fakePath, nixStyleUpload, type FakePath } from '../helpers/paths.js';
import { parseNarInfo } from '../../src/nix/narinfo.js';
import {
  fingerprintPath,
  formatPublicKey,
  generateSigningKey,
  signFingerprint,
  verifyFingerprint,
} from '../../src/nix/signing.js';
import { parseHash } from '../../src/nix/hash.js';
import type { StorePathBase } from '../../src/nix/store-path.js';

type Key = { name: string; publicKey: Buffer };
const parseKey = (text: string): Key => ({
  name: text.split(':')[0]!,
  publicKey: Buffer.from(text.split(':')[1]!, 'base64'),
});

/** The same store path (name and hash part) with other content: what a squatter uploads. */
function squat(p: FakePath, tag: string): FakePath {
  const other = fakePath(`${tag}-content`);
  return { ...other, base: p.base, hashPart: p.hashPart, references: p.references };
}

export function integrityScenarios(backend: Backend): void {
  let server: TestServer;
  let cacheUrl: string;
  let acmeCI: string;
  let acmeRead: string;
  let evilRW: string;
  let sandboxRW: string;

  async function get(url: string, token?: string, method = 'GET') {
    const res = await fetch(url, { method, headers: token ? { Authorization: basicAuth(token) } : {} });
    return { status: res.status, text: await res.text() };
  }
  async function batch(token: string, p: FakePath, opts: { sigs?: string[]; slice?: string } = {}) {
    const meta = {
      storePath: `/nix/store/${p.base}`,
      narHash: p.narHash,
      narSize: p.narSize,
      references: p.references.map((r) => `/nix/store/${r}`),
      ...(opts.sigs ? { sigs: opts.sigs } : {}),
    };
    const res = await fetch(`${server.url}/api/v1/cache${opts.slice ? `/${opts.slice}` : ''}/paths`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${token}` },
      body: new Uint8Array(Buffer.concat([Buffer.from(JSON.stringify(meta) + '\n'), p.nar])),
    });
    return { status: res.status, body: (await res.json().catch(() => ({}))) as { message?: string; status?: string } };
  }
  async function missing(token: string, paths: FakePath[], slice?: string): Promise<string[]> {
    const r = await api<{ missing: string[] }>(
      server,
      token,
      'POST',
      `/api/v1/cache${slice ? `/${slice}` : ''}/missing`,
      { paths: paths.map((p) => `/nix/store/${p.base}`) },
    );
    expect(r.status).toBe(200);
    return r.body.missing.map((x) => x.slice('/nix/store/'.length)).sort();
  }
  const served = async (p: FakePath, token?: string, url = cacheUrl) => {
    const r = await get(`${url}/${p.hashPart}.narinfo`, token);
    return r.status === 200 ? parseNarInfo(r.text) : undefined;
  };
  const keysOf = async (org: string) =>
    (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=${org}`)).text()).trim().split(' ').map(parseKey);
  const signedBy = (info: ReturnType<typeof parseNarInfo>, keys: Key[]) =>
    info.sigs.some((s) => keys.some((k) => verifyFingerprint(k, fingerprintPath(info), s)));

  beforeAll(async () => {
    await backend.setup();
    server = await backend.start();
    cacheUrl = `${server.url}/cache`;
    ({ acmeCI, acmeRead, evilRW, sandboxRW } = await setupTenants(server));
  });

  afterAll(async () => {
    await server?.cleanup();
    await backend.teardown();
  });

  describe('another org squatting a store path acme will need', () => {
    let dep: FakePath;
    let top: FakePath;
    let trojan: FakePath;
    beforeAll(async () => {
      dep = fakePath('dep');
      top = fakePath('top', undefined, [dep.base]);
      trojan = squat(dep, 'trojan');
      // evil uploads first, into a public slice: upload order must decide nothing.
      expect(await nixStyleUpload(`${cacheUrl}/evil/bait`, basicAuth(evilRW), trojan)).toMatchObject({
        nar: 201,
        narinfo: 201,
      });
    });

    it('is never served to acme or to anonymous callers on /cache', async () => {
      expect(await served(trojan)).toBeUndefined();
      expect(await served(trojan, acmeRead)).toBeUndefined();
      expect(await served(trojan, acmeCI)).toBeUndefined();
      // It answers at its own public URL: that is a source one must choose.
      expect((await served(trojan, undefined, `${cacheUrl}/evil/bait`))?.narHash).toEqual(parseHash(trojan.narHash));
    });

    it("is reported missing to acme's push and never linked into acme's slices", async () => {
      expect(await missing(acmeCI, [top, dep])).toEqual([dep.base, top.base].sort());
      // A narinfo that leans on evil's copy is refused: the reference must be uploaded.
      const leaning = await nixStyleUpload(cacheUrl, basicAuth(acmeCI), top);
      expect(leaning.narinfo).toBe(400);
      expect(leaning.narinfoText).toMatch(/References: 1 missing from acme\/default/);
      expect(await served(dep, acmeRead)).toBeUndefined();
      // acme uploads its own copy: then the closure commits and acme gets acme's bytes.
      expect(await nixStyleUpload(cacheUrl, basicAuth(acmeCI), dep)).toMatchObject({ nar: 201, narinfo: 201 });
      expect(await nixStyleUpload(cacheUrl, basicAuth(acmeCI), top)).toMatchObject({ nar: 201, narinfo: 201 });
      expect((await served(dep, acmeRead))?.narHash).toEqual(parseHash(dep.narHash));
      expect(await served(dep)).toBeUndefined();
    });

    it("narinfos carry each org's own signature; acme's key verifies only acme's content", async () => {
      const acmeKeys = await keysOf('acme');
      const evilKeys = await keysOf('evil');
      expect(acmeKeys.map((k) => k.name)).not.toEqual(evilKeys.map((k) => k.name));
      const mine = (await served(dep, acmeRead))!;
      const theirs = (await served(trojan, undefined, `${cacheUrl}/evil/bait`))!;
      expect(signedBy(mine, acmeKeys)).toBe(true);
      expect(signedBy(theirs, evilKeys)).toBe(true);
      // The second wall: even served through a misconfigured view, a client trusting acme's key refuses it.
      expect(signedBy(theirs, acmeKeys)).toBe(false);
      // /cache/info gives a caller exactly the keys of its view.
      const info = await api<{ publicKeys: string[] }>(server, acmeRead, 'GET', '/api/v1/cache/info');
      expect(info.body.publicKeys.map((k) => parseKey(k).name)).toEqual(acmeKeys.map((k) => k.name));
    });

    it("a deliberate follow serves evil's paths after acme's own, with evil's key", async () => {
      const only = fakePath('only-at-evil');
      expect(await nixStyleUpload(`${cacheUrl}/evil/bait`, basicAuth(evilRW), only)).toMatchObject({
        nar: 201,
        narinfo: 201,
      });
      expect(await served(only, acmeRead)).toBeUndefined();
      // Following a private or missing slice says the same thing (asked by acme's own admin).
      const acmeAdmin = (await createToken(server, 'acme', ['admin'])).token;
      const bad = await api<{ message: string }>(server, acmeAdmin, 'POST', '/api/v1/orgs/acme/follows', {
        org: 'evil',
        slice: 'default',
      });
      const none = await api<{ message: string }>(server, acmeAdmin, 'POST', '/api/v1/orgs/acme/follows', {
        org: 'evil',
        slice: 'nope',
      });
      expect(bad.status).toBe(400);
      expect(bad.body.message.replace('default', 'X')).toBe(none.body.message.replace('nope', 'X'));
      expect(
        (await api(server, acmeAdmin, 'POST', '/api/v1/orgs/acme/follows', { org: 'evil', slice: 'bait' })).status,
      ).toBe(201);
      try {
        const got = await served(only, acmeRead);
        expect(got?.narHash).toEqual(parseHash(only.narHash));
        expect(signedBy(got!, await keysOf('evil'))).toBe(true);
        // acme's own copy still wins over the followed source's.
        expect((await served(dep, acmeRead))?.narHash).toEqual(parseHash(dep.narHash));
        const info = await api<{ publicKeys: string[] }>(server, acmeRead, 'GET', '/api/v1/cache/info');
        expect(info.body.publicKeys.map((k) => parseKey(k).name).sort()).toEqual(
          [...(await keysOf('acme')), ...(await keysOf('evil'))].map((k) => k.name).sort(),
        );
        // Following is reading, never linking: an input-addressed path of another org is uploaded, not linked.
        const user = fakePath('uses-evil', undefined, [only.base]);
        expect(await missing(acmeCI, [user, only])).toEqual([only.base, user.base].sort());
        expect((await batch(acmeCI, user)).status).toBe(400);
      } finally {
        expect((await api(server, server.adminToken, 'DELETE', '/api/v1/orgs/acme/follows/evil/bait')).status).toBe(
          200,
        );
      }
      expect(await served(only, acmeRead)).toBeUndefined();
    });

    it('content-addressed paths are shared safely: a verified CA path links across orgs', async () => {
      // A recursive sha256 path whose store path is computed from its NAR hash (as Nix does).
      const { contentAddressedPath } = await import('../../src/nix/content-address.js');
      const base = fakePath('ca-src');
      const ca = `fixed:r:sha256:${base.narHash.slice('sha256:'.length)}`;
      const storePath = contentAddressedPath('ca-src', { method: 'nar', hash: parseHash(base.narHash) }, [], false);
      const caPath: FakePath = { ...base, base: storePath, hashPart: storePath.slice(0, 32) };
      const meta = {
        storePath: `/nix/store/${caPath.base}`,
        narHash: caPath.narHash,
        narSize: caPath.narSize,
        references: [],
        ca,
      };
      const up = await fetch(`${server.url}/api/v1/cache/evil/bait/paths`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${evilRW}` },
        body: new Uint8Array(Buffer.concat([Buffer.from(JSON.stringify(meta) + '\n'), caPath.nar])),
      });
      expect(up.status).toBe(201);
      const user = fakePath('uses-ca', undefined, [caPath.base]);
      // Linkable, so only the user is missing; the commit links the CA path in with acme's signature.
      expect(await missing(acmeCI, [user])).toEqual([user.base]);
      expect((await batch(acmeCI, user)).status).toBe(201);
      const linked = await served(caPath, acmeRead);
      expect(linked?.ca).toBe(ca);
      expect(signedBy(linked!, await keysOf('acme'))).toBe(true);
    });
  });

  describe('a low-trust slice inside acme', () => {
    let dep: FakePath;
    let top: FakePath;
    let trojan: FakePath;
    beforeAll(async () => {
      dep = fakePath('sandbox-dep');
      top = fakePath('sandbox-top', undefined, [dep.base]);
      trojan = squat(dep, 'sandbox-trojan');
      // A write token limited to `sandbox` uploads through /cache: it lands in its only slice.
      expect(await nixStyleUpload(cacheUrl, basicAuth(sandboxRW), trojan)).toMatchObject({ nar: 201, narinfo: 201 });
    });

    it("is not in the org's view, so acme's machines never get its copy", async () => {
      expect(await served(trojan, acmeRead)).toBeUndefined();
      // The limited token's own view is its slices.
      expect((await served(trojan, sandboxRW))?.narHash).toEqual(parseHash(trojan.narHash));
    });

    it("never feeds default: the CI's push uploads its own copy", async () => {
      expect(await missing(acmeCI, [top, dep])).toEqual([dep.base, top.base].sort());
      expect((await batch(acmeCI, top)).status).toBe(400);
      expect((await batch(acmeCI, dep)).status).toBe(201);
      expect((await batch(acmeCI, top)).status).toBe(201);
      expect((await served(dep, acmeRead))?.narHash).toEqual(parseHash(dep.narHash));
    });

    it('even in view, default comes first; links from it need an explicit trust', async () => {
      expect(
        (
          await api(server, server.adminToken, 'PATCH', '/api/v1/orgs/acme/slices/sandbox', {
            inView: true,
            priority: 5,
          })
        ).status,
      ).toBe(200);
      try {
        // default's copy wins over the sandbox's, whichever came first.
        expect((await served(dep, acmeRead))?.narHash).toEqual(parseHash(dep.narHash));
        const only = fakePath('sandbox-only');
        expect((await batch(sandboxRW, only)).status).toBe(201);
        expect((await served(only, acmeRead))?.narHash).toEqual(parseHash(only.narHash));
        const user = fakePath('sandbox-user', undefined, [only.base]);
        expect((await batch(acmeCI, user)).status).toBe(400);
        expect(
          (await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/slices/default/trusts', { from: 'sandbox' }))
            .status,
        ).toBe(201);
        // The missing answer lists what the target lacks (uploading a linkable path is harmless);
        // the commit links it from the trusted slice.
        expect(await missing(acmeCI, [user])).toEqual([user.base]);
        expect((await batch(acmeCI, user)).status).toBe(201);
        expect((await served(only, acmeRead, `${cacheUrl}/acme/default`))?.narHash).toEqual(parseHash(only.narHash));
        expect(
          (await api(server, server.adminToken, 'DELETE', '/api/v1/orgs/acme/slices/default/trusts/sandbox')).status,
        ).toBe(200);
      } finally {
        expect(
          (await api(server, server.adminToken, 'PATCH', '/api/v1/orgs/acme/slices/sandbox', { inView: false })).status,
        ).toBe(200);
      }
    });
  });

  describe('a signed-writes policy', () => {
    const ci = generateSigningKey('acme-ci-1');
    const sign = (p: FakePath) =>
      signFingerprint(
        ci,
        fingerprintPath({
          storePath: p.base,
          narHash: parseHash(p.narHash),
          narSize: p.narSize,
          references: p.references as StorePathBase[],
        }),
      );
    beforeAll(async () => {
      expect(
        (await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/slices', { name: 'release' })).status,
      ).toBe(201);
      expect(
        (await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/signers', { publicKey: formatPublicKey(ci) }))
          .status,
      ).toBe(201);
      // release trusts default as every slice does; default's content is unsigned.
      const policy = `@id("signed-releases")
forbid (principal, action == Floe::Action::"cache.write", resource == Floe::Slice::"acme/release")
when { context has narinfoSignatures } unless { context.narinfoSignatures.contains("acme-ci-1") };`;
      const r = await api(server, server.adminToken, 'PUT', '/api/v1/orgs/acme/policies', { source: policy });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
    });

    it('cannot be bypassed by references: a linked unsigned path is refused, and the commit with it', async () => {
      const unsigned = fakePath('unsigned-dep');
      expect((await batch(acmeCI, unsigned)).status).toBe(201); // into default, where no signature is required
      const top = fakePath('signed-top', undefined, [unsigned.base]);
      const refused = await batch(acmeCI, top, { sigs: [sign(top)], slice: 'acme/release' });
      expect(refused.status).toBe(403);
      expect(refused.body.message).toMatch(/unsigned-dep.*forbidden by org policy signed-releases/);
      expect(await served(top, acmeRead, `${cacheUrl}/acme/release`)).toBeUndefined();
      expect(await served(unsigned, acmeRead, `${cacheUrl}/acme/release`)).toBeUndefined();
      // With the dependency signed by the CI key, the same closure is accepted (linked from default).
      const signedDep = fakePath('signed-dep');
      expect((await batch(acmeCI, signedDep, { sigs: [sign(signedDep)] })).status).toBe(201);
      const top2 = fakePath('signed-top2', undefined, [signedDep.base]);
      expect((await batch(acmeCI, top2, { sigs: [sign(top2)], slice: 'acme/release' })).status).toBe(201);
      expect(await served(signedDep, acmeRead, `${cacheUrl}/acme/release`)).toBeDefined();
    });
  });

  describe('slice URLs are no existence oracle', () => {
    it('every method on a slice the caller may neither read nor write answers the miss', async () => {
      const p = fakePath('oracle');
      const real = await nixStyleUpload(`${cacheUrl}/acme/default`, basicAuth(evilRW), p);
      const typo = await nixStyleUpload(`${cacheUrl}/acme/no-such-slice`, basicAuth(evilRW), p);
      expect(real).toEqual(typo);
      expect(real.nar).toBe(404);
      for (const method of ['GET', 'HEAD']) {
        const a = await get(`${cacheUrl}/acme/default/nix-cache-info`, evilRW, method);
        const b = await get(`${cacheUrl}/acme/nope/nix-cache-info`, evilRW, method);
        expect(a).toEqual(b);
        expect(a.status).toBe(404);
      }
      // The batch API says the same for "missing" and "not yours".
      const x = await batch(evilRW, p, { slice: 'acme/default' });
      const y = await batch(evilRW, p, { slice: 'acme/nope' });
      expect(x).toEqual(y);
      const m1 = await api(server, evilRW, 'POST', '/api/v1/cache/acme/default/missing', {
        paths: [`/nix/store/${p.base}`],
      });
      const m2 = await api(server, evilRW, 'POST', '/api/v1/cache/acme/nope/missing', {
        paths: [`/nix/store/${p.base}`],
      });
      expect(m1.status).toBe(m2.status);
      expect(m1.body).toEqual(m2.body);
      // Org routes too: "no such org" and "not yours" read the same.
      const o1 = await api<{ message: string }>(server, evilRW, 'GET', '/api/v1/orgs/acme/sources');
      const o2 = await api<{ message: string }>(server, evilRW, 'GET', '/api/v1/orgs/no-such-org/sources');
      expect(o1.status).toBe(403);
      expect(o1.body.message.replace('acme', 'X')).toBe(o2.body.message.replace('no-such-org', 'X'));
    });
  });

  describe('audit entries do not spy across orgs', () => {
    it("a probe by another org's caller is logged in the caller's org, and only counted in the resource's", async () => {
      const p = fakePath('audit-probe');
      for (let i = 0; i < 3; i++) await get(`${cacheUrl}/acme/default/${p.hashPart}.narinfo`, evilRW);
      type Entries = {
        entries: Array<{ actor: string; action: string; outcome: string; target: string; reason: string }>;
      };
      const acme = await api<Entries>(
        server,
        server.adminToken,
        'GET',
        '/api/v1/orgs/acme/audit?outcome=deny&limit=1000',
      );
      expect(acme.body.entries.some((e) => e.actor.startsWith('evil:'))).toBe(false);
      const counted = acme.body.entries.filter(
        (e) => e.actor === 'outside callers' && e.target === 'slice acme/default',
      );
      expect(counted.length).toBeGreaterThan(0);
      expect(counted.map((e) => e.reason).join(' ')).toMatch(/\d+ requests? by callers outside this org/);
      const evil = await api<Entries>(server, evilRW, 'GET', '/api/v1/orgs/evil/audit?outcome=deny&limit=1000');
      expect(evil.body.entries.some((e) => e.actor.startsWith('evil:') && e.target === 'slice acme/default')).toBe(
        true,
      );
    });
  });

  describe('org keys', () => {
    it("rotate without breaking anyone's substitution, then retire the old key", async () => {
      const p = fakePath('rotated');
      expect((await batch(acmeCI, p)).status).toBe(201);
      const [old] = await keysOf('acme');
      const evilBefore = await keysOf('evil');
      const rotated = await api<{ keys: string[]; resigned: number }>(
        server,
        server.adminToken,
        'POST',
        '/api/v1/orgs/acme/keys/rotate',
      );
      expect(rotated.status).toBe(200);
      expect(rotated.body.resigned).toBeGreaterThan(0);
      const both = await keysOf('acme');
      expect(both).toHaveLength(2);
      const fresh = both.find((k) => k.name !== old!.name)!;
      // During the transition every narinfo verifies with either key.
      const during = (await served(p, acmeRead))!;
      expect(signedBy(during, [old!])).toBe(true);
      expect(signedBy(during, [fresh])).toBe(true);
      // New paths too.
      const q = fakePath('after-rotation');
      expect((await batch(acmeCI, q)).status).toBe(201);
      expect(signedBy((await served(q, acmeRead))!, [old!])).toBe(true);
      // The active key cannot be retired; the old one can, and then stops signing.
      expect((await api(server, server.adminToken, 'POST', `/api/v1/orgs/acme/keys/${fresh.name}/retire`)).status).toBe(
        400,
      );
      expect((await api(server, server.adminToken, 'POST', `/api/v1/orgs/acme/keys/${old!.name}/retire`)).status).toBe(
        200,
      );
      const after = (await served(p, acmeRead))!;
      expect(signedBy(after, [old!])).toBe(false);
      expect(signedBy(after, [fresh])).toBe(true);
      expect((await keysOf('acme')).map((k) => k.name)).toEqual([fresh.name]);
      // Another org's keys are untouched.
      expect(await keysOf('evil')).toEqual(evilBefore);
    });

    it('uploaders cannot bring signatures under the org key names', async () => {
      const [key] = await keysOf('acme');
      const p = fakePath('forged-name');
      const forged = `${key!.name}:${Buffer.alloc(64, 7).toString('base64')}`;
      expect((await batch(acmeCI, p, { sigs: [forged] })).status).toBe(201);
      const info = (await served(p, acmeRead))!;
      expect(info.sigs).not.toContain(forged);
      expect(signedBy(info, [key!])).toBe(true);
    });
  });
}
