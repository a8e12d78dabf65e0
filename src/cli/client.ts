/** A small HTTP client for Floe's API, used by CLI commands. Never prints the token. */
import type { GcReport } from '../wire/gc.js';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CreateTokenRequest, MintedTokenAnswer } from '../wire/tokens.js';
import type { OrgSources } from '../wire/slices.js';

import { CliError } from './errors.js';

export { CliError, CliExit } from './errors.js';

export interface ClientOptions {
  server: string;
  token: string | undefined;
}

/** Where Nix reads per-user configuration (nix.conf, and where `floe login` keeps the netrc). */
export function nixConfigDir(): string {
  return path.join(process.env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config'), 'nix');
}

/** A Floe flake reference: `<org>/<flake>[/<requirement>][#<attribute>]`. */
export function parseFlakeRef(ref: string): { org: string; flake: string; requirement?: string; attribute?: string } {
  const m = /^([^/#]+)\/([^/#]+)(?:\/([^#]+))?(?:#(.+))?$/.exec(ref);
  if (!m)
    throw new CliError(
      'expected <org>/<flake>[/<requirement>][#<attribute>], e.g. acme/tools/0.1#packages.x86_64-linux.default',
    );
  return { org: m[1]!, flake: m[2]!, ...(m[3] ? { requirement: m[3] } : {}), ...(m[4] ? { attribute: m[4] } : {}) };
}

/** What `floe login` remembers for later commands ($XDG_CONFIG_HOME/floe/config.json). */
export interface CliConfig {
  server?: string;
  org?: string;
  /** The files this user's login wrote (logout removes exactly these). */
  netrc?: string;
  nixConf?: string;
  createdNetrc?: boolean;
  /** What `floe login --system` wrote for the nix-daemon. */
  system?: { netrc: string; nixConf: string; include: string; createdNetrc: boolean };
  /** A login that can be repeated without a person (cli/refresh.ts), with the output options it was given. */
  login?: RenewableLogin;
  /** `floe login --fh`: fh's auth file it wrote, and where the token that was there before went. */
  fh?: { file: string; backup?: string };
}

export interface RenewableLogin {
  method: 'github-action' | 'aws';
  org?: string;
  ttl?: string;
  output: { netrc?: string; nixConf?: string | false; system?: boolean; fh?: boolean };
}

export function cliConfigFile(): string {
  return path.join(process.env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config'), 'floe', 'config.json');
}

export function readCliConfig(): CliConfig {
  let text: string;
  try {
    text = readFileSync(cliConfigFile(), 'utf8');
  } catch {
    return {};
  }
  try {
    const parsed = JSON.parse(text) as CliConfig;
    return typeof parsed === 'object' && parsed !== null ? parsed : {};
  } catch {
    throw new CliError(`${cliConfigFile()} is not valid JSON: fix or remove it`);
  }
}

/** The token from FLOE_TOKEN, else the Floe entry that `floe login` wrote to the netrc. */
function tokenFor(server: string): string | undefined {
  const fromEnv = process.env.FLOE_TOKEN?.trim();
  if (fromEnv) return fromEnv;
  const remembered = readCliConfig();
  const mine = remembered.server === server ? remembered : {};
  // The netrc the last login wrote (maybe the file an existing netrc-file setting names), else the default.
  const netrc = mine.netrc ?? mine.system?.netrc ?? path.join(nixConfigDir(), 'netrc');
  let text: string;
  try {
    text = readFileSync(netrc, 'utf8');
  } catch {
    return undefined;
  }
  const host = new URL(server).hostname;
  const tokens = text.split(/\s+/).filter(Boolean);
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] !== 'machine' || tokens[i + 1] !== host) continue;
    for (let j = i + 2; j < tokens.length && tokens[j] !== 'machine' && tokens[j] !== 'default'; j++) {
      if (tokens[j] === 'password' && tokens[j + 1]?.startsWith('floe_')) return tokens[j + 1];
    }
  }
  return undefined;
}

export function clientOptions(opts: { server?: string }): ClientOptions {
  const server = (opts.server ?? process.env.FLOE_SERVER ?? readCliConfig().server ?? '').replace(/\/+$/, '');
  if (!server)
    throw new CliError(
      'no server given: pass --server URL or set FLOE_SERVER (a `floe login --server URL ...` remembers it)',
    );
  if (!/^https?:\/\//.test(server))
    throw new CliError(`--server must be an http(s) URL, got ${JSON.stringify(server)}`);
  return { server, token: tokenFor(server) };
}

export async function apiRequest<T>(opts: ClientOptions, method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`${opts.server}${path}`, {
      method,
      headers: {
        ...(opts.token ? { Authorization: `Bearer ${opts.token}` } : {}),
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch (err) {
    throw new CliError(
      `cannot reach ${opts.server}: ${(err as Error).cause ? String((err as { cause: Error }).cause.message) : (err as Error).message}. Is \`floe serve\` running there?`,
    );
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const message = (json as { message?: string } | undefined)?.message ?? text.trim() ?? res.statusText;
    const hint =
      res.status === 401 ? ' (set FLOE_TOKEN to a valid token, e.g. the admin token from <data-dir>/admin-token)' : '';
    throw new CliError(`${method} ${path} failed with ${res.status}: ${message}${hint}`, res.status);
  }
  return json as T;
}

const enc = encodeURIComponent;

// Response bodies of the API routes the CLI calls (see src/http/routes/api.ts).
export interface WhoAmI {
  kind: string;
  org?: string;
  subject?: string;
  scopes?: string[];
  slices?: string[];
  expiresAt?: string | null;
}
export interface CacheInfo {
  substituter: string;
  publicKey: string;
  nixConf: string;
}
export interface AuthInfo {
  audience: string;
  awsAudienceHeader: string;
  logins: Array<{ issuer: string; clientId: string; org: string }>;
}
export interface Exchanged {
  token: string;
  id?: string;
  org?: string;
  scopes?: string[];
  subject?: string;
  expiresAt?: string | null;
}
export interface TokenRow {
  id: string;
  subject: string;
  scopes: string[];
  expiresAt: string;
  revokedAt: string | null;
}
export interface SliceUse {
  name: string;
  paths: number;
  logicalBytes: number;
  storedBytes: number;
}
export interface OrgUsage extends SliceUse {
  org: string;
  quotaBytes: number | null;
  retentionSeconds: number | null;
  slices: SliceUse[];
}
export interface Upstream {
  name: string;
  url: string;
  publicKeys: string[];
  pullThrough: boolean;
  priority: number;
}
export interface Pin {
  name: string;
  storePath: string;
  expiresAt: string | null;
}
export interface AddedTrust {
  id: string;
  issuer: string;
  audience: string;
  status: string;
  message?: string;
}

/** Typed calls to Floe's API: one method per route the CLI uses, so no command retypes a body. */
export class FloeApi {
  constructor(readonly client: ClientOptions) {}

  private call<T>(method: string, p: string, body?: unknown, anonymous = false): Promise<T> {
    return apiRequest<T>(anonymous ? { ...this.client, token: undefined } : this.client, method, p, body);
  }

  whoami = () => this.call<WhoAmI>('GET', '/api/v1/auth/whoami');
  authInfo = () => this.call<AuthInfo>('GET', '/api/v1/auth/info', undefined, true);
  logout = () => this.call<unknown>('POST', '/api/v1/auth/logout');
  exchange = (body: { token: string; org?: string; ttl?: string }) =>
    this.call<Exchanged>('POST', '/api/v1/auth/exchange', body, true);
  awsLogin = (body: Record<string, unknown>) =>
    this.call<Required<Pick<Exchanged, 'token' | 'org' | 'scopes' | 'subject'>> & { expiresAt: string }>(
      'POST',
      '/api/v1/auth/aws',
      body,
      true,
    );
  /** The caller's view keys, or an org's (anonymously: public keys are public). */
  cacheInfo = (org?: string, anonymous = false) =>
    this.call<CacheInfo>('GET', `/api/v1/cache/info${org ? `?org=${enc(org)}` : ''}`, undefined, anonymous);

  orgs = () => this.call<{ orgs: Array<{ name: string; flakes: number }> }>('GET', '/api/v1/flake-orgs');
  createOrg = (name: string) => this.call<{ name: string; slices: string[] }>('POST', '/api/v1/orgs', { name });
  orgSettings = (org: string, body: { retention?: string | null; quota?: string | null }) =>
    this.call<{ retentionSeconds: number | null; quotaBytes: number | null }>(
      'PATCH',
      `/api/v1/orgs/${enc(org)}/settings`,
      body,
    );
  usage = (org: string) => this.call<OrgUsage>('GET', `/api/v1/orgs/${enc(org)}/usage`);

  createSlice = (org: string, body: { name: string; public: boolean; inView: boolean }) =>
    this.call<{ url: string; public: boolean }>('POST', `/api/v1/orgs/${enc(org)}/slices`, body);
  setSlice = (org: string, slice: string, body: { public?: boolean; inView?: boolean; priority?: number }) =>
    this.call<{ public: boolean; inView: boolean; priority: number }>(
      'PATCH',
      `/api/v1/orgs/${enc(org)}/slices/${enc(slice)}`,
      body,
    );
  deleteSlice = (org: string, slice: string, force = false) =>
    this.call<unknown>('DELETE', `/api/v1/orgs/${enc(org)}/slices/${enc(slice)}${force ? '?force=1' : ''}`);
  sources = (org: string) => this.call<OrgSources>('GET', `/api/v1/orgs/${enc(org)}/sources`);

  createToken = (body: CreateTokenRequest) => this.call<MintedTokenAnswer>('POST', '/api/v1/tokens', body);
  revokeToken = (id: string) => this.call<unknown>('DELETE', `/api/v1/tokens/${enc(id)}`);
  revokeSubject = (org: string, subject: string) =>
    this.call<{ revoked: number }>('POST', `/api/v1/orgs/${enc(org)}/tokens/revoke`, { subject });
  tokens = (org: string, q: URLSearchParams) =>
    this.call<{ tokens: TokenRow[] }>('GET', `/api/v1/orgs/${enc(org)}/tokens?${q}`);

  rotateOrgKey = (org: string) =>
    this.call<{ active: { name: string; publicKey: string }; resigned: number; keys: string[] }>(
      'POST',
      `/api/v1/orgs/${enc(org)}/keys/rotate`,
    );
  rotateServerKey = () => this.call<{ kid: string }>('POST', '/api/v1/keys/rotate');

  addTrust = (org: string, spec: unknown) => this.call<AddedTrust>('POST', `/api/v1/orgs/${enc(org)}/trusts`, spec);
  trusts = (org: string) => this.call<{ trusts: unknown[] }>('GET', `/api/v1/orgs/${enc(org)}/trusts`);
  removeTrust = (org: string, id: string) => this.call<unknown>('DELETE', `/api/v1/orgs/${enc(org)}/trusts/${enc(id)}`);

  addUpstream = (body: { name: string; url: string; publicKeys: string[]; pullThrough: boolean; priority?: number }) =>
    this.call<{ name: string; url: string }>('POST', '/api/v1/upstreams', body);
  upstreams = () => this.call<{ upstreams: Upstream[] }>('GET', '/api/v1/upstreams');
  removeUpstream = (name: string) => this.call<unknown>('DELETE', `/api/v1/upstreams/${enc(name)}`);

  addPin = (org: string, body: { name: string; storePath: string; ttl?: string }) =>
    this.call<Pin>('POST', `/api/v1/orgs/${enc(org)}/pins`, body);
  pins = (org: string) => this.call<{ pins: Pin[] }>('GET', `/api/v1/orgs/${enc(org)}/pins`);
  removePin = (org: string, name: string) => this.call<unknown>('DELETE', `/api/v1/orgs/${enc(org)}/pins/${enc(name)}`);

  gc = (body: { dryRun: boolean; grace?: string }) => this.call<GcReport>('POST', '/api/v1/gc', body);

  flakes = (org: string) =>
    this.call<{ flakes: Array<{ org: string; flake: string; visibility: string; description: string | null }> }>(
      'GET',
      `/api/v1/orgs/${enc(org)}/flakes`,
    );
  releases = (org: string, flake: string) =>
    this.call<{ releases: Array<{ version: string; yanked: boolean; publishedAt: string }> }>(
      'GET',
      `/api/v1/flakes/${enc(org)}/${enc(flake)}/releases`,
    );
  resolve = (org: string, flake: string, requirement: string, attribute?: string) =>
    this.call<{ version: string; storePath?: string; url: string }>(
      'GET',
      `/api/v1/flakes/${enc(org)}/${enc(flake)}/resolve/${enc(requirement)}${attribute ? `/output/${enc(attribute)}` : ''}`,
    );
  search = (query: string) =>
    this.call<{ results: Array<{ org: string; flake: string; description: string | null; labels: string[] }> }>(
      'GET',
      `/api/v1/search?q=${enc(query)}`,
    );
}
