/**
 * A local OIDC issuer on loopback with real keys: discovery document, JWKS, key rotation, and a
 * GitHub-Actions-style token request endpoint. It mints tokens with GitHub's, GitLab's and Entra's
 * claim sets, and forges the bad ones attackers send (alg none, HS256 with the public key...).
 */
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type CryptoKey, type JWK } from 'jose';

type KeyLike = CryptoKey;

interface IssuerKey {
  kid: string;
  privateKey: KeyLike;
  publicKey: KeyLike;
  jwk: JWK;
}

export interface MintOptions {
  audience?: string | string[];
  /** Seconds relative to now. */
  iat?: number;
  nbf?: number;
  exp?: number;
  jti?: string | null;
  kid?: string;
  /** Sign with a key that is not published. */
  unpublishedKey?: boolean;
  issuer?: string;
}

export interface TestIssuer {
  issuer: string;
  /** Claims of the person who "signs in" in the browser and device flows. */
  personClaims: Record<string, unknown>;
  /** Approves a pending device-flow login, as the person would on the verification page. */
  approveDevice(userCode: string): void;
  /** Where a GitHub Actions runner would ask for a token (ACTIONS_ID_TOKEN_REQUEST_URL). */
  actionsRequestUrl: string;
  actionsRequestToken: string;
  /** Claims the actions endpoint puts in its tokens. */
  actionsClaims: Record<string, unknown>;
  mint(claims: Record<string, unknown>, opts?: MintOptions): Promise<string>;
  /** alg "none", unsigned. */
  forgeNone(claims: Record<string, unknown>, opts?: MintOptions): string;
  /** HS256 with the issuer's public key (PEM) as the HMAC secret: the classic confusion attack. */
  forgeHs256WithPublicKey(claims: Record<string, unknown>, opts?: MintOptions): Promise<string>;
  /** Publishes a new signing key (old ones stay published). */
  rotate(): Promise<string>;
  stop(): Promise<void>;
}

async function newKey(): Promise<IssuerKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = randomUUID();
  return { kid, privateKey, publicKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString());
}

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

