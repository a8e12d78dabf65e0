/**
 * The server as an OIDC relying party for people signing in to the web interface: authorization
 * code + PKCE, the same flow `floe login oidc` runs on a loopback port, here with
 * `<public url>/login/callback` as the redirect URI. The ID token it gets back is exchanged like
 * any other identity (ExchangeService), so trusts decide the org, scopes and lifetime.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Unauthenticated } from '../errors.js';

interface Discovery {
  issuer?: string;
  authorization_endpoint?: string;
  token_endpoint?: string;
}

export interface PendingLogin {
  state: string;
  verifier: string;
  nonce: string;
  org: string;
  issuer: string;
  clientId: string;
  returnTo: string;
}

async function discover(issuer: string): Promise<Discovery> {
  const res = await fetch(`${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`, { redirect: 'manual', signal: AbortSignal.timeout(10_000) }).catch((err: Error) => {
    throw new Unauthenticated(`cannot reach the identity provider: ${err.message}`);
  });
  if (!res.ok) throw new Unauthenticated(`the identity provider has no OIDC discovery document (HTTP ${res.status})`);
  const d = (await res.json()) as Discovery;
  if (!d.authorization_endpoint || !d.token_endpoint) throw new Unauthenticated('the identity provider does not offer the authorization code flow');
  return d;
}

export async function startLogin(login: { org: string; issuer: string; clientId: string }, redirectUri: string, returnTo: string): Promise<{ pending: PendingLogin; authorizeUrl: string }> {
  const d = await discover(login.issuer);
  const pending: PendingLogin = {
    state: randomBytes(16).toString('base64url'),
    verifier: randomBytes(48).toString('base64url'),
    nonce: randomBytes(16).toString('base64url'),
    org: login.org,
    issuer: login.issuer,
    clientId: login.clientId,
    returnTo,
  };
  const url = new URL(d.authorization_endpoint!);
  const params = {
    response_type: 'code',
    client_id: login.clientId,
    redirect_uri: redirectUri,
    scope: 'openid profile email',
    state: pending.state,
    nonce: pending.nonce,
    code_challenge: createHash('sha256').update(pending.verifier).digest('base64url'),
    code_challenge_method: 'S256',
  };
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return { pending, authorizeUrl: url.toString() };
}

/** Trades the code for the ID token; checks the nonce it carries (its signature is checked by the exchange). */
export async function finishLogin(pending: PendingLogin, code: string, redirectUri: string): Promise<string> {
  const d = await discover(pending.issuer);
  const res = await fetch(d.token_endpoint!, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, client_id: pending.clientId, code_verifier: pending.verifier }),
    signal: AbortSignal.timeout(10_000),
  });
  const body = (await res.json().catch(() => ({}))) as { id_token?: string; error?: string };
  if (res.status !== 200 || typeof body.id_token !== 'string') throw new Unauthenticated(`the identity provider did not issue an ID token (${body.error ?? `HTTP ${res.status}`})`);
  const payload = body.id_token.split('.')[1] ?? '';
  let claims: { nonce?: unknown };
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { nonce?: unknown };
  } catch {
    throw new Unauthenticated('the identity provider sent a malformed ID token');
  }
  if (claims.nonce !== pending.nonce) throw new Unauthenticated('the ID token is not for this sign-in (nonce mismatch)');
  return body.id_token;
}

export function encodePending(p: PendingLogin): string {
  return Buffer.from(JSON.stringify(p)).toString('base64url');
}

export function decodePending(text: string | undefined): PendingLogin | undefined {
  if (!text || text.length > 4000) return undefined;
  try {
    const v = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as PendingLogin;
    return typeof v.state === 'string' && typeof v.verifier === 'string' && typeof v.issuer === 'string' && typeof v.clientId === 'string' && typeof v.org === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}
