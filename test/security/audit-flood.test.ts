/**
 * A flood of refused requests cannot erase the audit trail: every token.create survives, and the
 * denials appear as a few counted summaries instead of one row per request (which used to fill
 * the queue, after which every new entry, token.create included, was dropped).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createOrg, startFloe, type TestServer } from '../helpers/server.js';

let server: TestServer;
const SLICES = 12;

beforeAll(async () => {
  server = await startFloe();
  await createOrg(server, 'acme');
  for (let i = 0; i < SLICES; i++)
    expect((await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/slices', { name: `p${i}` })).status).toBe(
      201,
    );
});
afterAll(async () => {
  await server?.cleanup();
});

type Entry = {
  actor: string;
  action: string;
  outcome: string;
  target: string;
  reason: string;
  detail: Record<string, unknown>;
};
const audit = async (q: string) =>
  (await api<{ entries: Entry[] }>(server, server.adminToken, 'GET', `/api/v1/audit?limit=5000&${q}`)).body.entries;

describe('audit under a flood of denials', () => {
  it('keeps every token.create and summarizes the denials with counts', async () => {
    const hash = 'a'.repeat(52);
    let denied = 0;
    let stop = false;
    // Anonymous probes of private slices: each is refused (and used to be one audit row each).
    const flood = async () => {
      while (!stop) {
        const i = denied++ % SLICES;
        const res = await fetch(`${server.url}/cache/acme/p${i}/nar/${hash}.nar.zst`, { method: 'HEAD' });
        expect(res.status).toBe(404);
      }
    };
    const workers = Array.from({ length: 16 }, flood);
    const created: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await api<{ id: string }>(server, server.adminToken, 'POST', '/api/v1/tokens', {
        org: 'acme',
        scopes: ['read'],
        ttl: '1h',
        subject: `flood-${i}`,
      });
      expect(r.status).toBe(201);
      created.push(r.body.id);
      await new Promise((r) => setTimeout(r, 20));
    }
    while (denied < 3000) await new Promise((r) => setTimeout(r, 20));
    stop = true;
    await Promise.all(workers);

    const tokens = await audit('action=token.create');
    for (const id of created) expect(tokens.some((e) => e.target === `token ${id}`)).toBe(true);

    const denials = (await audit('outcome=deny')).filter(
      (e) => e.actor === 'anonymous' && e.target.startsWith('slice acme/p'),
    );
    // One full entry per slice and minute, plus its counted summary: bounded by the slices probed, not the requests.
    expect(denials.length).toBeLessThanOrEqual(SLICES * 2 * 2);
    const summaries = denials.filter((e) => e.detail.summary === true);
    expect(summaries.length).toBeGreaterThan(0);
    for (const s of summaries) expect(s.reason).toMatch(/^\d+ more requests? refused since/);
    const full = denials.length - summaries.length;
    const counted = summaries.reduce((n, s) => n + Number(s.detail.count), 0);
    // Every refused probe is accounted for: as the first entry or in a count.
    expect(full + counted).toBeGreaterThanOrEqual(denied - 16);
    expect(full + counted).toBeLessThanOrEqual(denied);
    // The resource's org sees only anonymous counts.
    const acme = (
      await api<{ entries: Entry[] }>(
        server,
        server.adminToken,
        'GET',
        '/api/v1/orgs/acme/audit?outcome=deny&limit=5000',
      )
    ).body.entries;
    expect(acme.every((e) => e.actor === 'outside callers')).toBe(true);
    expect(acme.reduce((n, e) => n + Number(e.detail.count), 0)).toBe(full + counted);
  }, 120_000);
});
