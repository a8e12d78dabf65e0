/**
 * `floe slice delete --force` on a slice too big for one request (the server here removes two
 * paths a transaction and answers after one batch): a delete stopped after its first batch left
 * the slice smaller, referrers gone first (what is left is still closed under references); the
 * same command run again finishes, printing how far it got. GC then removes the blobs only that
 * slice held, and keeps the one it shared with another slice, still served there.
 */
import { expect, it } from 'vitest';
import { runFloe } from '../helpers/floe-cli.js';
import type { Backend } from '../helpers/backends.js';
import { fakePath, type FakePath } from '../helpers/paths.js';
import { api, createOrg, createToken, type TestServer } from '../helpers/server.js';

export function sliceDeleteGcScenarios(backend: Backend): void {
  it('empties a huge slice in committed batches, resumably; GC then frees only what it alone held', async () => {
    const server: TestServer = await backend.start({ FLOE_TEST_SLICE_DELETE_BATCH: '2' });
    try {
      await createOrg(server, 'acme');
      const admin = (await createToken(server, 'acme', ['admin'])).token;
      const writer = (await createToken(server, 'acme', ['read', 'write'])).token;
      for (const name of ['big', 'keep'])
        expect((await api(server, admin, 'POST', '/api/v1/orgs/acme/slices', { name })).status).toBe(201);
      const upload = async (slice: string, p: FakePath) => {
        const meta = {
          storePath: `/nix/store/${p.base}`,
          narHash: p.narHash,
          narSize: p.narSize,
          references: p.references.map((r) => `/nix/store/${r}`),
        };
        const res = await fetch(`${server.url}/api/v1/cache/acme/${slice}/paths`, {
          method: 'PUT',
          headers: { Authorization: `Bearer ${writer}` },
          body: new Uint8Array(Buffer.concat([Buffer.from(JSON.stringify(meta) + '\n'), p.nar])),
        });
        expect(res.status, await res.text()).toBeLessThan(300);
      };
      const narinfo = async (slice: string, p: FakePath) => {
        const res = await fetch(`${server.url}/cache/acme/${slice}/${p.hashPart}.narinfo`, {
          headers: { Authorization: `Bearer ${writer}` },
        });
        return { status: res.status, text: await res.text() };
      };
      const shared = fakePath('shared');
      const leaves = Array.from({ length: 4 }, (_, i) => fakePath(`leaf-${i}`));
      const top = fakePath(
        'top',
        undefined,
        [...leaves, shared].map((p) => p.base),
      );
      const blobsBefore = await backend.countBlobs(server);
      await upload('keep', shared);
      for (const p of [shared, ...leaves, top]) await upload('big', p);
      // One blob per distinct NAR: the shared one is stored once for both slices.
      expect(await backend.countBlobs(server)).toBe(blobsBefore + 6);

      // The first request removes one batch and stops: as a delete interrupted after its first commit.
      const partial = await api<{ deleted: boolean; paths: number; remaining: number }>(
        server,
        admin,
        'DELETE',
        '/api/v1/orgs/acme/slices/big?force=1',
      );
      expect(partial.status).toBe(202);
      expect(partial.body).toMatchObject({ deleted: false, paths: 2, remaining: 4 });
      // Referrers first: top went in that batch; every path still served has its references.
      expect((await narinfo('big', top)).status).toBe(404);
      const left = [];
      for (const p of [shared, ...leaves]) if ((await narinfo('big', p)).status === 200) left.push(p);
      expect(left).toHaveLength(4);

      const r = await runFloe(['slice', 'delete', 'acme/big', '--force'], {
        env: { FLOE_SERVER: server.url, FLOE_TOKEN: admin },
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/removed 2 path\(s\) of acme\/big, 2 left/);
      expect(r.stdout).toMatch(/deleted slice acme\/big \(4 path\(s\), /);
      for (const p of [shared, ...leaves, top]) expect((await narinfo('big', p)).status).toBe(404);

      // GC past the grace period (twice: paths, then the blobs no row knows).
      for (let i = 0; i < 2; i++) {
        await new Promise((res) => setTimeout(res, 1100));
        expect((await api(server, server.adminToken, 'POST', '/api/v1/gc', { grace: 1 })).status).toBe(200);
      }
      expect(await backend.countBlobs(server)).toBe(blobsBefore + 1);
      const kept = await narinfo('keep', shared);
      expect(kept.status).toBe(200);
      const url = /^URL: (.+)$/m.exec(kept.text)![1]!;
      const nar = await fetch(`${server.url}/cache/acme/keep/${url}`, {
        headers: { Authorization: `Bearer ${writer}` },
      });
      expect(nar.status).toBe(200);
      expect((await nar.arrayBuffer()).byteLength).toBeGreaterThan(0);
      const audit = await api<{ entries: Array<{ detail: { partial?: boolean; paths?: number } }> }>(
        server,
        server.adminToken,
        'GET',
        '/api/v1/orgs/acme/audit?action=slice.delete',
      );
      expect(audit.body.entries.map((e) => e.detail.paths).sort()).toEqual([2, 2, 2]);
    } finally {
      await server.cleanup();
    }
  });
}
