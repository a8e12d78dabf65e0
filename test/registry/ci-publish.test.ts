/**
 * Publishing from CI the way flakehub-push does it: the raw GitHub Actions OIDC token (audience =
 * Floe's host) as Bearer on every call. A flake is bound to the repository that first published
 * it: another repository's identity cannot publish it.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createOrg, startFloe, type TestServer } from '../helpers/server.js';
import { githubClaims, startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';

let server: TestServer;
let gh: TestIssuer;

function tarball(data: string): Buffer {
  const root = mkdtempSync('/tmp/floe-ci-flake-');
  mkdirSync(path.join(root, 'source'));
  writeFileSync(path.join(root, 'source', 'flake.nix'), `{ outputs = _: { value = "${data}"; }; }\n`);
  execFileSync('tar', ['-czf', path.join(root, 't.tar.gz'), '-C', root, 'source']);
  return readFileSync(path.join(root, 't.tar.gz'));
}

async function push(jwt: string, flake: string, version: string) {
  const bytes = tarball(version);
  const sha = createHash('sha256').update(bytes).digest('base64');
  const headers = { Authorization: `Bearer ${jwt}`, 'Content-Type': 'application/json' };
  const status = await fetch(`${server.url}/token/status`, { headers });
  if (status.status !== 200) return { step: 'status', status: status.status, body: await status.text() };
  const stage = await fetch(`${server.url}/upload/acme/${flake}/${version}/${bytes.length}/${sha}`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ visibility: 'public', revision: 'c'.repeat(40), commit_count: 1 }),
  });
  if (stage.status !== 200) return { step: 'stage', status: stage.status, body: await stage.text() };
  const { s3_upload_url, uuid } = (await stage.json()) as { s3_upload_url: string; uuid: string };
  await fetch(s3_upload_url, { method: 'PUT', body: new Uint8Array(bytes) });
  const publish = await fetch(`${server.url}/publish/${uuid}`, { method: 'POST', headers });
  return { step: 'publish', status: publish.status, body: await publish.text() };
}

beforeAll(async () => {
  server = await startFloe({ env: { FLOE_OIDC_ALLOW_HTTP_ISSUERS: '1' } });
  gh = await startIssuer();
  await createOrg(server, 'acme');
  const t = await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/trusts', {
    provider: 'github',
    issuer: gh.issuer,
    ownerId: '1001',
    refs: ['refs/heads/main'],
    scopes: ['publish'],
  });
  expect(t.status).toBe(201);
});

afterAll(async () => {
  await server?.cleanup();
  await gh?.stop();
});

describe('publishing from CI (flakehub-push protocol)', () => {
  const host = () => new URL(server.url).host;

  it('the same raw identity token works for all three calls, with audience = our host', async () => {
    const jwt = await gh.mint(githubClaims(), { audience: host() });
    expect(await push(jwt, 'app', '1.0.0')).toMatchObject({ step: 'publish', status: 200 });
  });

  it('another repository of the same owner cannot publish the bound flake', async () => {
    const jwt = await gh.mint(githubClaims({ repository: 'acme-gh/fork', repository_id: '3003' }), {
      audience: host(),
    });
    const r = await push(jwt, 'app', '1.1.0');
    expect(r).toMatchObject({ step: 'stage', status: 403 });
    expect(r.body).toMatch(/published from another repository/);
    // It may publish a flake of its own.
    expect(await push(jwt, 'fork-flake', '0.1.0')).toMatchObject({ step: 'publish', status: 200 });
  });

  it('identities that are not trusted get nothing', async () => {
    const wrongAud = await gh.mint(githubClaims(), { audience: 'api.flakehub.com' });
    expect(await push(wrongAud, 'app', '1.2.0')).toMatchObject({ step: 'status', status: 401 });
    const pr = await gh.mint(githubClaims({ event_name: 'pull_request_target' }), { audience: host() });
    expect(await push(pr, 'app', '1.2.0')).toMatchObject({ step: 'status', status: 403 });
  });
});
