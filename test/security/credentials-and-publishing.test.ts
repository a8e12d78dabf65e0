/**
 * Credentials are never silently dropped, staged releases belong to who staged them, and signing
 * out is on the record. Found in a security review: a token in the Basic *user name* (netrc
 * `login <token>` with no password) was treated as anonymous; `POST /publish/{id}` published
 * anyone's staged upload, expired or not; `/logout` left no audit entry.
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createOrg, startFloe, type TestServer } from '../helpers/server.js';
import { webClient } from '../helpers/web-client.js';
import { flakeTarball, helloMeta } from '../web/fixtures.js';

let server: TestServer;
let reader: string;
let alice: string;
let bob: string;
const web = webClient(() => server);

const token = async (subject: string, scopes: string[]) =>
  (await api<{ token: string }>(server, server.adminToken, 'POST', '/api/v1/tokens', { org: 'acme', scopes, subject }))
    .body.token;

beforeAll(async () => {
  server = await startFloe();
  await createOrg(server, 'acme');
  expect((await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/slices', { name: 'secret' })).status).toBe(
    201,
  );
  reader = await token('reader', ['read']);
  alice = await token('alice', ['publish']);
  bob = await token('bob', ['publish']);
});
afterAll(async () => {
  await server?.cleanup();
});

const basic = (userAndPassword: string) => `Basic ${Buffer.from(userAndPassword).toString('base64')}`;

describe('a token in the Basic user name', () => {
  const misplaced = () => [basic(`${reader}:`), basic(reader), basic(`${alice}:`)];
  // A CI identity token as flakehub-push could send it: three base64url parts.
  const jwtLike = basic(
    `${Buffer.from('{"alg":"ES256"}').toString('base64url')}.${Buffer.from('{"sub":"repo:acme/x"}').toString('base64url')}.${'s'.repeat(40)}:`,
  );

  it('is a 401 (a 400 on /cache reads) saying where the token goes, on every entry point (cache, API, registry, web)', async () => {
    const urls = [
      '/cache/nix-cache-info',
      '/cache/acme/secret/nix-cache-info',
      '/api/v1/auth/whoami',
      '/api/v1/search?q=x',
      '/f/acme/hello/*',
      '/token/status',
      '/flakes/acme',
    ];
    for (const url of urls) {
      for (const auth of [...misplaced(), jwtLike]) {
        const res = await fetch(`${server.url}${url}`, { headers: { Authorization: auth }, redirect: 'manual' });
        // /cache reads answer 400 (Nix takes a 401 there for "absent" and rebuilds silently).
        const onCache = url.startsWith('/cache/');
        expect(res.status, url).toBe(onCache ? 400 : 401);
        if (!onCache) expect(res.headers.get('www-authenticate'), url).toMatch(/^Basic realm="floe"/);
        const text = await res.text();
        expect(text, url).toMatch(/sent as the Basic user name with no password: put it in the password field/);
        // The answer never echoes the credential back.
        expect(text).not.toContain(reader.slice(5, 40));
      }
    }
  });

  it('the same token as the password works, and a user name that is no token stays anonymous', async () => {
    const ok = await api<{ kind: string; subject: string }>(
      { url: server.url },
      undefined,
      'GET',
      '/api/v1/auth/whoami',
    );
    expect(ok.body.kind).toBe('anonymous');
    for (const auth of [basic(`${reader}:${reader}`), basic(`anything:${reader}`), basic(`:${reader}`)]) {
      const res = await fetch(`${server.url}/api/v1/auth/whoami`, { headers: { Authorization: auth } });
      expect(await res.json()).toMatchObject({ kind: 'token', subject: 'reader' });
    }
    const res = await fetch(`${server.url}/api/v1/auth/whoami`, { headers: { Authorization: basic('nix:') } });
    expect(await res.json()).toEqual({ kind: 'anonymous' });
  });
});

describe('publishing a staged upload', () => {
  async function stage(asToken: string, flake: string, version: string): Promise<string> {
    const tarball = flakeTarball(flake, `${flake} ${version}`);
    const sha = createHash('sha256').update(tarball).digest('base64');
    const res = await fetch(`${server.url}/upload/acme/${flake}/${version}/${tarball.length}/${sha}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${asToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(helloMeta()),
    });
    expect(res.status).toBe(200);
    const { s3_upload_url, uuid } = (await res.json()) as { s3_upload_url: string; uuid: string };
    expect((await fetch(s3_upload_url, { method: 'PUT', body: new Uint8Array(tarball) })).status).toBe(200);
    return uuid;
  }
  const publish = (asToken: string, id: string) =>
    fetch(`${server.url}/publish/${id}`, { method: 'POST', headers: { Authorization: `Bearer ${asToken}` } });
  const releases = async (flake: string) =>
    (await api<{ releases?: unknown[] }>(server, server.adminToken, 'GET', `/api/v1/flakes/acme/${flake}/releases`))
      .body.releases?.length ?? 0;

  it('only the identity that staged it can publish it, even within the org and with the id', async () => {
    const id = await stage(alice, 'owned', '1.0.0');
    for (const other of [bob, server.adminToken]) {
      const res = await publish(other, id);
      expect(res.status).toBe(403);
      expect(await res.text()).toMatch(/staged by another identity/);
    }
    expect(await releases('owned')).toBe(0);
    expect((await publish(alice, id)).status).toBe(200);
    expect(await releases('owned')).toBe(1);
  });

  it('an expired staged upload cannot be published, by anyone', async () => {
    const id = await stage(alice, 'stale', '1.0.0');
    const db = new Database(path.join(server.dataDir, 'floe.sqlite'));
    try {
      db.pragma('busy_timeout = 5000');
      db.prepare('UPDATE release_uploads SET expires_at = ? WHERE id = ?').run(
        new Date(Date.now() - 1000).toISOString(),
        id,
      );
    } finally {
      db.close();
    }
    expect((await publish(alice, id)).status).toBe(404);
    expect(await releases('stale')).toBe(0);
  });
});

describe('signing out of the web interface', () => {
  it('is audited, with the session token it revoked', async () => {
    const admin = await token('web-admin', ['admin']);
    const jar = await web.signedIn(admin);
    const session = jar.cookies.get('floe_session')!;
    const out = await web.post(jar, '/logout', { _csrf: jar.csrf });
    expect(out.status).toBe(303);
    // The session token is dead.
    expect(
      (await fetch(`${server.url}/api/v1/auth/whoami`, { headers: { Authorization: `Bearer ${session}` } })).status,
    ).toBe(401);
    const audit = await api<{
      entries: Array<{
        action: string;
        actor: string;
        orgId: string | null;
        detail: { tokenId?: string };
        reason: string;
      }>;
    }>(server, server.adminToken, 'GET', '/api/v1/audit?action=auth.logout');
    const sessionId = JSON.parse(Buffer.from(session.slice(5).split('.')[1]!, 'base64url').toString()).jti as string;
    expect(audit.body.entries).toEqual([
      expect.objectContaining({
        action: 'auth.logout',
        actor: 'acme:web-admin',
        reason: 'web sign-out',
        tokenId: sessionId,
        detail: expect.objectContaining({ tokenId: sessionId }),
      }),
    ]);
  });
});
