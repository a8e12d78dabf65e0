/**
 * `floe login`: trade the machine's native identity for a short-lived Floe token, then write the
 * netrc entry (0600, only Floe's own entry is replaced) and the nix.conf lines that use it.
 */
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CliError, apiRequest, nixConfigDir, type ClientOptions } from './client.js';
import { NetrcError, nixConfLines, upsertNetrcEntry, upsertNixConfBlock } from './netrc.js';

export interface LoginOutputOptions {
  netrc?: string;
  nixConf?: string | false;
  print?: boolean;
  json?: boolean;
}

interface Exchanged {
  token: string;
  id?: string;
  org?: string;
  scopes?: string[];
  subject?: string;
  expiresAt?: string | null;
}

async function writePrivate(file: string, text: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.floe-${process.pid}`;
  await writeFile(tmp, text, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

async function readOrEmpty(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

export async function exchangeIdentity(client: ClientOptions, idToken: string, opts: { org?: string; ttl?: string }): Promise<Exchanged> {
  return apiRequest<Exchanged>({ ...client, token: undefined }, 'POST', '/api/v1/auth/exchange', {
    token: idToken,
    ...(opts.org ? { org: opts.org } : {}),
    ...(opts.ttl ? { ttl: opts.ttl } : {}),
  });
}

/** The audience CI tokens must be minted for (the server tells). */
export async function serverAudience(client: ClientOptions): Promise<string> {
  const info = await apiRequest<{ audience: string }>({ ...client, token: undefined }, 'GET', '/api/v1/auth/info');
  return info.audience;
}

/** GitHub Actions: ask the runner for an OIDC token with our audience (needs `permissions: id-token: write`). */
export async function githubActionsIdToken(audience: string): Promise<string> {
  const url = process.env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const bearer = process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  if (!url || !bearer) {
    throw new CliError('not in a GitHub Actions job that may request OIDC tokens: add `permissions: id-token: write` to the workflow or job');
  }
  let res: Response;
  try {
    res = await fetch(`${url}${url.includes('?') ? '&' : '?'}audience=${encodeURIComponent(audience)}`, { headers: { Authorization: `Bearer ${bearer}`, Accept: 'application/json' } });
  } catch (err) {
    throw new CliError(`cannot reach the GitHub Actions token service: ${(err as Error).message}`);
  }
  if (!res.ok) throw new CliError(`the GitHub Actions token service answered ${res.status}; check the job's id-token permission`);
  const body = (await res.json()) as { value?: string };
  if (!body.value) throw new CliError('the GitHub Actions token service returned no token');
  return body.value;
}

/** Writes (or prints) the netrc entry and nix.conf lines for `token`. */
export async function saveLogin(client: ClientOptions, result: Exchanged, opts: LoginOutputOptions): Promise<void> {
  const host = new URL(client.server).hostname;
  const netrcFile = path.resolve(opts.netrc ?? path.join(nixConfigDir(), 'netrc'));
  // The keys of the view of the token just obtained: exactly the sources it will substitute from.
  const info = await apiRequest<{ substituter: string; publicKey: string }>({ ...client, token: result.token }, 'GET', '/api/v1/cache/info');
  const lines = nixConfLines({ substituter: info.substituter, publicKey: info.publicKey, netrcFile });
  if (opts.print) {
    process.stdout.write(`# netrc (${netrcFile}, mode 0600):\nmachine ${host} login floe password ${result.token}\n# nix.conf:\n${lines.join('\n')}\n`);
    return;
  }
  try {
    await writePrivate(netrcFile, upsertNetrcEntry(await readOrEmpty(netrcFile), host, result.token));
  } catch (err) {
    if (err instanceof NetrcError) throw new CliError(`${netrcFile}: ${err.message}`);
    throw err;
  }
  let nixConfFile: string | undefined;
  if (opts.nixConf !== false) {
    nixConfFile = path.resolve(opts.nixConf ?? path.join(nixConfigDir(), 'nix.conf'));
    await mkdir(path.dirname(nixConfFile), { recursive: true });
    await writeFile(nixConfFile, upsertNixConfBlock(await readOrEmpty(nixConfFile), host, lines));
  }
  const summary = {
    org: result.org ?? null,
    subject: result.subject ?? null,
    scopes: result.scopes ?? null,
    expiresAt: result.expiresAt ?? null,
    netrc: netrcFile,
    nixConf: nixConfFile ?? null,
    substituter: info.substituter,
  };
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } else {
    process.stderr.write(
      `floe: logged in${result.org ? ` to ${result.org}` : ''}${result.subject ? ` as ${result.subject}` : ''}` +
        `${result.scopes ? ` (${result.scopes.join(', ')})` : ''}${result.expiresAt ? `, until ${result.expiresAt}` : ''}\n` +
        `floe: token written to ${netrcFile}${nixConfFile ? `; nix.conf lines in ${nixConfFile}` : ''}\n`,
    );
  }
}
