/**
 * Upgrading a data directory made by Floe before org keys and views (test/fixtures/
 * data-dir-2026-12-01.tar.gz, made by main at d61c703: orgs acme and globex, a public slice
 * acme/oss, a GitHub trust, four paths signed with the one server key). Existing installations
 * keep working: every path gets its org's signature next to the old server key's, which stays
 * published for each org as its previous key until the org admin retires it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, api, basicAuth, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { fakePath } from '../helpers/paths.js';
import { parseNarInfo } from '../../src/nix/narinfo.js';
import { fingerprintPath, verifyFingerprint } from '../../src/nix/signing.js';
import { parseHash } from '../../src/nix/hash.js';

const FIXTURE = path.join(REPO_ROOT, 'test/fixtures/data-dir-2026-12-01');
type Key = { name: string; publicKey: Buffer };
const parseKey = (text: string): Key => ({
  name: text.split(':')[0]!,
  publicKey: Buffer.from(text.split(':')[1]!, 'base64'),
});

let server: TestServer;
let dataDir: string;
let manifest: { serverKey: string; paths: Record<string, string>; narHashes: Record<string, string> };

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'floe-upgrade-'));
  execFileSync('tar', ['-xzf', `${FIXTURE}.tar.gz`, '-C', dataDir]);
  manifest = JSON.parse(await readFile(`${FIXTURE}.json`, 'utf8'));
  server = await startFloe({ dataDir });
});

afterAll(async () => {
  await server?.cleanup();
  await rm(dataDir, { recursive: true, force: true });
});

async function narinfo(hashPart: string, token: string, prefix = '/cache') {
  const res = await fetch(`${server.url}${prefix}/${hashPart}.narinfo`, {
    headers: { Authorization: basicAuth(token) },
  });
  return res.status === 200 ? parseNarInfo(await res.text()) : undefined;
}
const verifies = (info: ReturnType<typeof parseNarInfo>, key: Key) =>
  info.sigs.some((s) => verifyFingerprint(key, fingerprintPath(info), s));

describe('upgrading a data directory from before org keys', () => {
  it('keeps every path readable, signed by the old server key and by its org key', async () => {
    const legacy = parseKey(manifest.serverKey);
    const acmeKeys = (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=acme`)).text())
      .trim()
      .split(' ')
      .map(parseKey);
    // The org's own key first, the old server key as its previous key.
    expect(acmeKeys.map((k) => k.name)).toEqual([expect.stringMatching(/-acme-1$/), legacy.name]);
    const read = (await createToken(server, 'acme', ['read'])).token;
    for (const name of ['dep', 'top'] as const) {
      const info = (await narinfo(manifest.paths[name]!.slice(0, 32), read))!;
      expect(info.narHash).toEqual(parseHash(manifest.narHashes[name]!));
      expect(verifies(info, legacy)).toBe(true);
      expect(verifies(info, acmeKeys[0]!)).toBe(true);
    }
    // Slices that existed stay in their org's view, and public ones answer at their URL.
    expect(await narinfo(manifest.paths.public!.slice(0, 32), read)).toBeDefined();
    const anon = await fetch(`${server.url}/cache/acme/oss/${manifest.paths.public!.slice(0, 32)}.narinfo`);
    expect(anon.status).toBe(200);
    // Another org's path is signed with that org's own key, not acme's.
    const globexRead = (await createToken(server, 'globex', ['read'])).token;
    const g = (await narinfo(manifest.paths.globex!.slice(0, 32), globexRead))!;
    expect(verifies(g, acmeKeys[0]!)).toBe(false);
    expect(verifies(g, legacy)).toBe(true);
  });

  it('the org admin retires the old server key once machines trust the org key', async () => {
    const legacy = parseKey(manifest.serverKey);
    const r = await api<{ keys: string[]; resigned: number }>(
      server,
      server.adminToken,
      'POST',
      `/api/v1/orgs/acme/keys/${legacy.name}/retire`,
    );
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.resigned).toBe(3);
    const read = (await createToken(server, 'acme', ['read'])).token;
    const info = (await narinfo(manifest.paths.dep!.slice(0, 32), read))!;
    expect(verifies(info, legacy)).toBe(false);
    expect(verifies(info, parseKey(r.body.keys[0]!))).toBe(true);
    // globex is unaffected until its own admin decides.
    const globexRead = (await createToken(server, 'globex', ['read'])).token;
    expect(verifies((await narinfo(manifest.paths.globex!.slice(0, 32), globexRead))!, legacy)).toBe(true);
  });

  it('trusts declared before exclusivity keep working and now claim their subject', async () => {
    const trusts = await api<{ trusts: Array<{ status: string; ownerId: string }> }>(
      server,
      server.adminToken,
      'GET',
      '/api/v1/orgs/acme/trusts',
    );
    expect(trusts.body.trusts).toMatchObject([{ status: 'active', ownerId: '1001' }]);
    const evil = await api<{ status: string }>(server, server.adminToken, 'POST', '/api/v1/orgs/globex/trusts', {
      provider: 'github',
      ownerId: '1001',
      scopes: ['read'],
    });
    expect(evil.body.status).toBe('pending');
  });

  it('accepts new uploads into the upgraded slices', async () => {
    const rw = (await createToken(server, 'acme', ['read', 'write'])).token;
    const p = fakePath('after-upgrade');
    const meta = { storePath: `/nix/store/${p.base}`, narHash: p.narHash, narSize: p.narSize, references: [] };
    const res = await fetch(`${server.url}/api/v1/cache/paths`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${rw}` },
      body: new Uint8Array(Buffer.concat([Buffer.from(JSON.stringify(meta) + '\n'), p.nar])),
    });
    expect(res.status).toBe(201);
  });
});
