/**
 * The edge every request passes, whichever stack serves it (the Hono app, or the lean /cache
 * handler): a request id, the client address, authentication, the error table (errors.ts) turned
 * into a status and headers, and one access log line plus the request metrics at the end. Each
 * stack only renders the body its clients expect (JSON, an HTML page, Nix's plain text).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FloeError } from '../errors.js';
import { ANONYMOUS, describePrincipal, type Principal, withClient } from '../identity/principal.js';
import type { TokenService } from '../identity/tokens.js';
import { type Logger, infoLineWriter } from '../log.js';
import type { ClientResolver } from './client-address.js';
import { requestCredential } from './credential.js';
import { type ErrorBody, clientWentAway, errorBody, logFailure } from './errors.js';
import type { Metrics } from './metrics.js';
import { nextRequestId } from './request-id.js';

export interface EdgeDeps {
  tokens: Pick<TokenService, 'verify'>;
  log: Logger;
  metrics: Metrics;
  resolveClient: ClientResolver;
}

/** What the edge knows of a request from its first byte: its id, start and (so far) its caller. */
export interface RequestStart {
  requestId: string;
  started: number;
  /** Anonymous with the client address until `authenticate` says otherwise. */
  principal: Principal;
  /** The request's connection (its socket), for what is the same for every request on it. */
  connection: object;
}

/** How a failed request is answered: not at all (the client left), the one miss, or an error. */
export type Failure =
  | { kind: 'client-gone' }
  | { kind: 'miss' }
  | { kind: 'error'; body: ErrorBody; headers: Record<string, string> };

/** What the access log and the request metrics record of a finished request. */
export interface Finished {
  area: string;
  method: string;
  route: string;
  path: string;
  status: number;
  principal: Principal;
}

export interface Edge {
  begin(req: IncomingMessage): RequestStart;
  /** The caller named by the Authorization header (anonymous without one); a bad credential throws. */
  authenticate(
    start: RequestStart,
    authorization: string | undefined,
    exchange?: (credential: string) => Promise<string>,
  ): Promise<Principal>;
  /** Logs the failure once and says how to answer it (each stack renders the body). */
  fail(start: RequestStart, err: unknown, req: IncomingMessage, res: ServerResponse | undefined): Failure;
  /** The access log line and the request metrics. `status` is what the client got (499: it left). */
  finish(start: RequestStart, r: Finished): void;
}

/**
 * The credential last read from an Authorization header on each connection. A client sends the
 * same header with every request of a connection (Nix: thousands per substitution); decoding it
 * again (base64, a fresh string) also made the token service hash that fresh ~400-character
 * string for its lookup on every request, where the same string object keeps its hash. Only the
 * parsing is kept: every request's token is still verified (expiry, revocation) as it comes.
 */
const lastCredential = new WeakMap<object, { header: string; credential: string }>();

function credentialOn(connection: object, header: string | undefined): string | undefined {
  const last = header === undefined ? undefined : lastCredential.get(connection);
  if (last && last.header === header) return last.credential;
  const credential = requestCredential(header);
  if (credential !== undefined && header !== undefined) lastCredential.set(connection, { header, credential });
  return credential;
}

export function createEdge(deps: EdgeDeps): Edge {
  const { log, metrics } = deps;
  const accessLine = infoLineWriter(log);
  return {
    begin(req) {
      const requestId = nextRequestId();
      const client = deps.resolveClient(req, requestId);
      return {
        requestId,
        started: performance.now(),
        principal: withClient(ANONYMOUS, client),
        connection: req.socket,
      };
    },

    async authenticate(start, authorization, exchange) {
      let credential = credentialOn(start.connection, authorization);
      if (credential === undefined) return start.principal;
      if (exchange) credential = await exchange(credential);
      return withClient(await deps.tokens.verify(credential), start.principal.client!);
    },

    fail(start, err, req, res) {
      const { requestId } = start;
      if ((res && clientWentAway(req, res)) || res?.writableEnded) {
        // Cancelled upload, closed tab, or a stalled body the watchdog answered 408 already:
        // nothing failed on our side, and nobody is left to answer.
        log.debug({ reqId: requestId, msg: (err as Error).message }, 'client went away');
        return { kind: 'client-gone' };
      }
      const body = errorBody(err, requestId);
      logFailure(log, requestId, body, err);
      if (err instanceof FloeError && err.code === 'not_found') return { kind: 'miss' };
      const headers: Record<string, string> = { 'Cache-Control': 'no-store' };
      if (body.status === 401) headers['WWW-Authenticate'] = 'Basic realm="floe", charset="UTF-8"';
      if (body.retryAfterSeconds !== undefined) headers['Retry-After'] = String(body.retryAfterSeconds);
      // A rejected upload may leave body bytes unread; close rather than parse them as a new request.
      if (!req.complete) headers.Connection = 'close';
      return { kind: 'error', body, headers };
    },

    finish(start, r) {
      const seconds = (performance.now() - start.started) / 1000;
      metrics.request(r.area, r.method, r.route, r.status, seconds);
      // Never log headers or query strings: only what cannot carry a secret.
      if (log.isLevelEnabled('info')) {
        const ms = Math.round(seconds * 100_000) / 100;
        const principal = describePrincipal(r.principal);
        const { method, path, status } = r;
        const client = start.principal.client?.ip;
        accessLine({ reqId: start.requestId, method, path, status, ms, principal, client }, 'request');
      }
    },
  };
}
