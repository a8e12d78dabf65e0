/**
 * Other tools' wire contracts, served beside Floe's own API as thin adapters over the same
 * services (and so the same authorizer): one file per client, pure mapping in *-mapping.ts.
 */
import type { Hono } from 'hono';
import type { AppEnv } from '../../context.js';
import { atticRoutes, type AtticDeps } from './attic.js';
import { magicNixCacheRoutes, type MagicNixCacheDeps } from './magic-nix-cache.js';
import { niks3Routes, type Niks3Deps } from './niks3.js';
import { fhRoutes, type FhDeps } from './fh.js';

export type CompatDeps = AtticDeps & MagicNixCacheDeps & Niks3Deps & FhDeps;

/**
 * Paths on which a raw CI identity token (a JWT) is exchanged on the fly, as flakehub-push and
 * magic-nix-cache send the job's token itself on every call.
 */
export const RAW_CI_TOKEN_PATHS = /^\/(token\/status|upload\/|publish\/|_api\/v1\/|project(\/|$))/;

export function compatRoutes(app: Hono<AppEnv>, deps: CompatDeps): void {
  fhRoutes(app, deps);
  atticRoutes(app, deps);
  magicNixCacheRoutes(app, deps);
  niks3Routes(app, deps);
}
