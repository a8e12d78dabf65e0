/**
 * AWS IAM login: presigned sts:GetCallerIdentity checked by a SigV4-verifying STS stand-in, and
 * every way of abusing the replayed request refused.
 */
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOE_BIN, api, createOrg, startFloe, type TestServer } from '../helpers/server.js';
import { startFakeSts, type FakeSts } from '../helpers/fake-sts.js';
import { signGetCallerIdentity } from '../../src/cli/aws.js';
import type { SignedStsRequest } from '../../src/wire/aws.js';

const exec = promisify(execFile);
const CI = {
  accessKeyId: 'AKIAEXAMPLECI',
  secretAccessKey: 'ci-secret',
  arn: 'arn:aws:sts::111122223333:assumed-role/ci-deploy/gha-1234',
  account: '111122223333',
  userId: 'AROAEXAMPLE:gha-1234',
};
const OTHER = {
  accessKeyId: 'AKIAEXAMPLEOTHER',
  secretAccessKey: 'other-secret',
  arn: 'arn:aws:sts::111122223333:assumed-role/admin/laptop',
  account: '111122223333',
  userId: 'AROAOTHER:laptop',
};
let server: TestServer;
let sts: FakeSts;
let audience: string;

function useCredentials(c: { accessKeyId: string; secretAccessKey: string }) {
  process.env.AWS_ACCESS_KEY_ID = c.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = c.secretAccessKey;
  process.env.AWS_ENDPOINT_URL_STS = sts.endpoint;
  process.env.AWS_REGION = 'us-east-1';
}

async function send(req: SignedStsRequest) {
  return api<{ message: string; subject: string; token: string }>(server, undefined, 'POST', '/api/v1/auth/aws', req);
}

beforeAll(async () => {
  sts = await startFakeSts([CI, OTHER]);
  server = await startFloe({ env: { FLOE_TEST_AWS_STS_ENDPOINT: sts.endpoint } });
  audience = server.url;
  await createOrg(server, 'acme');
  const t = await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/trusts', {
    provider: 'aws',
    accountId: '111122223333',
    arnPatterns: ['arn:aws:iam::111122223333:role/ci-*'],
    scopes: ['read', 'write'],
  });
  expect(t.status, JSON.stringify(t.body)).toBe(201);
});

afterAll(async () => {
  await server?.cleanup();
  await sts?.stop();
});

describe('AWS login', () => {
  it('floe login aws: the role is the identity, the session name is ignored', async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), 'floe-aws-home-'));
    const r = await exec(process.execPath, [FLOE_BIN, 'login', 'aws', '--json'], {
      env: {
        ...process.env,
        FLOE_SERVER: server.url,
        XDG_CONFIG_HOME: home,
        AWS_ACCESS_KEY_ID: CI.accessKeyId,
        AWS_SECRET_ACCESS_KEY: CI.secretAccessKey,
        AWS_ENDPOINT_URL_STS: sts.endpoint,
        AWS_REGION: 'us-east-1',
      },
    });
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({
      org: 'acme',
      subject: 'aws:arn:aws:iam::111122223333:role/ci-deploy',
      scopes: ['read', 'write'],
    });
  });

  it('a role the org does not trust is refused', async () => {
    useCredentials(OTHER);
    const r = await send(await signGetCallerIdentity(audience, 'x-floe-audience'));
    expect(r.status).toBe(403);
    expect(r.body.message).toMatch(/role\/admin matches no trusted role/);
  });

  describe('refused before anything is sent to STS', () => {
    let fresh: () => Promise<SignedStsRequest>;
    beforeAll(() => {
      fresh = async () => {
        useCredentials(CI);
        return signGetCallerIdentity(audience, 'x-floe-audience');
      };
    });
    const refused = async (req: SignedStsRequest, message: RegExp) => {
      const before = sts.requests;
      const r = await send(req);
      expect(r.status, JSON.stringify(r.body)).toBe(401);
      expect(r.body.message).toMatch(message);
      expect(sts.requests).toBe(before);
    };

    it('another host, or a lookalike of STS', async () => {
      const req = await fresh();
      await refused({ ...req, url: 'https://evil.example/' }, /not an AWS STS endpoint/);
      await refused({ ...req, url: 'https://sts.amazonaws.com.evil.example/' }, /not an AWS STS endpoint/);
      await refused({ ...req, url: 'http://sts.amazonaws.com/' }, /not an AWS STS endpoint/);
      await refused({ ...req, url: `${sts.endpoint}/?Action=AssumeRole` }, /bare endpoint/);
    });
    it('another action, method or extra header', async () => {
      const req = await fresh();
      await refused({ ...req, body: 'Action=AssumeRole&Version=2011-06-15&RoleArn=x' }, /only sts:GetCallerIdentity/);
      await refused({ ...req, method: 'GET' }, /POST/);
      await refused({ ...req, headers: { ...req.headers, 'x-forwarded-host': 'evil' } }, /not allowed/);
    });
    it('an audience header that is not signed, or is not ours', async () => {
      useCredentials(CI);
      const unsigned = await signGetCallerIdentity(audience, 'x-something-else');
      const headers: Record<string, string> = { ...unsigned.headers, 'x-floe-audience': audience };
      delete headers['x-something-else'];
      await refused({ ...unsigned, headers }, /x-floe-audience header must be signed/);
      await refused(
        await signGetCallerIdentity('https://other-service.example', 'x-floe-audience'),
        /x-floe-audience header must be/,
      );
    });
    it('a stale signature date', async () => {
      useCredentials(CI);
      await refused(
        await signGetCallerIdentity(audience, 'x-floe-audience', { signingDate: new Date(Date.now() - 20 * 60_000) }),
        /5 minutes/,
      );
    });
  });

  it('a replayed signed request', async () => {
    // SigV4 has one-second resolution: an identical request signed in the same second (the CLI
    // login above) has the same signature, and is rightly a replay. Start on a fresh second.
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 20));
    useCredentials(CI);
    const req = await signGetCallerIdentity(audience, 'x-floe-audience');
    const first = await send(req);
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    const again = await send(req);
    expect(again.status).toBe(401);
    expect(again.body.message).toMatch(/already used/);
  });

  it('a forged signature is refused by STS', async () => {
    useCredentials(CI);
    const req = await signGetCallerIdentity(audience, 'x-floe-audience');
    const forged = {
      ...req,
      headers: {
        ...req.headers,
        authorization: req.headers.authorization!.replace(/Signature=[0-9a-f]{4}/, 'Signature=0000'),
      },
    };
    const r = await send(forged);
    expect(r.status).toBe(401);
    expect(r.body.message).toMatch(/STS rejected/);
  });

  it('refuses AWS trusts without role patterns', async () => {
    const r = await api<{ message: string }>(server, server.adminToken, 'POST', '/api/v1/orgs/acme/trusts', {
      provider: 'aws',
      accountId: '111122223333',
      scopes: ['read'],
    });
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(/arnPatterns/);
  });
});
