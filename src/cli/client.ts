/** A small HTTP client for Floe's API, used by CLI commands. Never prints the token. */
export class CliError extends Error {}

export interface ClientOptions {
  server: string;
  token: string | undefined;
}

export function clientOptions(opts: { server?: string }): ClientOptions {
  const server = (opts.server ?? process.env.FLOE_SERVER ?? '').replace(/\/+$/, '');
  if (!server) throw new CliError('no server given: pass --server URL or set FLOE_SERVER (e.g. http://127.0.0.1:8080)');
  if (!/^https?:\/\//.test(server)) throw new CliError(`--server must be an http(s) URL, got ${JSON.stringify(server)}`);
  const token = process.env.FLOE_TOKEN?.trim() || undefined;
  return { server, token };
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
