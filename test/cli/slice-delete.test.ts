/**
 * `floe slice delete <org>/<slice>` and DELETE /api/v1/orgs/<org>/slices/<slice> against a real
 * server: the default slice and slices holding paths are refused; a token limited to another
 * slice may not delete it; live tokens limited to it block the delete until revoked (a slice
 * created later under the same name would open to them); a delete removes the slice's link
 * trusts and other orgs' follows of it, is audited, and the name can be used again. `--force`
 * removes the slice's paths first, but only once nothing else refuses the delete.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFloe } from '../helpers/floe-cli.js';
import { fakePath, nixStyleUpload } from '../helpers/paths.js';
import { api, basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';

let server: TestServer;
let admin: string;
let held: ReturnType<typeof fakePath>;
const floe = (args: string[], token = admin) => runFloe(args, { env: { FLOE_SERVER: server.url, FLOE_TOKEN: token } });
const slicesOf = async (org: string) =>
  (
    await api<{ slices: Array<{ name: string }> }>(server, server.adminToken, 'GET', `/api/v1/orgs/${org}/sources`)
  ).body.slices.map((s) => s.name);

beforeAll(async () => {
  server = await startFloe();
  await createOrg(server, 'acme');
  await createOrg(server, 'partner');
  admin = (await createToken(server, 'acme', ['admin'])).token;
});

afterAll(async () => {
  await server?.cleanup();
});

describe('floe slice delete', () => {
  it('refuses the default slice and a slice holding paths', async () => {
    const d = await floe(['slice', 'delete', 'acme/default']);
    expect(d.code).not.toBe(0);
    expect(d.stderr).toMatch(/400.*the default slice cannot be deleted/);
    expect((await floe(['slice', 'create', 'acme', 'full'])).code).toBe(0);
    const writer = (await createToken(server, 'acme', ['read', 'write'])).token;
    held = fakePath('held');
    const up = await nixStyleUpload(`${server.url}/cache/acme/full`, basicAuth(writer), held);
    expect(up.narinfo, up.narinfoText).toBe(201);
    const full = await floe(['slice', 'delete', 'acme/full']);
    expect(full.code).not.toBe(0);
    expect(full.stderr).toMatch(/409.*acme\/full holds 1 path\(s\).*only an empty slice can be deleted/);
    expect(await slicesOf('acme')).toContain('full');
  });

  it('a token limited to another slice may not delete it; live tokens limited to it block the delete', async () => {
    for (const s of ['staging', 'other']) expect((await floe(['slice', 'create', 'acme', s])).code).toBe(0);
    const otherAdmin = (await createToken(server, 'acme', ['admin'], { slices: ['other'] })).token;
    const denied = await api(server, otherAdmin, 'DELETE', '/api/v1/orgs/acme/slices/staging');
    expect(denied.status).toBe(403);
    const limited = await createToken(server, 'acme', ['read'], { slices: ['staging'] });
    const blocked = await floe(['slice', 'delete', '--org', 'acme', 'staging']);
    expect(blocked.code).not.toBe(0);
    expect(blocked.stderr).toMatch(
      /409.*1 live token\(s\) and 0 identity trust\(s\) are limited to slice acme\/staging/,
    );
    expect((await api(server, server.adminToken, 'DELETE', `/api/v1/tokens/${limited.id}`)).status).toBeLessThan(300);
    expect(await slicesOf('acme')).toContain('staging');
  });

  it('deletes an empty slice with its link trusts and follows, audited; the name is free again', async () => {
    expect((await floe(['slice', 'create', 'acme', 'pub', '--public'])).code).toBe(0);
    expect((await floe(['slice', 'trust', 'acme', 'default', '--from', 'staging'])).code).toBe(0);
    expect((await floe(['slice', 'trust', 'acme', 'staging', '--from', 'pub'])).code).toBe(0);
    const partnerAdmin = (await createToken(server, 'partner', ['admin'])).token;
    expect(
      (await api(server, partnerAdmin, 'POST', '/api/v1/orgs/partner/follows', { org: 'acme', slice: 'pub' })).status,
    ).toBe(201);
    const r = await floe(['slice', 'delete', 'acme/staging', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ org: 'acme', name: 'staging', deleted: true, trusts: 2, follows: 0 });
    expect(await slicesOf('acme')).not.toContain('staging');
    const pub = await floe(['slice', 'delete', 'acme', 'pub']);
    expect(pub.code, pub.stderr).toBe(0);
    expect(pub.stdout).toMatch(/deleted slice acme\/pub \(0 link trust\(s\), 1 follow\(s\)/);
    const follows = await api<{ follows: unknown[] }>(server, partnerAdmin, 'GET', '/api/v1/orgs/partner/sources');
    expect(follows.body.follows).toEqual([]);
    const gone = await fetch(`${server.url}/cache/acme/staging/nix-cache-info`, {
      headers: { Authorization: `Bearer ${admin}` },
    });
    expect(gone.status).toBe(404);
    const audit = await api<{ entries: Array<{ action: string; target: string }> }>(
      server,
      server.adminToken,
      'GET',
      '/api/v1/orgs/acme/audit?action=slice.delete',
    );
    expect(audit.body.entries.map((e) => e.target).sort()).toEqual(['slice acme/pub', 'slice acme/staging']);
    expect((await floe(['slice', 'create', 'acme', 'staging'])).code).toBe(0);
    const missing = await floe(['slice', 'delete', 'acme/nope']);
    expect(missing.code).not.toBe(0);
  });

  it('--force removes the paths first, and removes nothing when the delete would be refused', async () => {
    const writer = (await createToken(server, 'acme', ['read', 'write'])).token;
    const narinfo = (slice: string, hash: string) =>
      fetch(`${server.url}/cache/acme/${slice}/${hash}.narinfo`, {
        headers: { Authorization: `Bearer ${admin}` },
      }).then(async (r) => {
        await r.text();
        return r.status;
      });
    expect((await floe(['slice', 'create', 'acme', 'kept'])).code).toBe(0);
    const kept = fakePath('kept-path');
    expect((await nixStyleUpload(`${server.url}/cache/acme/kept`, basicAuth(writer), kept)).narinfo).toBe(201);
    const limited = await createToken(server, 'acme', ['read'], { slices: ['kept'] });
    const refused = await floe(['slice', 'delete', 'acme/kept', '--force']);
    expect(refused.stderr).toMatch(/409.*live token/);
    expect(await narinfo('kept', kept.hashPart)).toBe(200);
    expect((await api(server, server.adminToken, 'DELETE', `/api/v1/tokens/${limited.id}`)).status).toBeLessThan(300);

    expect(await narinfo('full', held.hashPart)).toBe(200);
    const r = await floe(['slice', 'delete', 'acme/full', '--force']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/deleted slice acme\/full \(1 path\(s\), /);
    expect(await slicesOf('acme')).not.toContain('full');
    expect(await narinfo('full', held.hashPart)).toBe(404);
    const audit = await api<{ entries: Array<{ target: string; detail: { force?: boolean; paths?: number } }> }>(
      server,
      server.adminToken,
      'GET',
      '/api/v1/orgs/acme/audit?action=slice.delete',
    );
    expect(audit.body.entries.find((e) => e.target === 'slice acme/full')?.detail).toMatchObject({
      force: true,
      paths: 1,
    });
    // The slice that was not deleted still serves its path.
    expect(await narinfo('kept', kept.hashPart)).toBe(200);
  });
});
