/**
 * Interactive logins for people: OAuth 2.0 authorization code with PKCE and a loopback redirect
 * (RFC 8252), or the device authorization grant (RFC 8628) for machines without a browser. The
 * resulting ID token is exchanged for a Floe token like any other identity.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { CliError } from './client.js';

interface Discovery {
  authorization_endpoint?: string;
  token_endpoint?: string;
  device_authorization_endpoint?: string;
}

async function discover(issuer: string): Promise<Discovery> {
  let res: Response;
  try {
    res = await fetch(`${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`, {
      redirect: 'manual',
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    throw new CliError(`cannot reach the identity provider ${issuer}: ${(err as Error).message}`);
  }
  if (!res.ok)
    throw new CliError(`the identity provider ${issuer} has no OIDC discovery document (HTTP ${res.status})`);
  return (await res.json()) as Discovery;
}

async function tokenRequest(
  endpoint: string,
  form: Record<string, string>,
): Promise<{ status: number; body: Record<string, string> }> {
  const res = await fetch(endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: new URLSearchParams(form),
  });
  return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, string> };
}

function openBrowser(url: string): void {
  const cmd = process.platform === 'darwin' ? 'open' : 'xdg-open';
  try {
    const child = spawn(cmd, [url], { stdio: 'ignore', detached: true });
    child.on('error', () => undefined);
    child.unref();
  } catch {
    // No browser here: the URL is printed anyway.
  }
}

/** Authorization code + PKCE on a loopback redirect; returns the ID token. */
export async function browserLogin(
  issuer: string,
  clientId: string,
  opts: { openBrowser: boolean; scope?: string; timeoutMs?: number },
): Promise<string> {
  const d = await discover(issuer);
  if (!d.authorization_endpoint || !d.token_endpoint)
    throw new CliError(`${issuer} does not offer the authorization code flow; try --device`);
  const verifier = randomBytes(48).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomBytes(16).toString('base64url');
  const nonce = randomBytes(16).toString('base64url');

  let finish!: (code: string) => void;
  let fail!: (err: Error) => void;
  const gotCode = new Promise<string>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== '/callback') {
      res.writeHead(404).end();
      return;
    }
    const page = (status: number, text: string) => {
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(text);
    };
    // Check state before saying anything reassuring: a forged redirect must not complete a login.
    if (url.searchParams.get('state') !== state)
      return page(400, 'Login failed: unexpected state. Start `floe login` again.');
    const error = url.searchParams.get('error');
    if (error) {
      page(400, `Login failed: ${error}.`);
      return fail(
        new CliError(
          `the identity provider refused the login: ${error} ${url.searchParams.get('error_description') ?? ''}`.trim(),
        ),
      );
    }
    const code = url.searchParams.get('code');
    if (!code) return page(400, 'Login failed: no code.');
    page(200, 'Logged in to Floe. You can close this window.');
    finish(code);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const redirectUri = `http://127.0.0.1:${(server.address() as { port: number }).port}/callback`;
  const authorize = new URL(d.authorization_endpoint);
  for (const [k, v] of Object.entries({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    scope: opts.scope ?? 'openid profile email',
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  })) {
    authorize.searchParams.set(k, v);
  }
  process.stderr.write(`floe: to log in, open this URL in a browser:\n${authorize.toString()}\n`);
  if (opts.openBrowser) openBrowser(authorize.toString());
  const timer = setTimeout(
    () => fail(new CliError('timed out waiting for the browser login')),
    opts.timeoutMs ?? 300_000,
  );
  try {
    const code = await gotCode;
    const tok = await tokenRequest(d.token_endpoint, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectUri,
      client_id: clientId,
      code_verifier: verifier,
    });
    if (tok.status !== 200 || !tok.body.id_token)
      throw new CliError(`the identity provider did not issue an ID token (${tok.body.error ?? `HTTP ${tok.status}`})`);
    return tok.body.id_token;
  } finally {
    clearTimeout(timer);
    server.close();
  }
}

/** Device authorization grant; returns the ID token. */
export async function deviceLogin(issuer: string, clientId: string, opts: { scope?: string } = {}): Promise<string> {
  const d = await discover(issuer);
  if (!d.device_authorization_endpoint || !d.token_endpoint)
    throw new CliError(`${issuer} does not offer the device flow; use the browser login`);
  const start = await tokenRequest(d.device_authorization_endpoint, {
    client_id: clientId,
    scope: opts.scope ?? 'openid profile email',
  });
  const b = start.body as Record<string, string | number>;
  if (start.status !== 200 || !b.device_code)
    throw new CliError(`the identity provider refused the device login (${b.error ?? `HTTP ${start.status}`})`);
  process.stderr.write(`floe: on any device, open ${b.verification_uri} and enter the code ${b.user_code}\n`);
  if (b.verification_uri_complete) process.stderr.write(`floe: (or open ${b.verification_uri_complete})\n`);
  process.stderr.write('floe: only enter this code if you started this login yourself.\n');
  let interval = Math.max(1, Number(b.interval ?? 5)) * 1000;
  const deadline = Date.now() + Number(b.expires_in ?? 600) * 1000;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, interval));
    const poll = await tokenRequest(d.token_endpoint, {
      grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
      device_code: String(b.device_code),
      client_id: clientId,
    });
    if (poll.status === 200 && poll.body.id_token) return poll.body.id_token;
    const error = poll.body.error;
    if (error === 'authorization_pending') continue;
    if (error === 'slow_down') {
      interval += 5000;
      continue;
    }
    throw new CliError(`device login ended: ${error ?? `HTTP ${poll.status}`}`);
  }
  throw new CliError('device login expired; start again');
}