export async function startIssuer(opts: { pathPrefix?: string; defaultAudience?: string } = {}): Promise<TestIssuer> {
  const keys: IssuerKey[] = [await newKey()];
  const unpublished = await newKey();
  const actionsRequestToken = `actions-${randomUUID()}`;
  const codes = new Map<string, { clientId: string; redirectUri: string; challenge: string; nonce?: string }>();
  const devices = new Map<string, { clientId: string; userCode: string; approved: boolean; polls: number }>();
  let issuer = '';
  let self!: TestIssuer;
  const prefix = opts.pathPrefix ?? '';
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === `${prefix}/.well-known/openid-configuration`) {
      return json(200, {
        issuer,
        jwks_uri: `${issuer}/.well-known/jwks`,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        device_authorization_endpoint: `${issuer}/device_authorization`,
        response_types_supported: ['code', 'id_token'],
        code_challenge_methods_supported: ['S256'],
        id_token_signing_alg_values_supported: ['RS256'],
      });
    }
    if (url.pathname === `${prefix}/authorize`) {
      // The person is already signed in and consents: straight back to the app with a code.
      const p = url.searchParams;
      const redirect = p.get('redirect_uri') ?? '';
      if (
        p.get('response_type') !== 'code' ||
        p.get('code_challenge_method') !== 'S256' ||
        !p.get('code_challenge') ||
        !/^http:\/\/127\.0\.0\.1:\d+\//.test(redirect)
      ) {
        return json(400, { error: 'invalid_request' });
      }
      const code = randomUUID();
      codes.set(code, {
        clientId: p.get('client_id') ?? '',
        redirectUri: redirect,
        challenge: p.get('code_challenge')!,
        ...(p.get('nonce') ? { nonce: p.get('nonce')! } : {}),
      });
      res.writeHead(302, { Location: `${redirect}?code=${code}&state=${encodeURIComponent(p.get('state') ?? '')}` });
      return res.end();
    }
    if (url.pathname === `${prefix}/device_authorization` && req.method === 'POST') {
      return readForm(req).then((form) => {
        const deviceCode = randomUUID();
        const userCode = randomUUID().slice(0, 8).toUpperCase();
        devices.set(deviceCode, { clientId: form.get('client_id') ?? '', userCode, approved: false, polls: 0 });
        json(200, {
          device_code: deviceCode,
          user_code: userCode,
          verification_uri: `${issuer}/device`,
          verification_uri_complete: `${issuer}/device?user_code=${userCode}`,
          expires_in: 120,
          interval: 1,
        });
      });
    }
    if (url.pathname === `${prefix}/token` && req.method === 'POST') {
      return readForm(req).then(async (form) => {
        const grant = form.get('grant_type');
        if (grant === 'authorization_code') {
          const entry = codes.get(form.get('code') ?? '');
          codes.delete(form.get('code') ?? '');
          const verifier = form.get('code_verifier') ?? '';
          const challenge = createHash('sha256').update(verifier).digest('base64url');
          if (
            !entry ||
            entry.redirectUri !== form.get('redirect_uri') ||
            entry.clientId !== form.get('client_id') ||
            entry.challenge !== challenge
          )
            return json(400, { error: 'invalid_grant' });
          return json(200, {
            token_type: 'Bearer',
            id_token: await self.mint(
              { ...self.personClaims, ...(entry.nonce ? { nonce: entry.nonce } : {}) },
              { audience: entry.clientId },
            ),
            access_token: randomUUID(),
          });
        }
        if (grant === 'urn:ietf:params:oauth:grant-type:device_code') {
          const entry = devices.get(form.get('device_code') ?? '');
          if (!entry) return json(400, { error: 'expired_token' });
          entry.polls++;
          if (!entry.approved) return json(400, { error: 'authorization_pending' });
          devices.delete(form.get('device_code')!);
          return json(200, {
            token_type: 'Bearer',
            id_token: await self.mint({ ...self.personClaims }, { audience: entry.clientId }),
          });
        }
        return json(400, { error: 'unsupported_grant_type' });
      });
    }
    if (url.pathname === `${prefix}/.well-known/jwks`) return json(200, { keys: keys.map((k) => k.jwk) });
    if (url.pathname === '/actions/token') {
      if (req.headers.authorization !== `Bearer ${actionsRequestToken}`)
        return json(401, { message: 'bad runner token' });
      const audience = url.searchParams.get('audience') ?? opts.defaultAudience ?? 'https://github.com/acme';
      self.mint({ ...self.actionsClaims }, { audience }).then(
        (value) => json(200, { count: 1, value }),
        () => json(500, {}),
      );
      return;
    }
    json(404, { message: 'not found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  issuer = `${base}${prefix}`;

  const claimsFor = (claims: Record<string, unknown>, o: MintOptions) => {
    const now = Math.floor(Date.now() / 1000);
    return {
      iss: o.issuer ?? issuer,
      aud: o.audience ?? opts.defaultAudience,
      iat: now + (o.iat ?? 0),
      nbf: now + (o.nbf ?? -5),
      exp: now + (o.exp ?? 300),
      ...(o.jti === null ? {} : { jti: o.jti ?? randomUUID() }),
      ...claims,
    };
  };

  self = {
    issuer,
    personClaims: { sub: 'person-1', email: 'ada@example.com', groups: ['engineers'] },
    approveDevice(userCode: string) {
      for (const d of devices.values()) if (d.userCode === userCode) d.approved = true;
    },
    actionsRequestUrl: `${base}/actions/token?api-version=2.0`,
    actionsRequestToken,
    actionsClaims: {},
    async mint(claims, o = {}) {
      const key = o.unpublishedKey ? unpublished : (keys.find((k) => k.kid === o.kid) ?? keys.at(-1)!);
      return new SignJWT(claimsFor(claims, o))
        .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' })
        .sign(key.privateKey);
    },
    forgeNone(claims, o = {}) {
      return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claimsFor(claims, o))}.`;
    },
    async forgeHs256WithPublicKey(claims, o = {}) {
      const key = keys.at(-1)!;
      const pem = await exportSPKI(key.publicKey);
      const head = `${b64url({ alg: 'HS256', typ: 'JWT', kid: key.kid })}.${b64url(claimsFor(claims, o))}`;
      return `${head}.${createHmac('sha256', pem).update(head).digest('base64url')}`;
    },
    async rotate() {
      const k = await newKey();
      keys.push(k);
      return k.kid;
    },
    async stop() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return self;
}

/** Claims shaped like a GitHub Actions token for a push to main. */
export function githubClaims(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    sub: 'repo:acme-gh/app:ref:refs/heads/main',
    repository: 'acme-gh/app',
    repository_id: '2002',
    repository_owner: 'acme-gh',
    repository_owner_id: '1001',
    repository_visibility: 'private',
    ref: 'refs/heads/main',
    ref_type: 'branch',
    sha: 'a'.repeat(40),
    event_name: 'push',
    workflow: 'ci',
    workflow_ref: 'acme-gh/app/.github/workflows/ci.yml@refs/heads/main',
    job_workflow_ref: 'acme-gh/app/.github/workflows/ci.yml@refs/heads/main',
    run_id: '77',
    run_number: '3',
    run_attempt: '1',
    runner_environment: 'github-hosted',
    actor: 'octocat',
    actor_id: '9',
    ...over,
  };
}

/** Claims shaped like a GitLab CI id_token on a protected branch. */
export function gitlabClaims(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    sub: 'project_path:acme-gl/app:ref_type:branch:ref:main',
    namespace_id: '42',
    namespace_path: 'acme-gl',
    project_id: '4242',
    project_path: 'acme-gl/app',
    user_id: '5',
    user_login: 'dev',
    pipeline_id: '900',
    pipeline_source: 'push',
    job_id: '901',
    ref: 'main',
    ref_type: 'branch',
    ref_path: 'refs/heads/main',
    ref_protected: 'true',
    runner_id: 12,
    runner_environment: 'gitlab-hosted',
    sha: 'b'.repeat(40),
    project_visibility: 'private',
    ...over,
  };
}

/** Claims shaped like an Entra ID v2 access token. */
export function entraClaims(tenant: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    sub: 'pairwise-subject',
    oid: '11111111-2222-3333-4444-555555555555',
    tid: tenant,
    ver: '2.0',
    azp: '66666666-7777-8888-9999-000000000000',
    groups: ['aaaaaaaa-0000-0000-0000-000000000001', 'aaaaaaaa-0000-0000-0000-000000000002'],
    preferred_username: 'ada@example.com',
    ...over,
  };
}
