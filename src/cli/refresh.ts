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
 * PURE: how long a renewal forced by a 401 waits, and the backoff it leaves. The first in a while
 * goes at once; one that follows a forced renewal within a minute (the new token was refused too:
 * a revoked trust, a clock far off) waits, doubling up to a minute, so a server that keeps saying
 * 401 is never asked in a tight loop.
 */
export function forcedRenewalWait(
  last: { at: number; backoff: number } | undefined,
  now: number,
): { waitMs: number; backoff: number } {
  if (!last || now - last.at >= 60_000) return { waitMs: 0, backoff: 1000 };
  const backoff = Math.min(last.backoff * 2, 60_000);
  return { waitMs: Math.max(0, last.at + last.backoff - now), backoff };
}

export interface FreshLogin {
  /**
   * The server answered 401 to a request made with `rejected` (expired early on a loaded machine,
   * revoked): renew now instead of waiting for the schedule. Renewals already made since that
   * request, or in flight, count (one renewal per burst of failures). True when `client.token`
   * is now another token worth retrying with.
   */
  renewNow(rejected: string | undefined): Promise<boolean>;
  stop(): void;
}

/**
 * Keeps `client.token` fresh in this process (the watchers read it for every request) and the
 * netrc with it. Its timer does not keep the process alive.
 */
export function keepLoginFresh(
  client: ClientOptions,
  login: RenewableLogin,
  first: { times: { issuedAt: number; expiresAt: number }; before: number; log: (line: string) => void },
): FreshLogin {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let expiresAt = first.times.expiresAt;
  let inFlight: Promise<boolean> | undefined;
  let forced: Promise<boolean> | undefined;
  let lastForced: { at: number; backoff: number } | undefined;
  const schedule = (delay: number) => {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void renew('scheduled'), delay);
    timer.unref();
  };
  // Scheduled and forced renewals share one in flight: never two logins at once.
  const renew = (why: 'scheduled' | 'forced'): Promise<boolean> =>
    (inFlight ??= (async () => {
      try {
        const result = await renewLogin(client, login);
        client.token = result.token;
        const next = timesOf(result, Date.now());
        expiresAt = next.expiresAt;
        first.log(`renewed the ${login.method} login, valid until ${new Date(next.expiresAt).toISOString()}`);
        schedule(renewalDelay(next, Date.now(), first.before));
        return true;
      } catch (err) {
        first.log(`could not renew the ${login.method} login (${(err as Error).message}); trying again`);
        // A failed forced renewal leaves the schedule as it was; a failed scheduled one retries soon.
        if (why === 'scheduled') schedule(retryDelay(expiresAt, Date.now()));
        return false;
      }
    })().finally(() => (inFlight = undefined)));
  schedule(renewalDelay(first.times, Date.now(), first.before));
  return {
    renewNow(rejected) {
      if (stopped) return Promise.resolve(false);
      if (client.token !== rejected) return Promise.resolve(true);
      forced ??= (async () => {
        // A scheduled renewal under way is this burst's renewal.
        if (inFlight && (await inFlight)) return true;
        const { waitMs, backoff } = forcedRenewalWait(lastForced, Date.now());
        lastForced = { at: Date.now() + waitMs, backoff };
        const when = waitMs ? `in ${Math.ceil(waitMs / 1000)} s` : 'now';
        first.log(`the server refused the token (401); renewing the ${login.method} login ${when}`);
        if (waitMs) await new Promise((r) => setTimeout(r, waitMs));
        if (stopped) return false;
        return client.token !== rejected || (await renew('forced'));
      })().finally(() => (forced = undefined));
      return forced;
    },
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
