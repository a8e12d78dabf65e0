/** A small HTTP client for Floe's API, used by CLI commands. Never prints the token. */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export class CliError extends Error {}

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
  if (!m) throw new CliError('expected <org>/<flake>[/<requirement>][#<attribute>], e.g. acme/tools/0.1#packages.x86_64-linux.default');
  return { org: m[1]!, flake: m[2]!, ...(m[3] ? { requirement: m[3] } : {}), ...(m[4] ? { attribute: m[4] } : {}) };
}

/** The token from FLOE_TOKEN, else the Floe entry that `floe login` wrote to the netrc. */
function tokenFor(server: string): string | undefined {
  const fromEnv = process.env.FLOE_TOKEN?.trim();
  if (fromEnv) return fromEnv;
  const netrc = path.join(nixConfigDir(), 'netrc');
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
  const server = (opts.server ?? process.env.FLOE_SERVER ?? '').replace(/\/+$/, '');
  if (!server) throw new CliError('no server given: pass --server URL or set FLOE_SERVER (e.g. http://127.0.0.1:8080)');
  if (!/^https?:\/\//.test(server)) throw new CliError(`--server must be an http(s) URL, got ${JSON.stringify(server)}`);
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
    throw new CliError(`cannot reach ${opts.server}: ${(err as Error).cause ? String((err as { cause: Error }).cause.message) : (err as Error).message}. Is \`floe serve\` running there?`);
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
    const hint = res.status === 401 ? ' (set FLOE_TOKEN to a valid token, e.g. the admin token from <data-dir>/admin-token)' : '';
    throw new CliError(`${method} ${path} failed with ${res.status}: ${message}${hint}`);
  }
  return json as T;
}
