/**
 * niks3's self-configuration endpoint (Mic92/niks3 server/cache_config.go, api/types.go):
 * `GET /api/cache-config?issuer=<url>`, unauthenticated, → `{substituter_url, public_keys,
 * oidc_audience}`. Floe's own GitHub Action can read it too. Contract: docs/compat/niks3.md.
 */
import type { Hono } from 'hono';
import { InvalidInput } from '../../../errors.js';
import type { CacheService } from '../../../cache/service.js';
import type { AppEnv } from '../../context.js';

export interface Niks3Deps {
  cache: CacheService;
  publicUrl: () => string;
  /** The audience CI identity tokens are requested with for this server (its URL). */
  oidcAudience: () => string;
}

/** PURE: the answer; the audience only when an issuer is named (as niks3 does). */
export function niks3CacheConfig(substituterUrl: string, publicKeys: string[], audience: string | undefined) {
  return { substituter_url: substituterUrl, public_keys: publicKeys, ...(audience ? { oidc_audience: audience } : {}) };
}

export function niks3Routes(app: Hono<AppEnv>, deps: Niks3Deps): void {
  app.get('/api/cache-config', async (c) => {
    const issuer = c.req.query('issuer');
    if (issuer !== undefined && issuer.length > 2048) throw new InvalidInput('issuer', 'at most 2048 characters');
    // The keys of the caller's view: anonymous callers get the public (global) slices' keys.
    const keys = await deps.cache.publicKeysFor(c.get('principal'));
    const config = niks3CacheConfig(`${deps.publicUrl()}/cache`, keys, issuer ? deps.oidcAudience() : undefined);
    return c.json(config, 200, { 'Cache-Control': 'no-store' });
  });
}
