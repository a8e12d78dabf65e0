/**
 * HTTP requests to an identity provider, to checked addresses only. The host name is resolved
 * once, every address it resolves to must be allowed (`destination.ts`), and the connection goes
 * to the address that was checked (a custom `lookup`), so a DNS answer that changes between the
 * check and the connect (rebinding) cannot reach an internal address. TLS still verifies the
 * certificate for the host name. Redirects are never followed; bodies are capped.
 */
import { lookup } from 'node:dns/promises';
import type { LookupFunction } from 'node:net';
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { addressAllowed, type DestinationRules, urlProblem } from './destination.js';

/** Refused before anything was sent; `message` names the URL's problem, for the server's log only. */
export class DestinationRefused extends Error {}

export interface PinnedRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
  maxBytes?: number;
}

export async function pinnedFetch(url: string, rules: DestinationRules, req: PinnedRequest = {}): Promise<Response> {
  const problem = urlProblem(url, rules);
  if (problem) throw new DestinationRefused(`${url}: ${problem}`);
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host)
    ? [{ address: host, family: isIP(host) }]
    : await lookup(host, { all: true, verbatim: true });
  if (addresses.length === 0) throw new DestinationRefused(`${url}: ${host} does not resolve`);
  const bad = addresses.find((a) => !addressAllowed(a.address, rules));
  if (bad) throw new DestinationRefused(`${url}: ${host} resolves to ${bad.address}, which is not a public address`);
  const pinned = addresses[0]!;
  const pinnedLookup: LookupFunction = (_hostname, options, callback) => {
    if (options.all)
      (callback as unknown as (err: null, list: Array<{ address: string; family: number }>) => void)(null, [
        { address: pinned.address, family: pinned.family },
      ]);
    else callback(null, pinned.address, pinned.family);
  };
  const maxBytes = req.maxBytes ?? 1024 * 1024;
  const signal = AbortSignal.any([AbortSignal.timeout(req.timeoutMs ?? 10_000), ...(req.signal ? [req.signal] : [])]);
  return new Promise<Response>((resolve, reject) => {
    const mod = u.protocol === 'https:' ? https : http;
    const r = mod.request(
      u,
      {
        method: req.method ?? 'GET',
        headers: {
          ...(req.headers ?? {}),
          ...(req.body !== undefined ? { 'content-length': String(Buffer.byteLength(req.body)) } : {}),
        },
        lookup: pinnedLookup,
        signal,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            res.destroy(new Error(`response larger than ${maxBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('end', () => {
          const status = res.statusCode ?? 502;
          const headers = new Headers();
          for (const [k, v] of Object.entries(res.headers))
            if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
          const noBody = status === 204 || status === 304 || (status >= 100 && status < 200);
          try {
            resolve(
              new Response(noBody ? null : Buffer.concat(chunks), {
                status: status < 200 || status > 599 ? 502 : status,
                headers,
              }),
            );
          } catch (err) {
            reject(err as Error);
          }
        });
      },
    );
    r.on('error', reject);
    r.end(req.body);
  });
}
