/**
 * Logins that can be renewed without a person: a GitHub Actions job asks its runner for a fresh
 * OIDC token and exchanges it again; AWS signs a new sts:GetCallerIdentity request. `floe login`
 * remembers which (with its org, ttl and the files it wrote) in the CLI config, so a long
 * `watch-store`, `watch-exec` or the `floe login --refresh` loop can log in again before the
 * token expires and rewrite the netrc (atomically, through `saveLogin`) for Nix and for itself.
 * A GitLab id_token is issued once per job and its exchange is one-time (replay protection), and
 * a pasted token has nothing behind it: neither can be renewed.
 */
import { signGetCallerIdentity } from './aws.js';
import { FloeApi, readCliConfig, type ClientOptions, type Exchanged, type RenewableLogin } from './client.js';
import { commandContext } from './commands/context.js';
import { exchangeIdentity, githubActionsIdToken, saveLogin, serverAudience } from './login.js';

export type { RenewableLogin };
export type RenewableMethod = RenewableLogin['method'];

/** A fresh token by `method`, without writing anything. */
export async function obtainLogin(
  client: ClientOptions,
  method: RenewableMethod,
  opts: { org?: string; ttl?: string },
): Promise<Exchanged> {
  const exchangeOpts = { ...(opts.org ? { org: opts.org } : {}), ...(opts.ttl ? { ttl: opts.ttl } : {}) };
  if (method === 'github-action') {
    return exchangeIdentity(client, await githubActionsIdToken(await serverAudience(client)), exchangeOpts);
  }
  const api = new FloeApi({ ...client, token: undefined });
  const info = await api.authInfo();
  return api.awsLogin({ ...(await signGetCallerIdentity(info.audience, info.awsAudienceHeader)), ...exchangeOpts });
}

const silent = () =>
  commandContext({ stdout: { write: () => true }, stderr: { write: () => true }, stdin: (async function* () {})() });

/** Logs in again as remembered and rewrites the netrc; quiet, the caller says what happened. */
export async function renewLogin(client: ClientOptions, login: RenewableLogin): Promise<Exchanged> {
  const result = await obtainLogin(client, login.method, login);
  await saveLogin(silent(), client, result, { ...login.output }, login);
  return result;
}

/** The login remembered for `server`, if it can be renewed. */
export function rememberedRenewable(server: string): RenewableLogin | undefined {
  const config = readCliConfig();
  return config.server === server ? config.login : undefined;
}

/** PURE: when a Floe token (a `floe_` JWT) was issued and expires, read unverified: only to schedule. */
export function tokenTimes(token: string): { issuedAt: number; expiresAt: number } | undefined {
  try {
    const part = token.replace(/^floe_/, '').split('.')[1] ?? '';
    const payload = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as { iat?: unknown; exp?: unknown };
    if (typeof payload.exp !== 'number') return undefined;
    const exp = payload.exp * 1000;
    return { issuedAt: typeof payload.iat === 'number' ? payload.iat * 1000 : exp, expiresAt: exp };
  } catch {
    return undefined;
  }
}

/**
 * PURE: how long to wait before renewing a token: `before` ahead of its expiry; a token whose whole
 * life is shorter than that (a 5-minute CI token with "10 minutes before") is renewed a third of its
 * life ahead instead. Never sooner than a second (an expired token is renewed after one).
 */
export function renewalDelay(t: { issuedAt: number; expiresAt: number }, now: number, before: number): number {
  const life = t.expiresAt - t.issuedAt;
  const ahead = before < life ? before : life / 3;
  return Math.max(1000, t.expiresAt - ahead - now);
}

/** PURE: after a failed renewal, try again soon, but often enough to make it before expiry. */
export function retryDelay(expiresAt: number, now: number): number {
  return Math.max(1000, Math.min(30_000, (expiresAt - now) / 4));
}

/** A token's times, else (not a JWT we can read) the server's expiry as if issued now. */
function timesOf(r: Exchanged, now: number): { issuedAt: number; expiresAt: number } {
  const expiresAt = r.expiresAt ? Date.parse(r.expiresAt) : now + 3600_000;
  return tokenTimes(r.token) ?? { issuedAt: now, expiresAt };
}

/**
 * Keeps `client.token` fresh in this process (the watchers read it for every request) and the
 * netrc with it. Its timer does not keep the process alive.
 */
export function keepLoginFresh(
  client: ClientOptions,
  login: RenewableLogin,
  first: { times: { issuedAt: number; expiresAt: number }; before: number; log: (line: string) => void },
): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = (delay: number, expiresAt: number) => {
    if (stopped) return;
    timer = setTimeout(() => void run(expiresAt), delay);
    timer.unref();
  };
  const run = async (expiresAt: number) => {
    try {
      const result = await renewLogin(client, login);
      client.token = result.token;
      const next = timesOf(result, Date.now());
      first.log(`renewed the ${login.method} login, valid until ${new Date(next.expiresAt).toISOString()}`);
      schedule(renewalDelay(next, Date.now(), first.before), next.expiresAt);
    } catch (err) {
      first.log(`could not renew the ${login.method} login (${(err as Error).message}); trying again`);
      schedule(retryDelay(expiresAt, Date.now()), expiresAt);
    }
  };
  schedule(renewalDelay(first.times, Date.now(), first.before), first.times.expiresAt);
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}

/** The `floe login --refresh` loop (a detached process): renews until the job's end kills it. */
export async function refreshForever(
  client: ClientOptions,
  login: RenewableLogin,
  first: Exchanged,
  before: number,
): Promise<never> {
  const say = (line: string) => void process.stderr.write(`floe login: ${line}\n`);
  let times = timesOf(first, Date.now());
  for (;;) {
    await new Promise((r) => setTimeout(r, renewalDelay(times, Date.now(), before)));
    for (;;) {
      try {
        times = timesOf(await renewLogin(client, login), Date.now());
        say(`renewed the ${login.method} login, valid until ${new Date(times.expiresAt).toISOString()}`);
        break;
      } catch (err) {
        say(`could not renew the ${login.method} login (${(err as Error).message}); trying again`);
        await new Promise((r) => setTimeout(r, retryDelay(times.expiresAt, Date.now())));
      }
    }
  }
}
