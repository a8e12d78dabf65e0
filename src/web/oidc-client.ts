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

/** Requests to the identity provider, through the server's address checks (`OidcVerifier.fetchFromIdp`). */
export type IdpFetch = (
  url: string,
  req: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number; maxBytes?: number },
) => Promise<Response>;

/** What the person is told when the identity provider cannot be used; the details go to the server's log (`cause`). */
export const IDP_UNREACHABLE = 'the identity provider could not be reached';

function unreachable(cause: unknown): Unauthenticated {
  return Object.assign(new Unauthenticated(IDP_UNREACHABLE), { cause });
}

async function discover(issuer: string, fetchIdp: IdpFetch): Promise<Discovery> {
  let d: Discovery;
  try {
    const res = await fetchIdp(`${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`, {
      timeoutMs: 10_000,
      headers: { accept: 'application/json' },
      maxBytes: 64 * 1024,
    });
    if (res.status !== 200) throw new Error(`discovery answered HTTP ${res.status}`);
    d = (await res.json()) as Discovery;
  } catch (err) {
    throw unreachable(err);
  }
  if (d.issuer !== issuer)
    throw unreachable(new Error(`the discovery document names issuer ${JSON.stringify(d.issuer)}`));
  // The browser is sent to the authorization endpoint; the token endpoint is fetched (and checked) by fetchIdp.
  const web = (u: unknown) => typeof u === 'string' && /^https?:\/\//.test(u) && URL.canParse(u);
  if (!web(d.authorization_endpoint) || !web(d.token_endpoint))
    throw unreachable(new Error('the discovery document lacks the authorization code flow endpoints'));
  if (new URL(d.authorization_endpoint!).protocol !== new URL(issuer).protocol)
    throw unreachable(new Error('the authorization endpoint is not on the scheme of the issuer'));
  return d;
}

export async function startLogin(
  login: { org: string; issuer: string; clientId: string },
  redirectUri: string,
  returnTo: string,
  fetchIdp: IdpFetch,
): Promise<{ pending: PendingLogin; authorizeUrl: string }> {
  const d = await discover(login.issuer, fetchIdp);
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
export async function finishLogin(
  pending: PendingLogin,
  code: string,
  redirectUri: string,
  fetchIdp: IdpFetch,
): Promise<string> {
  const d = await discover(pending.issuer, fetchIdp);
  let body: { id_token?: string; error?: string };
  try {
    const res = await fetchIdp(d.token_endpoint!, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: redirectUri,
        client_id: pending.clientId,
        code_verifier: pending.verifier,
      }).toString(),
      timeoutMs: 10_000,
      maxBytes: 64 * 1024,
    });
    body = (await res.json().catch(() => ({}))) as typeof body;
    if (res.status !== 200 || typeof body.id_token !== 'string')
      throw new Error(
        `the token endpoint answered HTTP ${res.status}${body.error ? ` (${String(body.error).slice(0, 100)})` : ''}`,
      );
  } catch (err) {
    throw unreachable(err);
  }
  if (typeof body.id_token !== 'string') throw unreachable(new Error('no ID token'));
  const payload = body.id_token.split('.')[1] ?? '';
  let claims: { nonce?: unknown };
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { nonce?: unknown };
  } catch {
    throw new Unauthenticated('the identity provider sent a malformed ID token');
  }
  if (claims.nonce !== pending.nonce)
    throw new Unauthenticated('the ID token is not for this sign-in (nonce mismatch)');
  return body.id_token;
}

export function encodePending(p: PendingLogin): string {
  return Buffer.from(JSON.stringify(p)).toString('base64url');
}

export function decodePending(text: string | undefined): PendingLogin | undefined {
  if (!text || text.length > 4000) return undefined;
  try {
    const v = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as PendingLogin;
    return typeof v.state === 'string' &&
      typeof v.verifier === 'string' &&
      typeof v.issuer === 'string' &&
      typeof v.clientId === 'string' &&
      typeof v.org === 'string'
      ? v
      : undefined;
  } catch {
    return undefined;
  }
}
