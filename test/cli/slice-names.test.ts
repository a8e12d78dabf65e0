/**
 * A mistyped slice name answers `no slice named "X" in org Y (did you mean "Z"?)` wherever the
 * caller may know the org's slices: `floe push --slice` (real Nix: a real store path), `floe slice
 * delete` and `slice set`, `floe token create --slice`, `floe trust add --slice`, and the same
 * routes through the API. The hint names only what the caller may know exists: a token limited to
 * one slice hears of no other, and a token of another org gets the plain "not found" (it learns
 * nothing, not even that the org exists).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFloe } from '../helpers/floe-cli.js';
import { BASE_NIX_CONFIG, fixtureDir, hostNix, requireNix } from '../helpers/nix.js';
import { api, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';

const version = await requireNix(hostNix);
let server: TestServer;
let admin: string;
let writer: string;
let storePath: string;
const HINT = /no slice named "stagin" in org acme \(did you mean "staging"\?\)/;
const floe = (args: string[], token = admin) =>
  runFloe(args, { env: { FLOE_SERVER: server.url, FLOE_TOKEN: token, NIX_CONFIG: BASE_NIX_CONFIG } });
const missing = (token: string, slice: string) =>
  api<{ message?: string }>(server, token, 'POST', `/api/v1/cache/acme/${slice}/missing`, { paths: [] });

beforeAll(async () => {
  server = await startFloe();
  await createOrg(server, 'acme');
  await createOrg(server, 'other');
  admin = (await createToken(server, 'acme', ['admin'])).token;
  writer = (await createToken(server, 'acme', ['read', 'write'])).token;
  expect((await api(server, admin, 'POST', '/api/v1/orgs/acme/slices', { name: 'staging' })).status).toBe(201);
  if (version) {
    const dir = await fixtureDir('slice-names');
    const file = path.join(dir, 'hello.txt');
    await writeFile(file, `hello ${Date.now()}\n`);
    const added = await hostNix.run(['nix-store', '--add', file], { cacheHome: path.join(dir, 'cache') });
    expect(added.code, added.stderr).toBe(0);
    storePath = added.stdout.trim();
  }
});

afterAll(async () => {
  await server?.cleanup();
});

describe('a mistyped slice name', () => {
  it.skipIf(!version)('floe push --slice says which slice is missing and the one meant', async () => {
    const r = await floe(['push', '--slice', 'acme/stagin', storePath], writer);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(HINT);
    const ok = await floe(['push', '--slice', 'acme/staging', storePath], writer);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('slice delete, slice set, token create and trust add through the CLI', async () => {
    for (const args of [
      ['slice', 'delete', 'acme/stagin'],
      ['slice', 'delete', 'acme/stagin', '--force'],
      ['slice', 'set', 'acme', 'stagin', '--visibility', 'public'],
      ['token', 'create', '--org', 'acme', '--scope', 'read', '--slice', 'stagin'],
      ['trust', 'add', 'acme', '--provider', 'github', '--owner-id', '1001', '--slice', 'staging,stagin'],
    ]) {
      const r = await floe(args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(HINT);
    }
    // Nothing close: the message names the slice and offers nothing.
    const far = await floe(['slice', 'delete', 'acme/zzzzzzzz']);
    expect(far.stderr).toMatch(/no slice named "zzzzzzzz" in org acme(?! \(did)/);
  });

  it('through the API: 404 (400 for a body naming slices) with the hint for members, nothing for others', async () => {
    const del = await api<{ message: string }>(server, admin, 'DELETE', '/api/v1/orgs/acme/slices/stagin');
    expect(del.status).toBe(404);
    expect(del.body.message).toMatch(HINT);
    const token = await api<{ message: string }>(server, admin, 'POST', '/api/v1/tokens', {
      org: 'acme',
      scopes: ['read'],
      slices: ['stagin', 'defalt'],
    });
    expect(token.status).toBe(400);
    expect(token.body.message).toMatch(HINT);
    expect(token.body.message).toMatch(/no slice named "defalt" in org acme \(did you mean "default"\?\)/);
    const asMember = await missing(writer, 'stagin');
    expect(asMember.status).toBe(404);
    expect(asMember.body.message).toMatch(HINT);
    // The server admin may know every slice.
    expect((await missing(server.adminToken, 'stagin')).body.message).toMatch(HINT);
    // Limited to default: it hears nothing of staging, and staging itself is missing for it.
    const limited = (await createToken(server, 'acme', ['read', 'write'], { slices: ['default'] })).token;
    const l1 = await missing(limited, 'stagin');
    expect(l1.status).toBe(404);
    expect(l1.body.message).toBe('no slice named "stagin" in org acme');
    expect((await missing(limited, 'staging')).body.message).toBe('no slice named "staging" in org acme');
    // Another org's token learns nothing, whether the slice exists or not.
    const stranger = (await createToken(server, 'other', ['read', 'write'])).token;
    for (const slice of ['stagin', 'staging']) {
      const s = await missing(stranger, slice);
      expect(s.status).toBe(404);
      // The plain miss, the same as for any path that is not there.
      expect(JSON.stringify(s.body ?? '')).not.toMatch(/slice|staging|acme/);
    }
    expect((await missing(writer, 'staging')).status).toBe(200);
  });
});
