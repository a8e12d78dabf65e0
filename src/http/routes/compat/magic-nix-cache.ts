/**
 * FlakeHub's project lookup, as magic-nix-cache asks it before pushing through the Attic API
 * (magic-nix-cache/src/flakehub.rs: `GET /project[/{org}/{flake}]` with Basic auth, netrc login
 * and password) → `{organization_uuid_v7, project_uuid_v7}`; the cache name it then uses,
 * `<org uuid>:<project uuid>`, designates the org's default slice (attic-mapping.ts).
 * Contract: docs/compat/magic-nix-cache.md.
 */
import type { Hono } from 'hono';
import { NotFound, Unauthenticated } from '../../../errors.js';
import type { CacheService } from '../../../cache/service.js';
import type { OrgService } from '../../../org/service.js';
import type { PeerIds } from '../../../org/uuid-v7.js';
import type { RegistryService } from '../../../registry/service.js';
import type { Principal } from '../../../identity/principal.js';
import type { AppEnv } from '../../context.js';
import { DEFAULT_SLICE_NAME } from './attic-mapping.js';

export interface MagicNixCacheDeps {
  cache: CacheService;
  orgs: OrgService;
  registry: RegistryService;
  peerIds: PeerIds;
}

/** PURE: the project a CI identity pushes for when it names none (its repository, else its subject). */
export function implicitProject(p: Principal & { kind: 'token' }): string {
  const repo = p.identity?.claims.repository ?? p.identity?.claims.project_path;
  return typeof repo === 'string' && repo ? repo : p.subject;
}

export function magicNixCacheRoutes(app: Hono<AppEnv>, deps: MagicNixCacheDeps): void {
  const answer = async (orgName: string, project: string) => {
    const org = await deps.orgs.findOrg(orgName);
    if (!org) throw new NotFound();
    return {
      organization_uuid_v7: await deps.peerIds.orgUuid(org),
      project_uuid_v7: deps.peerIds.projectUuid(org, project),
      organization_name: org.name,
      project_name: project,
    };
  };

  app.get('/project', async (c) => {
    const p = c.get('principal');
    if (p.kind !== 'token')
      throw new Unauthenticated('send a Floe token (or a CI identity token) as the netrc password or Bearer');
    return c.json(await answer(p.org.name, implicitProject(p)), 200, { 'Cache-Control': 'no-store' });
  });

  app.get('/project/:org/:flake', async (c) => {
    const p = c.get('principal');
    const [orgName, flake] = [c.req.param('org'), c.req.param('flake')];
    // The flake need not be published yet (the push comes first): using the org's cache suffices.
    const slice = await deps.orgs.findSlice(orgName, DEFAULT_SLICE_NAME);
    const allowed =
      (slice && deps.cache.mayUseSlice(p, slice)) || (await deps.registry.releases(p, orgName, flake)) !== undefined;
    if (!allowed) throw new NotFound();
    return c.json(await answer(orgName, flake), 200, { 'Cache-Control': 'no-store' });
  });
}
