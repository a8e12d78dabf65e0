/**
 * Narinfo fields Floe does not interpret (`Provenance:` …) over real HTTP: they survive a key
 * rotation's re-signing and a link from a source the target trusts; a link on a ground that is
 * safe whatever the source (here a signature by a key the target org trusts, from another org's
 * public slice) brings the path without them, because no signature covers them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { fakePath, narInfoFor, nixStyleUpload, type FakePath } from '../helpers/paths.js';
import { formatPublicKey, generateSigningKey, fingerprintPath, signFingerprint } from '../../src/nix/signing.js';
import { parseHash } from '../../src/nix/hash.js';
import type { StorePathBase } from '../../src/nix/store-path.js';

const PROVENANCE = 'Provenance: {"drv":"x.drv","next":null,"output":"out","type":"build"}\n';

describe('narinfo fields kept per path', () => {
  let server: TestServer;
  let cache: string;
  let acmeRW: string;

  const withFields = (p: FakePath, sigs: string[] = []) =>
    narInfoFor(p, `nar/${p.hashPart}.nar`)
      .replace(
        'References: \n',
        `References: ${p.references.join(' ')}\n${sigs.map((s) => `Sig: ${s}\n`).join('')}${PROVENANCE}`,
      )
      .replace(/References: ([^\n]*) \n/, 'References: $1\n');
  const upload = async (url: string, token: string, p: FakePath, narinfo: string) =>
    expect(await nixStyleUpload(url, basicAuth(token), p, { fileName: `${p.hashPart}.nar`, narinfo })).toMatchObject({
      nar: 201,
      narinfo: 201,
    });
  const narinfo = async (url: string, token: string, p: FakePath) =>
    (await fetch(`${url}/${p.hashPart}.narinfo`, { headers: { Authorization: basicAuth(token) } })).text();

  beforeAll(async () => {
    server = await startFloe();
    cache = `${server.url}/cache`;
    await createOrg(server, 'acme');
    acmeRW = (await createToken(server, 'acme', ['read', 'write'])).token;
    expect((await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/slices', { name: 'team' })).status).toBe(
      201,
    );
  });

  afterAll(async () => {
    await server?.cleanup();
  });

  it("survive re-signing after a key rotation and a link from the org's default slice", async () => {
    const dep = fakePath('fields-dep');
    await upload(cache, acmeRW, dep, withFields(dep));
    expect(await narinfo(cache, acmeRW, dep)).toMatch(new RegExp(`\\n${PROVENANCE.replace(/[{}.()]/g, '\\$&')}$`));
    const before = await narinfo(cache, acmeRW, dep);
    expect((await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/keys/rotate')).status).toBeLessThan(300);
    const after = await narinfo(cache, acmeRW, dep);
    expect(after).not.toBe(before); // signed anew
    expect(after.endsWith(PROVENANCE)).toBe(true);

    // The team slice lacks dep: committing top links it from default (a trusted source), fields kept.
    const top = fakePath('fields-top', undefined, [dep.base]);
    await upload(`${cache}/acme/team`, acmeRW, top, narInfoFor(top, `nar/${top.hashPart}.nar`));
    const linked = await narinfo(`${cache}/acme/team`, acmeRW, dep);
    expect(linked).toContain('StorePath:');
    expect(linked.endsWith(PROVENANCE)).toBe(true);
  });

  it('a path linked because a trusted signer signed it, from another org, enters without them', async () => {
    await createOrg(server, 'other');
    const otherRW = (await createToken(server, 'other', ['read', 'write'])).token;
    expect(
      (await api(server, server.adminToken, 'POST', '/api/v1/orgs/other/slices', { name: 'pub', public: true })).status,
    ).toBe(201);
    const signer = generateSigningKey('ci-signer-1');
    expect(
      (
        await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/signers', {
          publicKey: formatPublicKey(signer),
        })
      ).status,
    ).toBeLessThan(300);
    const dep = fakePath('signed-dep');
    const sig = signFingerprint(
      signer,
      fingerprintPath({
        storePath: dep.base,
        narHash: parseHash(dep.narHash),
        narSize: dep.narSize,
        references: [] as StorePathBase[],
      }),
    );
    await upload(`${cache}/other/pub`, otherRW, dep, withFields(dep, [sig]));
    expect((await narinfo(`${cache}/other/pub`, otherRW, dep)).endsWith(PROVENANCE)).toBe(true);

    const top = fakePath('signed-top', undefined, [dep.base]);
    await upload(cache, acmeRW, top, narInfoFor(top, `nar/${top.hashPart}.nar`));
    const linked = await narinfo(`${cache}/acme/default`, acmeRW, dep);
    expect(linked).toContain(`Sig: ${sig}\n`);
    expect(linked).not.toContain('Provenance:');
  });
});
